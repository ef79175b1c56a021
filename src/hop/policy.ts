/**
 * The authorization step of every hop helper. A helper accepts either one of the synchronous authorizers of
 * src/verify/authorize.ts (throw to refuse) or a `HopPolicy`: an async decision over the verified peer and the
 * request, which is how a policy engine (Cedar, src/policy) plugs in without the helpers depending on it.
 */
import { PolicyDeniedError } from '../errors';
import type { Authorizer } from '../verify/authorize';
import type { VerifyX509SvidResult } from '../verify/verify-x509-svid';
import type { HopTransport } from './decision';

/** What is being asked of the service, as a policy sees it. */
export interface HopRequest {
  transport: HopTransport;
  /** gRPC method path, `METHOD /route` for HTTP, undefined for a bare TLS connection. */
  action?: string;
  /** The deciding service (its own SPIFFE ID when it has one). */
  service: string;
}

export interface PolicyDecision {
  allow: boolean;
  /** Why, for the refusal message and the audit record. */
  reason?: string;
  /** Content hash of the policy set that decided. */
  policyVersion?: string;
}

/** An async policy decision; a throw or a rejected promise refuses (fails closed). */
export type HopPolicy = (
  peer: VerifyX509SvidResult,
  request: HopRequest,
) => PolicyDecision | Promise<PolicyDecision>;

/** Either kind. An Authorizer returns nothing; a HopPolicy returns a decision. */
export type HopAuthorize = Authorizer | HopPolicy;

/**
 * Runs `authorize` on a verified peer. Resolves with the policy version when a policy decided; rejects with the
 * authorizer's AuthorizationError (ERR_UNAUTHORIZED) or a PolicyDeniedError (ERR_POLICY_DENIED).
 */
export { PolicyDeniedError };

export async function runAuthorize(
  authorize: HopAuthorize,
  peer: VerifyX509SvidResult,
  request: HopRequest,
): Promise<{ policyVersion?: string }> {
  const answer = callAuthorize(authorize, peer, request);
  return answer === undefined ? {} : policyOutcome(await answer, peer, request);
}

/**
 * Calls `authorize`: undefined when an Authorizer allowed (it throws to refuse), else the policy's decision,
 * for policyOutcome. Lets a helper answer an Authorizer's allow without waiting for a promise.
 */
export function callAuthorize(
  authorize: HopAuthorize,
  peer: VerifyX509SvidResult,
  request: HopRequest,
): PolicyDecision | Promise<PolicyDecision> | undefined {
  const answer = (
    authorize as (p: VerifyX509SvidResult, r: HopRequest) => PolicyDecision | Promise<PolicyDecision> | void
  )(peer, request);
  return answer === undefined ? undefined : answer;
}

/** The policy version of an allowing decision; throws PolicyDeniedError for anything else. */
export function policyOutcome(
  decision: PolicyDecision,
  peer: VerifyX509SvidResult,
  request: HopRequest,
): { policyVersion?: string } {
  // Anything but an explicit allow refuses: a policy hook with a bug must not open the door.
  if (typeof decision !== 'object' || decision === null || decision.allow !== true) {
    const reason = typeof decision === 'object' && decision !== null ? decision.reason : undefined;
    const version = typeof decision === 'object' && decision !== null ? decision.policyVersion : undefined;
    throw new PolicyDeniedError(
      `policy denied ${peer.id.toString()}${request.action !== undefined ? ` for ${request.action}` : ''}${
        reason !== undefined ? `: ${reason}` : ''
      }`,
      {
        ...(reason !== undefined && { policyReason: reason }),
        ...(version !== undefined && { policyVersion: version }),
      },
    );
  }
  return decision.policyVersion !== undefined ? { policyVersion: decision.policyVersion } : {};
}
