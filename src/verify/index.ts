/** The verifier: RFC 5280 path validation, X509-SVID and agent-context rules, revocation, authorizers. */
export { verifyX509Svid } from './verify-x509-svid';
export type { VerifiedSvid, VerifyX509SvidOptions } from './verify-x509-svid';
export { validateCertPath, DEFAULT_MAX_PATH_DEPTH, MAX_PRESENTED_CERTIFICATES } from './path-validation';
export type { PathValidationOptions, ValidatedPath } from './path-validation';
export { CertificatePathError, ENFORCED_EXTENSIONS } from './path-rules';
export { spiffeIdOfLeaf, checkSvidLeaf } from './svid-rules';
export { verifyAgentContext, DEFAULT_MAX_DELEGATION_DEPTH } from './context-rules';
export type { ContextRuleOptions } from './context-rules';
export { StaticRevocationList } from './revocation';
export { RevocationCache } from './revocation-cache';
export type { RevocationCacheEntry } from './revocation-cache';
export type { RevocationChecker, RevocationQuery, RevocationReason } from './revocation';
export { VerificationCache, defaultVerificationCache } from './cache';
export type { CacheCounters, VerificationCacheOptions, VerificationCacheStats } from './cache';
export {
  allOf,
  authorizeAny,
  authorizeId,
  authorizeMatcher,
  authorizeMemberOf,
  authorizeOneOf,
  maxDelegationDepth,
  requirePrincipal,
  requireScopes,
} from './authorize';
export type { Authorizer, PrincipalRequirement } from './authorize';
