import { verify } from 'node:crypto';
import { AttestationError, MalformedEvidenceError, UnsupportedAlgorithmError } from '../errors';
import { JWS_ALGORITHMS, type JwkKey, type JwsAlgorithm } from './jwk';

/**
 * JWT (compact JWS) decoding and signature checks on node:crypto alone. jose v6 is ESM-only and cannot be
 * required from this CommonJS package on every Node 20 we support, and the subset needed here (three
 * algorithms, keys from a local JWKS, no encryption, no remote key fetching) is small enough to keep exact.
 */

export interface JwtHeader {
  alg: JwsAlgorithm;
  kid?: string;
}

export interface DecodedJwt {
  header: JwtHeader;
  payload: Record<string, unknown>;
  /** ASCII of `<header>.<payload>` exactly as received: what the signature covers. */
  signingInput: Buffer;
  signature: Buffer;
}

/** Upper bound on a JWT accepted as evidence; Kubernetes tokens are 1-2 KiB. */
export const MAX_JWT_BYTES = 16 * 1024;

const SEGMENT = /^[A-Za-z0-9_-]+$/;

/**
 * Splits and decodes a compact JWS without trusting anything in it. Refuses (ERR_MALFORMED_EVIDENCE) anything
 * that is not three canonical base64url segments of a JSON object header and payload; refuses
 * (ERR_UNSUPPORTED_ALGORITHM) every `alg` but RS256, ES256, ES384: `none` and the HMAC algorithms above all,
 * since an HS256 token "signed" with a public key is the classic algorithm-confusion forgery.
 */
export function decodeJwt(token: string): DecodedJwt {
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw malformed(
      parts.length === 5
        ? 'evidence is an encrypted JWT (JWE); expected a signed service-account token'
        : `evidence is not a JWT: expected 3 dot-separated parts, got ${parts.length}`,
    );
  }
  const [h, p, s] = parts as [string, string, string];
  // The header first: an `alg: none` token has an empty signature, and should be refused for its algorithm.
  const header = parseObject(decodeSegment(h, 'header'), 'header');

  const alg = header.alg;
  if (typeof alg !== 'string') throw malformed('JWT header has no "alg"');
  if (!(JWS_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new UnsupportedAlgorithmError(
      `JWT algorithm ${JSON.stringify(alg.slice(0, 32))} is not accepted (${JWS_ALGORITHMS.join(', ')} only)`,
    );
  }
  // RFC 7515 §4.1.11: a recipient that does not understand a critical header must reject the JWS.
  if (header.crit !== undefined) throw malformed('JWT header has "crit" extensions, which are not supported');
  const kid = header.kid;
  if (kid !== undefined && (typeof kid !== 'string' || kid === ''))
    throw malformed('JWT header "kid" is not a string');
  const payload = parseObject(decodeSegment(p, 'payload'), 'payload');
  const signature = decodeSegment(s, 'signature');
  return {
    header: kid === undefined ? { alg: alg as JwsAlgorithm } : { alg: alg as JwsAlgorithm, kid },
    payload,
    signingInput: Buffer.from(`${h}.${p}`, 'ascii'),
    signature,
  };
}

/**
 * True when `key` made the signature with the token's algorithm. The algorithm must be the key's own: an RSA
 * key never verifies an ES256 token, and the reverse. ECDSA JWS signatures are raw r||s (RFC 7518 §3.4).
 */
export function jwtSignedBy(jwt: DecodedJwt, key: JwkKey): boolean {
  if (jwt.header.alg !== key.alg) return false;
  try {
    switch (key.alg) {
      case 'RS256':
        return verify('sha256', jwt.signingInput, key.key, jwt.signature);
      case 'ES256':
        return (
          jwt.signature.length === 64 &&
          verify('sha256', jwt.signingInput, { key: key.key, dsaEncoding: 'ieee-p1363' }, jwt.signature)
        );
      case 'ES384':
        return (
          jwt.signature.length === 96 &&
          verify('sha384', jwt.signingInput, { key: key.key, dsaEncoding: 'ieee-p1363' }, jwt.signature)
        );
    }
  } catch {
    return false;
  }
}

/**
 * base64url without padding, canonical: Buffer's decoder skips characters outside the alphabet and ignores
 * stray trailing bits, so the text is checked first and must round-trip.
 */
function decodeSegment(segment: string, what: string): Buffer {
  if (!SEGMENT.test(segment)) throw malformed(`JWT ${what} is not base64url`);
  const bytes = Buffer.from(segment, 'base64url');
  if (bytes.toString('base64url') !== segment) throw malformed(`JWT ${what} is not canonical base64url`);
  return bytes;
}

function parseObject(bytes: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw malformed(`JWT ${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw malformed(`JWT ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function malformed(message: string): AttestationError {
  return new MalformedEvidenceError(message);
}
