import { createPublicKey, KeyObject } from 'node:crypto';
import { describeKey } from '../x509/keys';

/** JWS algorithms a Kubernetes service-account issuer signs with (RSA -> RS256, EC P-256/P-384 -> ES256/ES384). */
export type JwsAlgorithm = 'RS256' | 'ES256' | 'ES384';
export const JWS_ALGORITHMS: readonly JwsAlgorithm[] = ['RS256', 'ES256', 'ES384'];

/** One verification key from a JWKS, with the single algorithm it may verify. */
export interface JwkKey {
  kid?: string;
  alg: JwsAlgorithm;
  key: KeyObject;
}

/**
 * A JWKS document -> its usable signature keys. Keys that cannot verify a JWS we accept (encryption keys,
 * symmetric keys, other curves, RSA under 2048 bits) are left out rather than refused: an issuer's JWKS may
 * publish keys for other purposes. A private key is refused: a file that holds one is a leak, not a trust anchor.
 * @throws Error naming the problem (the caller wraps it with the file name and its own error code).
 */
export function parseJwks(text: string): JwkKey[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isObject(doc) || !Array.isArray(doc.keys)) throw new Error('not a JWKS: expected {"keys": [...]}');
  const out: JwkKey[] = [];
  const kids = new Set<string>();
  doc.keys.forEach((jwk: unknown, i: number) => {
    if (!isObject(jwk)) throw new Error(`keys[${i}] is not an object`);
    if ('d' in jwk || 'p' in jwk || 'k' in jwk) {
      throw new Error(`keys[${i}] holds private or secret key material: publish public keys only`);
    }
    const key = toJwkKey(jwk);
    if (key === undefined) return;
    if (key.kid !== undefined) {
      // Tokens name their key by kid; two keys with one kid would make the choice ambiguous.
      if (kids.has(key.kid)) throw new Error(`kid "${key.kid}" appears twice`);
      kids.add(key.kid);
    }
    out.push(key);
  });
  if (out.length === 0) throw new Error('no usable signature key (RSA >= 2048 bits, EC P-256 or P-384)');
  return out;
}

function toJwkKey(jwk: Record<string, unknown>): JwkKey | undefined {
  if (jwk.use !== undefined && jwk.use !== 'sig') return undefined;
  const kid = typeof jwk.kid === 'string' && jwk.kid !== '' ? jwk.kid : undefined;
  let alg: JwsAlgorithm;
  let members: Record<string, string>;
  if (jwk.kty === 'RSA' && typeof jwk.n === 'string' && typeof jwk.e === 'string') {
    alg = 'RS256';
    members = { kty: 'RSA', n: jwk.n, e: jwk.e };
  } else if (jwk.kty === 'EC' && typeof jwk.x === 'string' && typeof jwk.y === 'string') {
    if (jwk.crv === 'P-256') alg = 'ES256';
    else if (jwk.crv === 'P-384') alg = 'ES384';
    else return undefined;
    members = { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y };
  } else {
    return undefined;
  }
  // A JWK that names its algorithm may be used with that algorithm only (RFC 7517 §4.4).
  if (jwk.alg !== undefined && jwk.alg !== alg) return undefined;
  let key: KeyObject;
  try {
    // Only the public members are imported, so nothing else in the JWK can change what the key is.
    key = createPublicKey({ key: members, format: 'jwk' });
    describeKey(key);
  } catch {
    return undefined;
  }
  return kid === undefined ? { alg, key } : { kid, alg, key };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
