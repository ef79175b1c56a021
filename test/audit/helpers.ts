/** Shared pieces of the audit tests: events that look like a real trail, temp dirs, chain readers. */
import type { AuditEvent } from '../../src/audit/record';

export const CHAIN = 'spiffe://lanyard.local/lanyard/server';

/** The i-th event of a plausible trail: sessions for alice and bob, alternating allow and deny. */
export function sampleEvent(i: number): AuditEvent {
  return {
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
    event: i % 3 === 0 ? 'session.start' : 'hop.decision',
    decision: i % 4 === 3 ? 'deny' : 'allow',
    ...(i % 4 === 3 && { reason: 'ERR_SCOPE_ESCALATION' }),
    actor: `spiffe://lanyard.local/agents/a${i % 5}`,
    agentId: `e-${i % 5}`,
    sessionId: `s-${Math.floor(i / 3)}`,
    rootSessionId: `s-${Math.floor(i / 9)}`,
    principal: i % 2 === 0 ? 'alice' : 'bob',
    scopes: ['docs:read'],
    serial: (1000 + i).toString(16),
  };
}

/**
 * The i-th event of `sampleEvent`'s trail as a service's own hop decision, the only kind a shipped chain may
 * hold: event hop.decision, decided by `service` (the chain's SPIFFE ID), dated `at` plus i milliseconds.
 */
export function hopEvent(i: number, service: string, at: Date = new Date()): AuditEvent {
  return { ...sampleEvent(i), event: 'hop.decision', service, time: new Date(at.getTime() + i) };
}
