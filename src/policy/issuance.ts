/**
 * The issuing server's use of the engine: which of the scopes an SVID would carry the policy lets it carry.
 * Each scope is one `issue` request (principal = the SVID's subject as it would be issued, resource =
 * `Lanyard::Scope::"<scope>"`, context.kind = workload | session | delegation), all under one snapshot so
 * the scopes granted and the version written into the SVID belong together.
 */
import { SpiffeId } from '../spiffe';
import type { AgentContext } from '../x509/agent-context/types';
import type { PolicySet } from './policy-set';
import type { IssuanceKind } from './schema';

/** policyVersion of an SVID issued without a policy engine: says plainly that no policy was evaluated. */
export const NO_POLICY_VERSION = 'none';

/** What the server asks for a decision: a PolicyEngine (the current set) or one fixed PolicySet. */
export interface IssuancePolicySource {
  snapshot(): PolicySet;
}

/**
 * The context with its scopes narrowed to those the policy permits and policyVersion set to the deciding
 * set's version. Without a policy: the scopes unchanged and policyVersion "none".
 */
export function applyIssuancePolicy(
  policy: IssuancePolicySource | undefined,
  spiffeId: string,
  context: AgentContext,
  kind: IssuanceKind,
): AgentContext {
  if (policy === undefined) return { ...context, policyVersion: NO_POLICY_VERSION };
  const set = policy.snapshot();
  const subject = { id: SpiffeId.parse(spiffeId), context };
  return {
    ...context,
    scopes: set.permittedScopes(subject, [...new Set(context.scopes)], kind),
    policyVersion: set.version,
  };
}
