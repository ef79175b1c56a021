/**
 * The agent context of a workload SVID (issued by Attest or Renew, as opposed to a task session's SVID).
 *
 * - agentId: the registration entry's id — stable across re-attestation and renewal, and how Renew finds
 *   the entry again (so deleting the entry stops renewal).
 * - sessionId = rootSessionId: fresh random per attestation; this is the workload's own scope, not a task
 *   session, and it is kept across renewals so one attestation's SVIDs can be told apart from another's.
 * - principal: the workload itself (provenance 'workload'): no human or upstream principal is involved.
 * - scopes: the entry's allowed_scopes, narrowed by the issuance policy when one is configured (policy.files);
 *   policyVersion: the deciding policy set's version, or 'none' without a policy.
 * - provenance: how this SVID was obtained (attestor type, or 'renew'), the evidence digest, this server.
 */
import { randomBytes } from 'node:crypto';
import { applyIssuancePolicy, NO_POLICY_VERSION, type IssuancePolicySource } from '../../policy';
import type { Entry } from '../../store/types';
import { WORKLOAD_SESSION_PREFIX } from '../../verify/revocation';
import {
  AGENT_CONTEXT_VERSION,
  type AgentContext,
  type TokenProvenance,
} from '../../x509/agent-context/types';

export { NO_POLICY_VERSION };
export const RENEW_METHOD = 'renew';
/** The session id of a workload SVID starts with this; a task session's never does (sessions/issue.ts). */
export { WORKLOAD_SESSION_PREFIX };

export function newWorkloadContext(
  entry: Entry,
  provenance: TokenProvenance,
  policy?: IssuancePolicySource,
): AgentContext {
  // The prefix tells verifiers this is no task session (verify/revocation.ts isTaskSessionQuery).
  const sessionId = `${WORKLOAD_SESSION_PREFIX}${randomBytes(16).toString('hex')}`;
  return applyIssuancePolicy(
    policy,
    entry.spiffeId,
    {
      version: AGENT_CONTEXT_VERSION,
      agentId: entry.id,
      sessionId,
      rootSessionId: sessionId,
      principal: { id: entry.spiffeId, issuer: provenance.issuer, provenance: 'workload' },
      intent: '',
      scopes: [...entry.allowedScopes],
      policyVersion: NO_POLICY_VERSION,
      provenance,
      delegation: [],
    },
    'workload',
  );
}

/**
 * The context of a renewed SVID: the same agent, session and principal as before, scopes as the entry
 * allows them now (an operator who narrowed them wants that to apply at the next renewal) and the issuance
 * policy in force now permits (with its version), fresh provenance.
 */
export function renewedWorkloadContext(
  previous: Readonly<AgentContext>,
  entry: Entry,
  provenance: TokenProvenance,
  policy?: IssuancePolicySource,
): AgentContext {
  return applyIssuancePolicy(
    policy,
    entry.spiffeId,
    {
      ...previous,
      principal: { ...previous.principal },
      scopes: [...entry.allowedScopes],
      provenance,
      delegation: [],
    },
    'workload',
  );
}

/** The context encodes times as whole seconds (as X.509 validity does): drop the milliseconds. */
export function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}
