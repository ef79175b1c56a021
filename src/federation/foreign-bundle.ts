/**
 * A foreign trust domain's bundle as received: the SPIFFE bundle document read for the trust domain the
 * relationship names, with the checks federation adds to the format's own.
 */
import { parseSpiffeBundle } from '../bundle/parse-spiffe-bundle';
import type { X509Bundle } from '../bundle/x509-bundle';
import { isLanyardError, InvalidBundleError, WrongTrustDomainError } from '../errors';
import type { TrustDomain } from '../spiffe';

/** Bundles larger than this are refused: a bundle is a few CA certificates and keys, never megabytes. */
export const MAX_BUNDLE_BYTES = 1024 * 1024;

/**
 * Parse `json` as the bundle of `trustDomain`.
 *
 * The document does not say whose it is (bundle spec §3), but an X.509 authority may carry its trust domain's
 * SPIFFE ID as a URI SAN (X509-SVID §4.1; Lanyard's and SPIRE's CAs do): an authority naming another trust
 * domain means the endpoint serves some other domain's bundle (a mis-pointed URL, or an endpoint replaying
 * another bundle), and the whole document is refused rather than trusted for the wrong domain.
 * @throws BundleError(ERR_INVALID_BUNDLE) for a malformed document; FederationError(ERR_WRONG_TRUST_DOMAIN) for
 *   an authority of another trust domain.
 */
export function readForeignBundle(trustDomain: TrustDomain, json: string): X509Bundle {
  if (Buffer.byteLength(json) > MAX_BUNDLE_BYTES) {
    throw new InvalidBundleError(`bundle of "${trustDomain.name}" is larger than ${MAX_BUNDLE_BYTES} bytes`);
  }
  const bundle = parseSpiffeBundle(trustDomain, json);
  bundle.x509Authorities.forEach((cert, i) => {
    for (const uri of cert.uriSans) {
      if (!uri.toLowerCase().startsWith('spiffe://')) continue;
      const host = uri.slice('spiffe://'.length).split('/')[0] ?? '';
      if (host !== trustDomain.name) {
        throw new WrongTrustDomainError(
          `the bundle fetched for "${trustDomain.name}" holds an X.509 authority (keys[${i}]) of trust domain "${host}": refused`,
        );
      }
    }
  });
  return bundle;
}

/** A message for logs and the stored last_error: the code when the error has one. */
export function describeFailure(e: unknown): string {
  if (isLanyardError(e)) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}
