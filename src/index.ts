/**
 * `lanyard`: what a service needs to verify its callers — SPIFFE IDs and trust domains, X.509 bundles, the
 * X509-SVID type, the verifier and its authorizers, and the errors they throw. It loads no gRPC and no server
 * code. Everything else is a subpath export (package.json "exports"): lanyard/client (sources, attestation,
 * sessions, delegation), lanyard/tls, lanyard/grpc, lanyard/express, lanyard/fastify (hop helpers),
 * lanyard/audit, lanyard/policy, lanyard/dev, lanyard/errors (every error class). The list is explicit so that a change to it is a decision: the
 * API report (api/*.api.txt, `npm run api:check`) fails CI on any change not recorded there.
 */

// SPIFFE IDs, trust domains and the matchers authorizers compose.
export { matchAny, matchId, matchMemberOf, matchOneOf, SpiffeId, TrustDomain } from './spiffe';
export type { Matcher } from './spiffe';

// Bundles: X.509 roots per trust domain and the SPIFFE bundle (JWK Set) format.
export { BundleSet, loadSpiffeBundle, parseSpiffeBundle, toSpiffeBundle, X509Bundle } from './bundle';
export type { SpiffeBundleDocument, SpiffeBundleJwk, X509BundleOptions, X509BundleSource } from './bundle';

// The X509-SVID: a workload's certificate chain and key, and the agent context it carries.
export { loadX509Svid, parseX509Svid } from './svid';
export type { MarshaledX509Svid, OwnSvidOptions, X509Svid } from './svid';
export type { X509Source } from './client/x509-source';
export { ParsedCertificate } from './x509/certificate';
export {
  agentContextFromJson,
  agentContextToJson,
  DEFAULT_AGENT_CONTEXT_OID,
  readAgentContext,
} from './x509/agent-context';
export type {
  AgentContext,
  AgentContextJson,
  DelegationLink,
  Principal,
  PrincipalProvenance,
  TokenProvenance,
} from './x509/agent-context';

// The verifier: path validation, X509-SVID and agent-context rules, revocation, caching.
export {
  RevocationCache,
  StaticRevocationList,
  VerificationCache,
  verifyAgentContext,
  verifyX509Svid,
} from './verify';
export type {
  ContextRuleOptions,
  RevocationCacheOptions,
  RevocationChecker,
  RevocationQuery,
  RevocationReason,
  StalePolicy,
  VerificationCacheOptions,
  VerifyX509SvidResult,
  VerifyX509SvidOptions,
} from './verify';

// Authorizers: what a verified peer must be for the call to go ahead.
export * from './verify/authorize';

// Errors: every one is a LanyardError whose class fixes its `code`; `switch (e.code)` narrows on
// LanyardErrorCode. The families a verifier meets are here; every class is in lanyard/errors.
export {
  AgentContextError,
  AuditError,
  AuthorizationError,
  BundleError,
  ErrorCode,
  InvalidSpiffeIdError,
  InvalidTrustDomainError,
  isLanyardError,
  LanyardError,
  MalformedInputError,
  PathValidationError,
  PolicyDeniedError,
  PolicyError,
  RevocationStaleError,
  RevokedError,
  SessionError,
  SvidVerificationError,
} from './errors';
export type { AnyLanyardError, ErrorFamilyCodes, LanyardErrorCode } from './errors';
