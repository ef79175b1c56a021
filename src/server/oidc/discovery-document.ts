/**
 * The two documents of OIDC discovery for JWT-SVIDs (OpenID Connect Discovery 1.0 §3, RFC 7517), as SPIRE's
 * OIDC Discovery Provider serves them: the provider metadata, and the JWKS of the keys that sign JWT-SVIDs.
 * Lanyard is no OpenID Provider (it runs no authorization flow): the metadata says just enough for a relying
 * party (a cloud's workload identity federation) to find the keys and check `iss`, `sub`, `aud`, `exp`.
 */
import type { JwtAuthorityKey } from '../node/jwt-authority';

/** Where the JWKS is served, under the issuer's path (SPIRE's provider uses the same name). */
export const OIDC_JWKS_PATH = '/keys';
export const OIDC_CONFIGURATION_PATH = '/.well-known/openid-configuration';
/**
 * Discovery §3 requires authorization_endpoint; there is none (JWT-SVIDs come from the Workload API), so it
 * names that in a URN rather than pointing at a URL that does not exist.
 */
export const NO_AUTHORIZATION_ENDPOINT = 'urn:lanyard:workload-api';

export interface OidcProviderMetadata {
  issuer: string;
  jwks_uri: string;
  authorization_endpoint: string;
  response_types_supported: string[];
  subject_types_supported: string[];
  id_token_signing_alg_values_supported: string[];
  claims_supported: string[];
}

export interface OidcJwk {
  kty: string;
  kid: string;
  use: 'sig';
  alg: string;
  [param: string]: string;
}

export function providerMetadata(issuer: string): OidcProviderMetadata {
  return {
    issuer,
    jwks_uri: `${issuer}${OIDC_JWKS_PATH}`,
    authorization_endpoint: NO_AUTHORIZATION_ENDPOINT,
    response_types_supported: ['id_token'],
    // `sub` is the workload's SPIFFE ID, the same for every relying party.
    subject_types_supported: ['public'],
    // What JwtAuthority signs with: EC P-256 keys only.
    id_token_signing_alg_values_supported: ['ES256'],
    claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat'],
  };
}

/**
 * The published JWT-SVID keys (prepared, active, and retired ones whose tokens are still live) as an RFC 7517
 * key set. `use` is `sig`, not the SPIFFE bundle's `jwt-svid`: generic JOSE libraries skip keys whose use
 * they do not know; `alg` pins each key to the one algorithm it signs with.
 */
export function jwks(keys: readonly JwtAuthorityKey[]): { keys: OidcJwk[] } {
  return {
    keys: keys.map((k) => {
      const { kty, ...params } = k.publicKey.export({ format: 'jwk' });
      const out: OidcJwk = { kty: String(kty), kid: k.keyId, use: 'sig', alg: algOf(k) };
      for (const [name, v] of Object.entries(params)) if (typeof v === 'string') out[name] = v;
      return out;
    }),
  };
}

function algOf(k: JwtAuthorityKey): string {
  const curve = k.publicKey.asymmetricKeyDetails?.namedCurve;
  if (k.publicKey.asymmetricKeyType === 'ec' && curve === 'prime256v1') return 'ES256';
  if (k.publicKey.asymmetricKeyType === 'ec' && curve === 'secp384r1') return 'ES384';
  return 'RS256';
}
