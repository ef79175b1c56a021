/**
 * `lanyard/policy`: Cedar policy at a service's hops. Policy files, the engine (compile, reload, version), the
 * hop helpers' hook (`cedarHopPolicy`, given as `authorize`), and the Lanyard Cedar schema. The Cedar
 * WebAssembly module loads on first use.
 */
export { LANYARD_CEDAR_SCHEMA } from '../policy/schema';
export type { PolicySubject } from '../policy/entities';
export { compilePolicies, POLICY_VERSION_PREFIX } from '../policy/compile';
export type { CompiledPolicySet } from '../policy/compile';
export { listPolicyFiles, POLICY_FILE_EXTENSION, readPolicyFiles } from '../policy/policy-files';
export type { PolicyFile } from '../policy/policy-files';
export { callRequest, PolicySet } from '../policy/policy-set';
export type { CallRequest, CedarDecision, CedarRequest, PolicySetOptions } from '../policy/policy-set';
export { PolicyEngine } from '../policy/policy-engine';
export type { PolicyEngineEvents, PolicyEngineOptions, PolicyLogger } from '../policy/policy-engine';
export { cedarHopPolicy, denyReason } from '../policy/hop-policy';
export type {
  CallEvaluator,
  HopPolicyAnswer,
  HopPolicyOptions,
  HopPolicyRequest,
} from '../policy/hop-policy';
