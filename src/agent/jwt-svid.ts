/**
 * JWT-SVID validation (SPIFFE JWT-SVID standard §4-§5), for ValidateJWTSVID: compact JWS only; `alg` one of
 * the standard's asymmetric algorithms, matched to the key's type (no `none`, no HMAC); `kid` required and
 * found among the JWT authorities of the subject's trust domain; `sub` a SPIFFE ID of that trust domain;
 * `aud` containing the validator's audience; `exp` required and in the future. Signatures through node:crypto.
 */
import { constants, verify, type KeyObject } from 'node:crypto';
import type { X509Bundle } from '../bundle';
import { JwtSvidInvalidError, LanyardError } from '../errors';
import { SpiffeId } from '../spiffe';

const MAX_TOKEN_CHARS = 16 * 1024;

const ALGS: Record<string, { hash: string; keyType: string; pss?: boolean; p1363?: boolean }> = {
  ES256: { hash: 'sha256', keyType: 'ec', p1363: true },
  ES384: { hash: 'sha384', keyType: 'ec', p1363: true },
  ES512: { hash: 'sha512', keyType: 'ec', p1363: true },
  RS256: { hash: 'sha256', keyType: 'rsa' },
  RS384: { hash: 'sha384', keyType: 'rsa' },
  RS512: { hash: 'sha512', keyType: 'rsa' },
  PS256: { hash: 'sha256', keyType: 'rsa', pss: true },
  PS384: { hash: 'sha384', keyType: 'rsa', pss: true },
  PS512: { hash: 'sha512', keyType: 'rsa', pss: true },
};
const CURVE_OF: Record<string, string> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };

export interface ValidatedJwtSvid {
  spiffeId: SpiffeId;
  claims: Record<string, unknown>;
}

/** @throws LanyardError(ERR_JWT_SVID_INVALID) naming the rule that failed. */
export function validateJwtSvid(
  token: string,
  audience: string,
  bundleFor: (td: SpiffeId['trustDomain']) => X509Bundle | undefined,
  now: Date,
): ValidatedJwtSvid {
  if (audience === '') throw invalid('audience is required');
  if (token.length === 0 || token.length > MAX_TOKEN_CHARS) throw invalid('the token is empty or too long');
  const parts = token.split('.');
  if (parts.length !== 3) throw invalid('not a JWS compact serialization (three dot-separated parts)');
  const [h, p, s] = parts as [string, string, string];
  const header = jsonPart(h, 'header');
  const claims = jsonPart(p, 'payload');
  const alg = header.alg;
  const spec = typeof alg === 'string' ? ALGS[alg] : undefined;
  if (spec === undefined) throw invalid(`alg ${JSON.stringify(alg)} is not allowed for a JWT-SVID`);
  if (header.typ !== undefined && header.typ !== 'JWT' && header.typ !== 'JOSE') {
    throw invalid(`typ ${JSON.stringify(header.typ)} is not JWT or JOSE`);
  }
  if (typeof header.kid !== 'string' || header.kid === '') throw invalid('kid is required');
  if (typeof claims.sub !== 'string') throw invalid('sub is required');
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(claims.sub);
  } catch {
    throw invalid('sub is not a SPIFFE ID');
  }
  const bundle = bundleFor(id.trustDomain);
  const key: KeyObject | undefined = bundle?.jwtAuthorities.get(header.kid);
  if (key === undefined) throw invalid(`no JWT authority with kid ${header.kid} for ${id.trustDomain.name}`);
  if (key.asymmetricKeyType !== spec.keyType) throw invalid(`alg ${String(alg)} does not fit the key's type`);
  if (spec.keyType === 'ec' && key.asymmetricKeyDetails?.namedCurve !== CURVE_OF[String(alg)]) {
    throw invalid(`alg ${String(alg)} does not fit the key's curve`);
  }
  const ok = verify(
    spec.hash,
    Buffer.from(`${h}.${p}`),
    {
      key,
      ...(spec.p1363 && { dsaEncoding: 'ieee-p1363' as const }),
      // RFC 7518 §3.5: the PSS salt is as long as the hash (32, 48, 64 bytes for PS256/384/512).
      ...(spec.pss && {
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
      }),
    },
    Buffer.from(s, 'base64url'),
  );
  if (!ok) throw invalid('the signature does not verify');
  const aud = claims.aud;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : undefined;
  if (audiences === undefined || audiences.length === 0) throw invalid('aud is required');
  if (!audiences.includes(audience)) throw invalid(`the token is not for audience ${audience}`);
  if (typeof claims.exp !== 'number') throw invalid('exp is required');
  const nowSeconds = now.getTime() / 1000;
  if (claims.exp <= nowSeconds) throw invalid('the token has expired');
  if (typeof claims.nbf === 'number' && claims.nbf > nowSeconds) throw invalid('the token is not yet valid');
  return { spiffeId: id, claims };
}

function jsonPart(part: string, what: string): Record<string, unknown> {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) throw invalid(`the ${what} is not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw invalid(`the ${what} is not JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(`the ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function invalid(message: string): LanyardError {
  return new JwtSvidInvalidError(`JWT-SVID rejected: ${message}`);
}
