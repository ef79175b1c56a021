/**
 * The agent-context extension: typed values, the DER codec, and the delegation-link signature.
 * The ASN.1 module is specified at the top of schema.ts.
 */
export {
  AGENT_CONTEXT_LIMITS,
  AGENT_CONTEXT_VERSION,
  DELEGATION_BINDING_VERSION,
  type AgentContext,
  type DelegationBinding,
  type DelegationLink,
  type Principal,
  type PrincipalProvenance,
  type TokenProvenance,
} from './types';
export {
  agentContextExtension,
  DEFAULT_AGENT_CONTEXT_OID,
  readAgentContext,
  resolveAgentContextOid,
  RETIRED_AGENT_CONTEXT_OIDS,
} from './oid';
export {
  decodeAgentContext,
  decodeDelegationBinding,
  delegationLinkSha256,
  encodeAgentContext,
  encodeDelegationBinding,
  encodeDelegationLink,
} from './codec';
export { assertValidAgentContext, assertValidDelegationBinding, assertValidDelegationLink } from './validate';
export {
  buildDelegationLink,
  signDelegationBinding,
  verifyDelegationLinkSignature,
  type DelegationLinkParams,
} from './delegation-signature';
export {
  agentContextFromJson,
  agentContextToJson,
  type AgentContextJson,
  type DelegationBindingJson,
  type DelegationLinkJson,
} from './json';
