/**
 * Hop decisions (src/hop/decision.ts) into an audit chain: the listener the TLS/gRPC/HTTP hop helpers call
 * with every accept and refusal. Helpers call it synchronously after deciding, so the append runs in the
 * background; appends stay in decision order (the log serialises them) and a failure goes to `onError`
 * (default: stderr, every time), never into the helper's connection handling.
 *
 * Fail-open by default: while the log cannot be written, traffic continues unrecorded (and each lost record
 * is reported). A service that must not serve what it cannot record passes `failClosed: true` and wraps its
 * authorize with `gate()`: from a failed append until an append succeeds again, every peer is refused with
 * ERR_AUDIT_WRITE_FAILED (UNAVAILABLE, HTTP 503). The refusal is itself a decision to record, and that append
 * is what repairs the file log (FileAuditLog reopens and cuts a torn tail), so the gate reopens by itself.
 *
 * The server takes a shipped chain only when its records are the service's own decisions (shipped-records.ts):
 * each record's `service` must be the chain's name, so a log shipped to the server should be fed by helpers
 * that name the service by its own SPIFFE ID (their default) and be opened with that SPIFFE ID as its chain.
 */
import type { HopDecision, HopDecisionListener } from './decision';
import type { HopAuthorize, HopPolicy } from './policy';
import { AuditWriteFailedError } from '../errors';
import { contextFields } from '../audit/context-fields';
import type { AuditLog } from '../audit/log';
import type { AuditEvent } from '../audit/record';

export interface HopAuditOptions {
  onError?: (error: unknown, decision: HopDecision) => void;
  /** Refuse peers (through `gate()`) while the last append failed. Default false: fail open, loudly. */
  failClosed?: boolean;
}

export interface HopAuditListener extends HopDecisionListener {
  /** Waits for the appends started so far. */
  settled(): Promise<void>;
  /** False from a failed append until one succeeds again. */
  healthy(): boolean;
  /**
   * `authorize` for the hop helpers, refusing every peer while the log is unhealthy when `failClosed` is set;
   * `authorize` itself, unchanged, otherwise.
   */
  gate(authorize: HopAuthorize): HopAuthorize;
}

/** The audit event for one hop decision: identifiers of the peer and its context, never payloads. */
export function hopDecisionEvent(d: HopDecision): AuditEvent {
  const c = d.context;
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
    ...(c !== undefined && contextFields(c)),
    // The version of the policy that decided this hop, else the one the context was issued under.
    ...((d.policyVersion ?? c?.policyVersion) !== undefined && {
      policyVersion: d.policyVersion ?? c?.policyVersion,
    }),
  };
}

/** A listener that records every hop decision in `log`. */
export function auditHopDecisions(log: AuditLog, options: HopAuditOptions = {}): HopAuditListener {
  let pending: Promise<void> = Promise.resolve();
  let healthy = true;
  const mode =
    options.failClosed === true ? 'fail-closed: peers are refused' : 'fail-open: traffic continues';
  const onError =
    options.onError ??
    ((e: unknown, d: HopDecision) =>
      process.stderr.write(
        `lanyard audit: hop decision at ${d.service} NOT RECORDED (${mode} until the log recovers): ${
          (e as Error).message
        }\n`,
      ));
  const listener = (d: HopDecision): void => {
    const p = log.append(hopDecisionEvent(d)).then(
      () => {
        healthy = true;
      },
      (e: unknown) => {
        healthy = false;
        onError(e, d);
      },
    );
    pending = pending.then(() => p);
  };
  const gate = (authorize: HopAuthorize): HopAuthorize => {
    if (options.failClosed !== true) return authorize;
    const gated: HopPolicy = async (peer, request) => {
      if (!healthy) {
        throw new AuditWriteFailedError(
          `${request.service} cannot record its decisions (audit log unhealthy): refusing until it recovers`,
        );
      }
      const answer = (authorize as (...a: Parameters<HopPolicy>) => ReturnType<HopPolicy> | void)(
        peer,
        request,
      );
      // An Authorizer returns nothing (a throw refused): as a policy, that is an allow.
      return answer === undefined ? { allow: true } : answer;
    };
    return gated;
  };
  return Object.assign(listener, { settled: () => pending, healthy: () => healthy, gate });
}
