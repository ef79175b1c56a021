/** X.509 bundles, the SPIFFE bundle (JWK Set) format both ways, and bundle sets per trust domain. */
export { X509Bundle } from './x509-bundle';
export type { X509BundleOptions } from './x509-bundle';
export { BundleSet } from './bundle-set';
export { requireX509Bundle } from './source';
export type { X509BundleSource } from './source';
export { parseSpiffeBundle } from './parse-spiffe-bundle';
export { loadSpiffeBundle } from './load-spiffe-bundle';
export { toSpiffeBundle } from './to-spiffe-bundle';
export { JWT_SVID_USE, SUPPORTED_KEY_TYPES, X509_SVID_USE } from './spiffe-bundle-format';
export type { SpiffeBundleDocument, SpiffeBundleJwk } from './spiffe-bundle-format';
