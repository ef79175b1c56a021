/**
 * Investigation: from audit records (the server's chain and shipped hop chains) to the tree an investigator
 * reads: principal -> root sessions -> delegated sessions -> what happened in each (grants, renewals, hops
 * that accepted or refused it, the end), with times and decisions. As text and as JSON.
 *
 * Only the server's own chain says what a session is: who started it for which principal, its parent, its
 * scopes, when it ended. A shipped chain is a service's account of its own hops, so its records are shown
 * where they belong, each labelled with the chain that reported it, and never start, end, re-parent or
 * re-attribute a session; those naming a session the server has no record of are listed apart.
 */
import { SERVER_ID_PATH as SERVER_SPIFFE_PATH } from '../internal/server-id';
import type { AuditRecord } from './record';

export interface TraceEvent {
  time: string;
  event: string;
  decision: string;
  reason?: string;
  actor?: string;
  subject?: string;
  serial?: string;
  service?: string;
  action?: string;
  scopes?: string[];
  policyVersion?: string;
  /** Where the record is: chain and sequence number, to check it with `lanyard audit verify`. */
  chain: string;
  seq: number;
  /** Set (to the chain's name) when a service shipped the record: its own report, not the server's. */
  reportedBy?: string;
  /** The session a shipped record names (it may not be one the server knows). */
  sessionId?: string;
}

export interface TraceSession {
  sessionId: string;
  parentSessionId?: string;
  rootSessionId?: string;
  spiffeId?: string;
  agentId?: string;
  scopes?: string[];
  startedAt?: string;
  endedAt?: string;
  events: TraceEvent[];
  children: TraceSession[];
}

export interface TracePrincipal {
  principal: string;
  issuer?: string;
  sessions: TraceSession[];
}

export interface Trace {
  principals: TracePrincipal[];
  /** Records that name no session (workload SVIDs, refusals before a session was known), in time order. */
  other: TraceEvent[];
  /** Shipped records naming a session the server's chain (as queried) has no record of, in time order. */
  reported: TraceEvent[];
}

export interface TraceOptions {
  /**
   * The server's chain: only its records define sessions. Default: every chain named
   * `spiffe://<trust domain>/lanyard/server`.
   */
  serverChain?: string;
}

function isServerChain(chain: string, options: TraceOptions): boolean {
  if (options.serverChain !== undefined) return chain === options.serverChain;
  const m = /^spiffe:\/\/[^/]+(\/.*)$/.exec(chain);
  return m?.[1] === SERVER_SPIFFE_PATH;
}

function toEvent(r: AuditRecord, shipped: boolean): TraceEvent {
  const e: TraceEvent = { time: r.time, event: r.event, decision: r.decision, chain: r.chain, seq: r.seq };
  if (shipped) {
    e.reportedBy = r.chain;
    if (r.sessionId !== undefined) e.sessionId = r.sessionId;
  }
  for (const k of ['reason', 'actor', 'subject', 'serial', 'service', 'action', 'policyVersion'] as const) {
    const v = r[k];
    if (v !== undefined) e[k] = v;
  }
  if (r.scopes !== undefined) e.scopes = [...r.scopes];
  return e;
}

const byTime = (
  a: { time: string; chain: string; seq: number },
  b: { time: string; chain: string; seq: number },
): number =>
  a.time < b.time ? -1 : a.time > b.time ? 1 : a.chain < b.chain ? -1 : a.chain > b.chain ? 1 : a.seq - b.seq;

export function buildTrace(records: readonly AuditRecord[], options: TraceOptions = {}): Trace {
  const sorted = [...records].sort(byTime);
  const seen = new Set<string>();
  const sessions = new Map<string, TraceSession & { principal?: string; principalIssuer?: string }>();
  const other: TraceEvent[] = [];
  const shippedRecords: AuditRecord[] = [];
  const sessionFor = (id: string): TraceSession & { principal?: string; principalIssuer?: string } => {
    let s = sessions.get(id);
    if (s === undefined) {
      s = { sessionId: id, events: [], children: [] };
      sessions.set(id, s);
    }
    return s;
  };
  for (const r of sorted) {
    // The same record may come back from several queries.
    const key = `${r.chain}\u0000${r.seq}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (!isServerChain(r.chain, options)) {
      shippedRecords.push(r);
      continue;
    }
    // A session ended by a cascade is its own record, with the ended session as subject.
    const target =
      r.event === 'session.end' && r.decision === 'allow' ? (r.subject ?? r.sessionId) : r.sessionId;
    if (target === undefined) {
      other.push(toEvent(r, false));
      continue;
    }
    const s = sessionFor(target);
    if (r.rootSessionId !== undefined) s.rootSessionId ??= r.rootSessionId;
    if (r.principal !== undefined && s.principal === undefined) {
      s.principal = r.principal;
      if (r.principalIssuer !== undefined) s.principalIssuer = r.principalIssuer;
    }
    const starts = (r.event === 'session.start' || r.event === 'grant.redeem') && r.decision === 'allow';
    if (starts) {
      s.startedAt ??= r.time;
      if (r.subject !== undefined) s.spiffeId = r.subject;
      if (r.agentId !== undefined) s.agentId = r.agentId;
      if (r.scopes !== undefined) s.scopes = [...r.scopes];
      if (r.parentSessionId !== undefined && r.parentSessionId !== target)
        s.parentSessionId = r.parentSessionId;
    }
    if (r.event === 'session.end' && r.decision === 'allow') s.endedAt ??= r.time;
    if (
      r.event === 'hop.decision' &&
      s.parentSessionId === undefined &&
      r.parentSessionId !== undefined &&
      r.parentSessionId !== target
    ) {
      s.parentSessionId = r.parentSessionId;
    }
    s.agentId ??= r.agentId;
    s.events.push(toEvent(r, false));
  }
  // A service's report sits with the session it names, when the server knows that session; it adds an
  // event and changes nothing else.
  const reported: TraceEvent[] = [];
  for (const r of shippedRecords) {
    const e = toEvent(r, true);
    const s = r.sessionId !== undefined ? sessions.get(r.sessionId) : undefined;
    if (s !== undefined) s.events.push(e);
    else if (r.sessionId === undefined) other.push(e);
    else reported.push(e);
  }
  for (const s of sessions.values()) s.events.sort(byTime);
  other.sort(byTime);
  // Parents named by a child but never seen themselves still appear, so the tree stays connected.
  for (const s of [...sessions.values()]) if (s.parentSessionId !== undefined) sessionFor(s.parentSessionId);
  const roots: (TraceSession & { principal?: string; principalIssuer?: string })[] = [];
  for (const s of sessions.values()) {
    const parent = s.parentSessionId === undefined ? undefined : sessions.get(s.parentSessionId);
    if (parent !== undefined && parent !== s) parent.children.push(s);
    else roots.push(s);
  }
  const principals = new Map<string, TracePrincipal>();
  for (const root of roots) {
    const p = root.principal ?? firstPrincipal(root) ?? '(unknown principal)';
    let entry = principals.get(p);
    if (entry === undefined) {
      entry = { principal: p, sessions: [] };
      const issuer = root.principalIssuer;
      if (issuer !== undefined) entry.issuer = issuer;
      principals.set(p, entry);
    }
    entry.sessions.push(root);
  }
  const clean = (s: TraceSession & { principal?: string; principalIssuer?: string }): TraceSession => {
    const { principal: _p, principalIssuer: _i, children, ...rest } = s;
    return {
      ...rest,
      children: children.sort((a, b) => (a.startedAt ?? '').localeCompare(b.startedAt ?? '')).map(clean),
    };
  };
  return {
    principals: [...principals.values()]
      .sort((a, b) => a.principal.localeCompare(b.principal))
      .map((p) => ({
        ...p,
        sessions: p.sessions.sort((a, b) => (a.startedAt ?? '').localeCompare(b.startedAt ?? '')).map(clean),
      })),
    other,
    reported,
  };
}

function firstPrincipal(s: TraceSession & { principal?: string }): string | undefined {
  if (s.principal !== undefined) return s.principal;
  for (const c of s.children) {
    const p = firstPrincipal(c);
    if (p !== undefined) return p;
  }
  return undefined;
}

function eventLine(e: TraceEvent): string {
  const parts = [e.time, e.event, e.decision === 'deny' ? `DENY ${e.reason ?? ''}`.trim() : 'allow'];
  if (e.event === 'hop.decision') {
    if (e.service !== undefined) parts.push(`at ${e.service}`);
    if (e.action !== undefined) parts.push(e.action);
    if (e.actor !== undefined) parts.push(`peer ${e.actor}`);
  } else {
    if (e.actor !== undefined) parts.push(`by ${e.actor}`);
    if (e.subject !== undefined) parts.push(`-> ${e.subject}`);
    if (e.action !== undefined) parts.push(`(${e.action})`);
  }
  if (e.serial !== undefined) parts.push(`serial ${e.serial}`);
  if (e.scopes !== undefined && e.event !== 'hop.decision') parts.push(`[${e.scopes.join(' ')}]`);
  if (e.decision === 'allow' && e.reason !== undefined) parts.push(`(${e.reason})`);
  parts.push(e.reportedBy !== undefined ? `reported by ${e.reportedBy} #${e.seq}` : `#${e.seq}`);
  return parts.join('  ');
}

/** The tree as indented text, one line per session and per event. */
export function renderTraceText(trace: Trace): string {
  const out: string[] = [];
  const session = (s: TraceSession, depth: number): void => {
    const pad = '  '.repeat(depth);
    const head = [`${pad}session ${s.sessionId}`];
    if (s.spiffeId !== undefined) head.push(s.spiffeId);
    if (s.agentId !== undefined) head.push(`agent ${s.agentId}`);
    if (s.scopes !== undefined) head.push(`scopes [${s.scopes.join(' ')}]`);
    if (s.startedAt !== undefined) head.push(`started ${s.startedAt}`);
    head.push(s.endedAt !== undefined ? `ended ${s.endedAt}` : 'not ended');
    out.push(head.join('  '));
    for (const e of s.events) out.push(`${pad}  - ${eventLine(e)}`);
    for (const c of s.children) session(c, depth + 1);
  };
  for (const p of trace.principals) {
    out.push(`principal ${p.principal}${p.issuer !== undefined ? ` (${p.issuer})` : ''}`);
    for (const s of p.sessions) session(s, 1);
  }
  if (trace.other.length > 0) {
    out.push('other records');
    for (const e of trace.other) out.push(`  - ${eventLine(e)}`);
  }
  if (trace.reported.length > 0) {
    out.push("reported by services, for sessions the server's records here do not show");
    for (const e of trace.reported) out.push(`  - ${eventLine(e)}  session ${e.sessionId ?? '?'}`);
  }
  if (out.length === 0) out.push('no audit records match');
  return `${out.join('\n')}\n`;
}
