/**
 * Lanyard's library: everything a workload or an mTLS-terminating service needs without the server or a
 * database — SPIFFE IDs, bundles, X.509-SVIDs with the agent-context extension, and the verifier.
 */
export * from './errors';
export * from './spiffe';
export * from './bundle';
export * from './x509';
export * from './verify';
// The workload side (X509Sources, attestation, sessions and handoff) and the hop helpers (tls/https, grpc-js).
// express and fastify helpers are separate entry points: lanyard/hop/express, lanyard/hop/fastify.
export * from './client';
export * from './hop';
// The audit trail a service keeps for its hop decisions (file chain), and verification and trace of any chain.
export * from './audit';
// Cedar policy for a service's hops: the engine (files, reload, version), the hop helpers' hook, the schema.
export {
  cedarHopPolicy,
  compilePolicies,
  denyReason,
  LANYARD_CEDAR_SCHEMA,
  PolicyEngine,
  PolicySet,
  readPolicyFiles,
} from './policy';
export type {
  CallRequest,
  CedarDecision,
  CompiledPolicySet,
  HopPolicyOptions,
  PolicyEngineOptions,
  PolicyLogger,
  PolicySubject,
} from './policy';
export { initDevCa, loadDevCa, mintSvid, writeSvidFiles } from './ca/dev-ca';
export type {
  DevCa,
  InitDevCaOptions,
  LoadDevCaOptions,
  MintSvidOptions,
  MintedSvid,
  SvidFiles,
} from './ca/dev-ca';
