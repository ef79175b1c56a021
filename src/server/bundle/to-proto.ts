/** The CA's X509Bundle as the wire's Bundle message: DER, PEM and the SPIFFE bundle document at once. */
import { toSpiffeBundle } from '../../bundle/to-spiffe-bundle';
import type { SpiffeBundleJwk } from '../../bundle/spiffe-bundle-format';
import type { X509Bundle } from '../../bundle/x509-bundle';
import type { Bundle } from '../../gen/lanyard/v1/types';

/** `extraKeys`: more keys for the SPIFFE bundle document (the audit key on the BundleService). */
export function bundleToProto(bundle: X509Bundle, extraKeys: readonly SpiffeBundleJwk[] = []): Bundle {
  if (extraKeys.length > 0) return build(bundle, extraKeys);
  // Every issuance answer carries the bundle, and a bundle is immutable (a new one is a new object): its PEM,
  // DER copies and SPIFFE document (a JWK export per authority) are made once, not once per SVID.
  let wire = built.get(bundle);
  if (wire === undefined) {
    wire = build(bundle, extraKeys);
    built.set(bundle, wire);
  }
  return { ...wire, x509Authorities: [...wire.x509Authorities] };
}

const built = new WeakMap<X509Bundle, Bundle>();

function build(bundle: X509Bundle, extraKeys: readonly SpiffeBundleJwk[]): Bundle {
  return {
    trustDomain: bundle.trustDomain.name,
    sequence: bundle.sequence ?? 0,
    x509Authorities: bundle.x509Authorities.map((c) => Buffer.from(c.der)),
    x509AuthoritiesPem: bundle.toPem(),
    spiffeBundleJson: JSON.stringify(toSpiffeBundle(bundle, extraKeys)),
    refreshHintSeconds: bundle.refreshHint ?? 0,
  };
}
