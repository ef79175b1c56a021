import { KeyObject } from 'node:crypto';
import { InvalidBundleError } from '../errors';
import { JWT_SVID_USE, SpiffeBundleDocument, SpiffeBundleJwk, X509_SVID_USE } from './spiffe-bundle-format';
import type { X509Bundle } from './x509-bundle';

/**
 * The SPIFFE bundle document of `bundle`: one x509-svid entry per X.509 authority (its public key as JWK
 * parameters plus the certificate in `x5c`) and one jwt-svid entry per JWT authority (with its `kid`).
 * Serialise it with JSON.stringify; the trust domain is not part of the document and must travel beside it.
 * @throws BundleError (ERR_INVALID_BUNDLE) when a key cannot be expressed as a JWK (e.g. RSA-PSS).
 */
export function toSpiffeBundle(
  bundle: X509Bundle,
  /**
   * More public keys to publish beside the SVID authorities, each under its own `use` (e.g. the audit key,
   * use "lanyard-audit"): SPIFFE consumers ignore entries whose `use` they do not know (bundle spec §4.2.2).
   */
  extraKeys: readonly SpiffeBundleJwk[] = [],
): SpiffeBundleDocument {
  const keys: SpiffeBundleJwk[] = [];
  bundle.x509Authorities.forEach((cert, i) => {
    const { kty, ...params } = publicJwk(cert.publicKey, `X.509 authority ${i}`);
    // No kid on x509-svid entries: X509-SVID §6.1 says it MUST NOT be set.
    keys.push({ kty, ...params, use: X509_SVID_USE, x5c: [Buffer.from(cert.der).toString('base64')] });
  });
  for (const [kid, key] of bundle.jwtAuthorities) {
    const { kty, ...params } = publicJwk(key, `JWT authority "${kid}"`);
    keys.push({ kty, ...params, use: JWT_SVID_USE, kid });
  }
  for (const k of extraKeys) keys.push({ ...k });
  // Both counters are optional in the format; omitted rather than invented when the bundle has none.
  return {
    ...(bundle.sequence !== undefined ? { spiffe_sequence: bundle.sequence } : {}),
    ...(bundle.refreshHint !== undefined ? { spiffe_refresh_hint: bundle.refreshHint } : {}),
    keys,
  };
}

function publicJwk(key: KeyObject, what: string): { kty: string; [parameter: string]: unknown } {
  let jwk;
  try {
    jwk = key.export({ format: 'jwk' });
  } catch (e) {
    throw new InvalidBundleError(`${what}: its ${key.asymmetricKeyType ?? 'unknown'} key has no JWK form`, {
      cause: e,
    });
  }
  if (typeof jwk.kty !== 'string') {
    throw new InvalidBundleError(`${what}: its key exported without a kty`);
  }
  return { ...jwk, kty: jwk.kty };
}
