import { BundleNotFoundError } from '../errors';
import type { TrustDomain } from '../spiffe';
import type { X509Bundle } from './x509-bundle';

/**
 * Where a verifier gets the X.509 authorities of a trust domain. A verifier takes a source rather than a
 * concrete store, so one bundle, a federated set, or a live-rotating client cache all plug in the same way.
 */
export interface X509BundleSource {
  /** The bundle of `td`, or undefined when the source has none (the verifier then rejects). */
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle | undefined;
}

/**
 * The bundle of `td` from `source`.
 * @throws BundleError (ERR_BUNDLE_NOT_FOUND) when the source has none.
 */
export function requireX509Bundle(source: X509BundleSource, td: TrustDomain): X509Bundle {
  const bundle = source.getX509BundleForTrustDomain(td);
  if (bundle === undefined) {
    throw new BundleNotFoundError(`no X.509 bundle for trust domain "${td.name}"`);
  }
  return bundle;
}
