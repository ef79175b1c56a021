/**
 * Revocation on top of short TTLs: a verifier asks a RevocationChecker about every SVID it has otherwise
 * accepted. Sessions end explicitly and the end cascades, so a session anywhere up the delegation chain being
 * revoked revokes the leaf: the query carries the leaf's session, its root session, and every parent session.
 */

/** What a verifier asks about one SVID whose path, leaf rules and context rules already passed. */
export interface RevocationQuery {
  /** Leaf serial number, lower-case hex without leading zeros (as ParsedCertificate.serialHex). */
  serialHex: string;
  /** SHA-256 (hex) of the certificate that issued the leaf: serials are unique per issuer only. */
  issuerSha256Hex?: string;
  /** SHA-256 (hex) of the leaf's DER. */
  certSha256Hex: string;
  /** The leaf's SPIFFE ID. */
  spiffeId: string;
  /** From the agent context, when the SVID has one. */
  sessionId?: string;
  rootSessionId?: string;
  /** Session IDs of the parent hops, root first (empty when not delegated). */
  delegationSessionIds: readonly string[];
}

/** Why an SVID is revoked. */
export interface RevocationReason {
  /** What was revoked: the certificate itself, or a session it belongs to. */
  kind: 'certificate' | 'session';
  /** The revoked serial (hex) or session ID. */
  id: string;
  /** For a session: where it sits relative to the leaf. */
  relation?: 'own' | 'root' | 'ancestor';
  /** Free text from the revoker (e.g. "task ended"), for logs. */
  detail?: string;
}

/**
 * A source of revocation state. Return `false` when the SVID is not revoked; `true` or a reason when it is.
 * The verifier treats anything other than `false` as revoked, and lets a throw propagate: a checker that cannot
 * answer fails closed. Implementations must answer synchronously from local state (a verifier is on the hot path
 * of every handshake); the streamed RevocationCache keeps such state up to date.
 */
export interface RevocationChecker {
  isRevoked(query: RevocationQuery): boolean | RevocationReason;
}

/** What became revoked, for RevocationNotifier listeners. */
export interface RevokedTarget {
  kind: 'certificate' | 'session';
  /** Serial (hex) or session id. */
  id: string;
}

/**
 * A change of a checker's answers: these targets are revoked now, or (`recheckAll`) any answer may have
 * changed (the checker turned stale and refuses what it accepted).
 */
export type RevocationChange = { revoked: readonly RevokedTarget[] } | { recheckAll: true };
export type RevocationChangeListener = (change: RevocationChange) => void;

/**
 * A checker that says when its answers change, so a hop helper can close the open connections and streams of
 * a peer it accepted before (RevocationCache and StaticRevocationList are both). Listeners run synchronously,
 * after the checker already answers with the change.
 */
export interface RevocationNotifier {
  onRevocationChange(listener: RevocationChangeListener): () => void;
}

export function isRevocationNotifier(c: unknown): c is RevocationNotifier {
  return typeof (c as Partial<RevocationNotifier> | undefined)?.onRevocationChange === 'function';
}

/**
 * The session ID prefix of a workload SVID (issued by Attest or Renew): that session is the workload's own
 * scope and never ended by EndSession, unlike a task session (StartSession, RedeemGrant). See
 * server/attestation/workload-context.ts.
 */
export const WORKLOAD_SESSION_PREFIX = 'ws-';

/**
 * Whether the SVID asked about belongs to a task session (started, or delegated): what a stale revocation
 * state cannot vouch for. Fails closed: anything with a session that is not a workload's counts.
 */
export function isTaskSessionQuery(q: RevocationQuery): boolean {
  if (q.delegationSessionIds.length > 0) return true;
  const own = q.sessionId ?? q.rootSessionId;
  return own !== undefined && !own.startsWith(WORKLOAD_SESSION_PREFIX);
}

/** A fixed, in-memory revocation list for tests, the CLI, and static deployments. */
export class StaticRevocationList implements RevocationChecker, RevocationNotifier {
  /** serial hex -> issuer hashes it is revoked under ('*' = under any issuer). */
  private readonly serials = new Map<string, Set<string>>();
  private readonly sessions = new Map<string, string | undefined>();
  private readonly listeners = new Set<RevocationChangeListener>();

  constructor(init: { serials?: Iterable<string>; sessions?: Iterable<string> } = {}) {
    for (const s of init.serials ?? []) this.revokeSerial(s);
    for (const s of init.sessions ?? []) this.revokeSession(s);
  }

  /**
   * Revoke a certificate by serial. With `issuerSha256Hex`, only the certificate of that issuer; without it,
   * every certificate with the serial (safe, since a false revocation only costs a re-issue).
   */
  revokeSerial(serialHex: string, issuerSha256Hex?: string): this {
    const key = normaliseSerial(serialHex);
    const issuers = this.serials.get(key) ?? new Set<string>();
    issuers.add(issuerSha256Hex?.toLowerCase() ?? '*');
    this.serials.set(key, issuers);
    this.notify({ kind: 'certificate', id: key });
    return this;
  }

  /** Revoke a session: its own SVIDs and every SVID delegated from it, transitively. */
  revokeSession(sessionId: string, detail?: string): this {
    this.sessions.set(sessionId, detail);
    this.notify({ kind: 'session', id: sessionId });
    return this;
  }

  onRevocationChange(listener: RevocationChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(target: RevokedTarget): void {
    for (const l of this.listeners) l({ revoked: [target] });
  }

  isRevoked(q: RevocationQuery): false | RevocationReason {
    const serial = normaliseSerial(q.serialHex);
    const issuers = this.serials.get(serial);
    if (
      issuers !== undefined &&
      (issuers.has('*') || (q.issuerSha256Hex !== undefined && issuers.has(q.issuerSha256Hex.toLowerCase())))
    ) {
      return { kind: 'certificate', id: serial };
    }
    // No arrays built: this runs on every verification, memo hits included.
    if (this.sessions.size === 0) return false;
    if (q.sessionId !== undefined && this.sessions.has(q.sessionId)) return this.ended(q.sessionId, 'own');
    if (q.rootSessionId !== undefined && this.sessions.has(q.rootSessionId)) {
      return this.ended(q.rootSessionId, 'root');
    }
    for (const id of q.delegationSessionIds) if (this.sessions.has(id)) return this.ended(id, 'ancestor');
    return false;
  }

  private ended(id: string, relation: RevocationReason['relation']): RevocationReason {
    const detail = this.sessions.get(id);
    return { kind: 'session', id, relation, ...(detail !== undefined ? { detail } : {}) };
  }
}

/** Serial numbers compare as integers: case and leading zeros do not matter. */
export function normaliseSerial(hex: string): string {
  if (isNormalSerial(hex)) return hex;
  const s = hex.toLowerCase().replace(/[:\s]/g, '').replace(/^0+/, '');
  return s === '' ? '0' : s;
}

/** A one-line description of a checker's answer for the RevokedError message. */
export function describeRevocation(answer: true | RevocationReason): string {
  if (answer === true) return 'the SVID is revoked';
  if (answer.kind === 'certificate') return `certificate serial ${answer.id} is revoked`;
  const where =
    answer.relation === 'root'
      ? 'root session'
      : answer.relation === 'ancestor'
        ? 'parent session'
        : 'session';
  return `${where} ${answer.id} has ended${answer.detail !== undefined ? ` (${answer.detail})` : ''}`;
}

/** Lower-case hex without leading zeros (as ParsedCertificate.serialHex gives it): nothing to normalise. */
function isNormalSerial(hex: string): boolean {
  const n = hex.length;
  if (n === 0 || (hex.charCodeAt(0) === 0x30 && n > 1)) return false;
  for (let i = 0; i < n; i++) {
    const c = hex.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}
