/**
 * Hop decisions (src/hop/decision.ts) into an audit chain: the listener the TLS/gRPC/HTTP hop helpers call
 * with every accept and refusal. Helpers call it synchronously after deciding, so the append runs in the
 * background; appends stay in decision order (the log serialises them) and a failure goes to `onError`
 * (default: stderr), never into the helper's connection handling.
 */
import type { HopDecision, HopDecisionListener } from '../hop/decision';
import type { AuditLog } from './log';
import type { AuditEvent } from './record';

export interface HopAuditOptions {
  onError?: (error: unknown, decision: HopDecision) => void;
}

/** The audit event for one hop decision: identifiers of the peer and its context, never payloads. */
export function hopDecisionEvent(d: HopDecision): AuditEvent {
  const c = d.context;
  const last = c?.delegation[c.delegation.length - 1];
  return {
    time: d.at,
    event: 'hop.decision',
    decision: d.decision,
    service: d.service,
    action: d.action !== undefined ? `${d.transport} ${d.action}` : d.transport,
    ...(d.reason !== undefined && { reason: d.reason }),
    // A refused peer without a verified context only claimed its ID: say so, as the server's records do.
    ...(d.peerId !== undefined && {
      actor: d.decision === 'allow' || c !== undefined ? d.peerId : `unverified:${d.peerId}`,
    }),
    ...(d.peerSerial !== undefined && { serial: d.peerSerial }),
    ...(c !== undefined && {
      agentId: c.agentId,
      sessionId: c.sessionId,
      rootSessionId: c.rootSessionId,
      principal: c.principal.id,
      principalIssuer: c.principal.issuer,
      scopes: [...c.scopes],
    }),
    ...(last !== undefined && {
      parentSessionId: last.sessionId,
      parentCertSha256: Buffer.from(last.certSha256).toString('hex'),
    }),
    ...((d.policyVersion ?? c?.policyVersion) !== undefined && {
      policyVersion: d.policyVersion ?? c?.policyVersion,
    }),
  };
}

/** A listener that records every hop decision in `log`. `settled()` waits for the appends started so far. */
export function auditHopDecisions(
  log: AuditLog,
  options: HopAuditOptions = {},
): HopDecisionListener & { settled(): Promise<void> } {
  let pending: Promise<void> = Promise.resolve();
  const onError =
    options.onError ??
    ((e: unknown, d: HopDecision) =>
      process.stderr.write(
        `lanyard audit: hop decision at ${d.service} not recorded: ${(e as Error).message}\n`,
      ));
  const listener = (d: HopDecision): void => {
    const p = log.append(hopDecisionEvent(d)).then(
      () => undefined,
      (e: unknown) => onError(e, d),
    );
    pending = pending.then(() => p);
  };
  return Object.assign(listener, { settled: () => pending });
}
