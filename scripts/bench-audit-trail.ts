/**
 * The synthetic audit trail the benchmarks load: root sessions of ten records each (start, hops, a delegated
 * child session with its grant redemption), principals and agents spread over them, a deny now and then.
 */
import type { AuditEvent } from '../src/audit/record';

/** Records per root session in the synthetic trail (start, grants, redeems, hops, end). */
export const PER_ROOT = 10;
export const PRINCIPALS = 10_000;
export const AGENTS = 500;

export function event(i: number): AuditEvent {
  const root = Math.floor(i / PER_ROOT);
  const child = i % PER_ROOT >= 5;
  return {
    time: new Date(Date.UTC(2026, 0, 1) + i * 10),
    event: i % PER_ROOT === 0 ? 'session.start' : i % PER_ROOT === 5 ? 'grant.redeem' : 'hop.decision',
    decision: i % 7 === 3 ? 'deny' : 'allow',
    ...(i % 7 === 3 && { reason: 'ERR_SCOPE_ESCALATION' }),
    actor: `spiffe://bench.local/agents/a${i % AGENTS}`,
    agentId: `e-${i % AGENTS}`,
    sessionId: child ? `s-${root}-c` : `s-${root}`,
    rootSessionId: `s-${root}`,
    ...(child && { parentSessionId: `s-${root}` }),
    principal: `user-${root % PRINCIPALS}`,
    scopes: ['docs:read'],
    serial: (0x100000 + Math.floor(i / 2)).toString(16),
  };
}
