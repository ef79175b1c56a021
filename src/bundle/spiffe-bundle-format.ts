/**
 * The SPIFFE bundle format (SPIFFE Trust Domain and Bundle §4): an RFC 7517 JWK Set whose entries say, in
 * `use`, which SVID type they are authoritative for.
 */

/** `use` of an X509-SVID CA certificate entry (X509-SVID §6). */
export const X509_SVID_USE = 'x509-svid';
/** `use` of a JWT-SVID signing key entry (JWT-SVID §6). */
export const JWT_SVID_USE = 'jwt-svid';

/** Key types this implementation can read; entries of any other `kty` are ignored, as §4.2.1 requires. */
export const SUPPORTED_KEY_TYPES: ReadonlySet<string> = new Set(['EC', 'RSA', 'OKP']);

/** One JWK of a SPIFFE bundle. Key parameters (crv/x/y, n/e) are per RFC 7518 §6 and RFC 8037. */
export interface SpiffeBundleJwk {
  kty: string;
  use: string;
  /** Set on jwt-svid entries, never on x509-svid entries (X509-SVID §6.1). */
  kid?: string;
  /** x509-svid entries: exactly one standard-base64 DER CA certificate. */
  x5c?: string[];
  [parameter: string]: unknown;
}

/** A SPIFFE bundle document. The trust domain is not in it: it travels beside it (§3). */
export interface SpiffeBundleDocument {
  spiffe_sequence?: number;
  /** Seconds. */
  spiffe_refresh_hint?: number;
  keys: SpiffeBundleJwk[];
}
