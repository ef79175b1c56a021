/**
 * Federated bundles as the server sends them (lanyard.v1.Bundle, the SPIFFE bundle document inside) read back
 * into X509Bundles, for the node agent and ServerX509Source.
 */
import { parseSpiffeBundle } from '../bundle/parse-spiffe-bundle';
import type { X509Bundle } from '../bundle/x509-bundle';
import type { Bundle } from '../gen/lanyard/v1/types';
import { TrustDomain } from '../spiffe';

/**
 * Each bundle read for the trust domain it names. A bundle that names the receiver's own trust domain is
 * dropped: federation never replaces the local domain's bundle. A malformed one fails the whole answer (the
 * caller keeps what it had).
 */
export function federatedBundlesFromProto(
  bundles: readonly Bundle[],
  own: TrustDomain | undefined,
): X509Bundle[] {
  const out: X509Bundle[] = [];
  const seen = new Set<string>();
  for (const b of bundles) {
    const td = TrustDomain.parse(b.trustDomain);
    if (own !== undefined && td.equals(own)) continue;
    if (seen.has(td.name)) continue;
    seen.add(td.name);
    out.push(parseSpiffeBundle(td, b.spiffeBundleJson));
  }
  return out;
}
