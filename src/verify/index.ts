/** The verifier: RFC 5280 path validation, X509-SVID and agent-context rules, revocation, authorizers. */
export { verifyX509Svid } from './verify-x509-svid';
export type { VerifyX509SvidResult, VerifyX509SvidOptions } from './verify-x509-svid';
export { validateCertPath, DEFAULT_MAX_PATH_DEPTH, MAX_PRESENTED_CERTIFICATES } from './path-validation';
export type { PathValidationOptions, ValidatedPath } from './path-validation';
export { ENFORCED_EXTENSIONS } from './path-rules';
export { spiffeIdOfLeaf, checkSvidLeaf } from '../svid/rules';
export { verifyAgentContext, DEFAULT_MAX_DELEGATION_DEPTH } from './context-rules';
export type { ContextRuleOptions } from './context-rules';
export {
  isRevocationNotifier,
  isTaskSessionQuery,
  StaticRevocationList,
  WORKLOAD_SESSION_PREFIX,
} from './revocation';
export { RevocationCache, REVOCATION_CACHE_DEFAULTS } from './revocation-cache';
export type {
  RevocationCacheEntry,
  RevocationCacheOptions,
  RevocationStaleEvent,
  RevocationUpdate,
  StalePolicy,
} from './revocation-cache';
export type {
  RevocationChange,
  RevocationChangeListener,
  RevocationChecker,
  RevocationNotifier,
  RevocationQuery,
  RevocationReason,
  RevokedTarget,
} from './revocation';
export { revocationQueryOf } from './verify-x509-svid';
export { VerificationCache, defaultVerificationCache } from './cache';
export type { CacheCounters, VerificationCacheOptions, VerificationCacheStats } from './cache';
export * from './authorize';
