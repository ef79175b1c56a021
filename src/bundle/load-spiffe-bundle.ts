import type { TrustDomain } from '../spiffe';
import { parseSpiffeBundle } from './parse-spiffe-bundle';
import { readBundleText, type X509Bundle } from './x509-bundle';

/**
 * The SPIFFE bundle (JWKS) file at `path`, for `trustDomain` (go-spiffe's spiffebundle.Load): X.509 and JWT
 * authorities, sequence and refresh hint, with every rule of parseSpiffeBundle.
 * @throws BundleError: ERR_IO when the file cannot be read, ERR_INVALID_BUNDLE when it does not parse.
 */
export function loadSpiffeBundle(trustDomain: TrustDomain, path: string): X509Bundle {
  return parseSpiffeBundle(trustDomain, readBundleText(path, 'SPIFFE bundle'));
}
