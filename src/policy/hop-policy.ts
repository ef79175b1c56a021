/**
 * The Cedar engine as the hop helpers' policy hook (src/hop/policy.ts `HopPolicy`): each request a helper
 * verified becomes a `call` request (principal = the peer, resource = the service, context.operation = the
 * gRPC method or HTTP route), and the answer carries the policy version, which the helper records in its
 * HopDecision. The types are declared structurally here so src/policy does not depend on src/hop.
 */
import type { PolicySubject } from './entities';
import type { CedarDecision } from './policy-set';
import type { CallRequest } from './policy-set';

export interface HopPolicyRequest {
  transport: string;
  /** gRPC method path or `METHOD /route`; absent for a bare TLS connection (operation ""). */
  action?: string;
  service: string;
}

export interface HopPolicyAnswer {
  allow: boolean;
  reason?: string;
  policyVersion?: string;
}

/** Anything that evaluates a call under its current policies: a PolicyEngine or one PolicySet. */
export interface CallEvaluator {
  evaluate(req: CallRequest): CedarDecision;
}

export interface HopPolicyOptions {
  /** Overrides the service name the helper passes, e.g. to use one name for several replicas. */
  service?: string;
  /** Every decision with its reasons and errors, e.g. to print or collect it. */
  onDecision?: (decision: CedarDecision, request: CallRequest) => void;
}

export function cedarHopPolicy(
  engine: CallEvaluator,
  options: HopPolicyOptions = {},
): (peer: PolicySubject, request: HopPolicyRequest) => Promise<HopPolicyAnswer> {
  return (peer, request) => {
    const call: CallRequest = {
      peer,
      action: request.action ?? '',
      service: options.service ?? request.service,
      transport: request.transport,
    };
    const decision = engine.evaluate(call);
    options.onDecision?.(decision, call);
    return Promise.resolve({
      allow: decision.decision === 'allow',
      ...(decision.decision === 'deny' && { reason: denyReason(decision) }),
      policyVersion: decision.policyVersion,
    });
  };
}

/** A refusal's reason for logs and the audit record: the forbids that matched, the errors, or no permit. */
export function denyReason(decision: CedarDecision): string {
  if (decision.errors.length > 0) return `policy error: ${decision.errors.join('; ')}`;
  if (decision.reasons.length > 0) return `forbidden by ${decision.reasons.join(', ')}`;
  return 'no policy permits it';
}
