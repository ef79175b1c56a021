/** Cedar policy at the hop and at issuance: the Lanyard schema, policy files, the engine, and its adapters. */
export * from './schema';
export type { PolicySubject } from './entities';
export { workloadEntity } from './entities';
export { compilePolicies, POLICY_VERSION_PREFIX, type CompiledPolicySet } from './compile';
export { listPolicyFiles, readPolicyFiles, POLICY_FILE_EXTENSION, type PolicyFile } from './policy-files';
export {
  PolicySet,
  DEFAULT_DECISION_CACHE_SIZE,
  type PolicySetOptions,
  callRequest,
  issueRequest,
  type CedarRequest,
  type CedarDecision,
  type CallRequest,
  type IssueRequest,
} from './policy-set';
export {
  PolicyEngine,
  POLICY_ENGINE_DEFAULTS,
  type PolicyEngineOptions,
  type PolicyEngineEvents,
  type PolicyLogger,
} from './policy-engine';
export {
  cedarHopPolicy,
  denyReason,
  type CallEvaluator,
  type HopPolicyAnswer,
  type HopPolicyOptions,
  type HopPolicyRequest,
} from './hop-policy';
export { applyIssuancePolicy, NO_POLICY_VERSION, type IssuancePolicySource } from './issuance';
