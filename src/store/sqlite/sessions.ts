import type Database from 'better-sqlite3';
import { InternalError } from '../../errors';
import type {
  GrantRecord,
  NewGrant,
  NewRevocation,
  NewSession,
  RevocationKind,
  RevocationRecord,
  RevokedSerialRecord,
  RevokedSerialsDelta,
  SessionQuery,
  SessionRecord,
  AgentSessionCounts,
} from '../types';
import { fromMs, isConstraintError, toMs, rowDecoder, type SqliteRow } from './codec';
import {
  grantExists,
  grantFromRow,
  grantNotFound,
  grantReplayed,
  newGrantColumns,
  newSessionColumns,
  revocationFromRow,
  REVOCATION_COLUMNS,
  sessionExists,
  sessionFromRow,
  sessionNotFound,
  sessionTreeRevocation,
  type GrantRow,
  type RevocationRow,
  type SessionRow,
} from '../rows';
import { insertRow } from '../sql-text';
import { StatementCache } from './statement-cache';

/**
 * Sessions, grants and revocations on one SQLite connection. Every method runs inside the caller's
 * connection lock; the ones that write several rows use a nested better-sqlite3 transaction (a savepoint
 * inside Store.transaction), so each is atomic on its own too.
 */
export class SqliteSessions {
  private readonly statements: StatementCache;

  constructor(
    private readonly db: Database.Database,
    private readonly now: () => Date,
  ) {
    this.statements = new StatementCache(db);
  }

  createSession(s: NewSession): SessionRecord {
    try {
      this.statements.writeRow(insertRow('sessions', newSessionColumns(s, this.now())));
    } catch (e) {
      if (isConstraintError(e)) throw sessionExists(s.id);
      throw e;
    }
    return this.getSession(s.id);
  }

  getSession(id: string): SessionRecord {
    const row = this.statements.get('SELECT * FROM sessions WHERE id = ?').get(id) as
      SqliteRow<SessionRow> | undefined;
    if (row === undefined) throw sessionNotFound(id);
    const serials = this.statements
      .get('SELECT serial_hex FROM session_certificates WHERE session_id = ? ORDER BY seq', (q) => q.pluck())
      .all(id) as string[];
    return sessionFromRow(decodeSession(row), serials);
  }

  listSessions(q: SessionQuery): SessionRecord[] {
    const where: string[] = [];
    const params: Record<string, string | number> = { limit: q.limit };
    if (q.spiffeId !== undefined) {
      where.push('spiffe_id = @spiffeId');
      params.spiffeId = q.spiffeId;
    }
    if (q.rootSessionId !== undefined) {
      where.push('root_session_id = @root');
      params.root = q.rootSessionId;
    }
    if (q.liveAt !== undefined) {
      where.push('ended_at IS NULL AND expires_at > @at');
      params.at = toMs(q.liveAt);
    }
    const rows = this.db
      .prepare(
        `SELECT * FROM sessions ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY created_at DESC, id LIMIT @limit`,
      )
      .all(params) as SqliteRow<SessionRow>[];
    const serials = this.db.prepare(
      'SELECT serial_hex FROM session_certificates WHERE session_id = ? ORDER BY seq',
    );
    return rows.map((row) => sessionFromRow(decodeSession(row), serials.pluck().all(row.id) as string[]));
  }

  addSessionCertificate(sessionId: string, serialHex: string, notAfter: Date): void {
    this.db
      .transaction(() => {
        this.getSession(sessionId);
        const next = this.db
          .prepare('SELECT COALESCE(MAX(seq), 0) + 1 FROM session_certificates WHERE session_id = ?')
          .pluck()
          .get(sessionId) as number;
        this.db
          .prepare(
            `INSERT OR IGNORE INTO session_certificates (session_id, serial_hex, not_after, seq)
             VALUES (?, ?, ?, ?)`,
          )
          .run(sessionId, serialHex, toMs(notAfter), next);
      })
      .immediate();
  }

  /**
   * Ends the session and, transitively, every session delegated from it that has not ended yet, and records
   * a session revocation for each, all at once. Sessions already ended are walked through (their
   * descendants ended with them) but not recorded again.
   */
  endSessionTree(
    id: string,
    now: Date,
    reason: string,
  ): { ended: SessionRecord[]; revocations: RevocationRecord[] } {
    return this.db
      .transaction(() => {
        this.getSession(id);
        const tree = this.db
          .prepare(
            `WITH RECURSIVE tree(id) AS (
               SELECT ? UNION ALL SELECT s.id FROM sessions s JOIN tree t ON s.parent_session_id = t.id
             )
             SELECT s.* FROM sessions s JOIN tree t ON s.id = t.id WHERE s.ended_at IS NULL ORDER BY s.depth, s.id`,
          )
          .all(id) as SqliteRow<SessionRow>[];
        const end = this.db.prepare(
          'UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL',
        );
        const ended: SessionRecord[] = [];
        const revocations: RevocationRecord[] = [];
        let cause: RevocationRecord | undefined;
        for (const row of tree) {
          end.run(toMs(now), reason, row.id);
          ended.push(this.getSession(row.id));
          const revocation = this.addRevocation(
            sessionTreeRevocation(row.id, fromMs(row.expires_at), reason, cause),
            now,
          );
          cause ??= revocation;
          revocations.push(revocation);
        }
        return { ended, revocations };
      })
      .immediate();
  }

  createGrant(g: NewGrant): GrantRecord {
    try {
      this.statements.writeRow(insertRow('grants', newGrantColumns(g, this.now())));
    } catch (e) {
      if (isConstraintError(e)) throw grantExists(g.id);
      throw e;
    }
    return this.getGrant(g.id);
  }

  getGrant(id: string): GrantRecord {
    const row = this.db.prepare('SELECT * FROM grants WHERE id = ?').get(id) as
      SqliteRow<GrantRow> | undefined;
    if (row === undefined) throw grantNotFound(id);
    return grantFromRow(decodeGrant(row));
  }

  /** The single-use step: "AND redeemed_at IS NULL" makes the write itself the check. */
  markGrantRedeemed(id: string, now: Date, sessionId: string): GrantRecord {
    return this.db
      .transaction(() => {
        const changes = this.db
          .prepare(
            'UPDATE grants SET redeemed_at = ?, redeemed_session_id = ? WHERE id = ? AND redeemed_at IS NULL',
          )
          .run(toMs(now), sessionId, id).changes;
        if (changes !== 1) {
          this.getGrant(id);
          throw grantReplayed(id);
        }
        return this.getGrant(id);
      })
      .immediate();
  }

  /** Idempotent: revoking what is already revoked returns the existing record with its sequence. */
  addRevocation(r: NewRevocation, now: Date): RevocationRecord {
    const existing = this.getRevocation(r.kind, r.id);
    if (existing !== undefined) return existing;
    const info = this.db
      .prepare(
        `INSERT INTO revocations (kind, target_id, reason, revoked_at, expires_at, cause_sequence)
         VALUES (?, ?, ?, ?, ?, ?)`,
      )
      .run(r.kind, r.id, r.reason, toMs(now), toMs(r.expiresAt), r.causeSequence ?? null);
    return {
      sequence: Number(info.lastInsertRowid),
      kind: r.kind,
      id: r.id,
      reason: r.reason,
      revokedAt: now,
      expiresAt: new Date(r.expiresAt.getTime()),
      ...(r.causeSequence !== undefined ? { causeSequence: r.causeSequence } : {}),
    };
  }

  countAgentSessions(entryId: string, now: Date, endedSince: Date): AgentSessionCounts {
    const row = this.db
      .prepare(
        `SELECT
           (SELECT COUNT(*) FROM sessions WHERE entry_id = @entry AND ended_at IS NULL AND expires_at > @now)
             AS live,
           (SELECT COUNT(*) FROM sessions WHERE entry_id = @entry AND ended_at >= @since) AS ended`,
      )
      .get({ entry: entryId, now: toMs(now), since: toMs(endedSince) }) as { live: number; ended: number };
    return { live: row.live, endedInWindow: row.ended };
  }

  countLiveSessions(now: Date): number {
    const row = this.db
      .prepare('SELECT COUNT(*) AS live FROM sessions WHERE ended_at IS NULL AND expires_at > ?')
      .get(toMs(now)) as { live: number };
    return row.live;
  }

  getRevocation(kind: RevocationKind, id: string): RevocationRecord | undefined {
    const row = this.statements
      .get(`SELECT ${REVOCATION_COLUMNS} FROM revocations WHERE kind = ? AND target_id = ?`)
      .get(kind, id) as SqliteRow<RevocationRow> | undefined;
    return row === undefined ? undefined : revocationFromRow(decodeRevocation(row));
  }

  listRevocations(afterSequence: number, limit?: number): RevocationRecord[] {
    const rows = this.db
      .prepare(`SELECT ${REVOCATION_COLUMNS} FROM revocations WHERE sequence > ? ORDER BY sequence LIMIT ?`)
      .all(afterSequence, limit ?? -1) as SqliteRow<RevocationRow>[];
    return rows.map((row) => revocationFromRow(decodeRevocation(row)));
  }

  /** The highest sequence ever handed out (0 before the first), also when its row was pruned. */
  lastRevocationSequence(): number {
    const seq = this.db
      .prepare("SELECT seq FROM sqlite_sequence WHERE name = 'revocations'")
      .pluck()
      .get() as number | undefined;
    return seq ?? 0;
  }

  pruneRevocations(before: Date): number {
    return this.db.prepare('DELETE FROM revocations WHERE expires_at < ?').run(toMs(before)).changes;
  }

  listRevokedSerials(now: Date): RevokedSerialRecord[] {
    const rows = this.db
      .prepare(
        `SELECT serial_hex, MIN(revoked_at) AS revoked_at, MAX(expires_at) AS expires_at FROM (
           SELECT target_id AS serial_hex, revoked_at, expires_at FROM revocations
             WHERE kind = 'certificate' AND expires_at > @now
           UNION ALL
           SELECT c.serial_hex, r.revoked_at, c.not_after AS expires_at
             FROM revocations r JOIN session_certificates c ON c.session_id = r.target_id
             WHERE r.kind = 'session' AND c.not_after > @now
         ) GROUP BY serial_hex ORDER BY serial_hex`,
      )
      .all({ now: toMs(now) }) as { serial_hex: string; revoked_at: number; expires_at: number }[];
    return rows.map((r) => ({
      serialHex: r.serial_hex,
      revokedAt: fromMs(r.revoked_at),
      expiresAt: fromMs(r.expires_at),
    }));
  }

  listRevokedSerialsAfter(afterSequence: number, now: Date): RevokedSerialsDelta {
    const rows = this.revokedSerialRows(afterSequence, Number.MAX_SAFE_INTEGER, now);
    // Read in the same synchronous step as the rows, so nothing can commit in between.
    const through = this.db.prepare('SELECT MAX(sequence) FROM revocations').pluck().get() as number | null;
    const serials = new Array<RevokedSerialsDelta['serials'][number]>(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const [serialHex, revokedAt, expiresAt] = rows[i]!;
      serials[i] = { serialHex, revokedAt: fromMs(revokedAt), expiresAt: fromMs(expiresAt) };
    }
    return { serials, throughSequence: Math.max(afterSequence, through ?? 0) };
  }

  /**
   * The serials of the revocations with a sequence in (`after`, `through`], in columns (times in milliseconds,
   * no Date per row): one bounded read for the CRL build worker, which reads a large list as a run of these so
   * that no read transaction holds back the WAL checkpoint for long. The rows listRevokedSerialsAfter gives for
   * that range, in the same order; a serial may repeat.
   */
  revokedSerialColumns(
    after: number,
    through: number,
    now: Date,
  ): { serials: string[]; revokedAtMs: Float64Array; expiresAtMs: Float64Array } {
    const rows = this.revokedSerialRows(after, through, now);
    const n = rows.length;
    const out = {
      serials: new Array<string>(n),
      revokedAtMs: new Float64Array(n),
      expiresAtMs: new Float64Array(n),
    };
    for (let i = 0; i < n; i++) {
      const [serialHex, revokedAt, expiresAt] = rows[i]!;
      out.serials[i] = serialHex;
      out.revokedAtMs[i] = revokedAt;
      out.expiresAtMs[i] = expiresAt;
    }
    return out;
  }

  /** [serial, revoked_at, expires_at] of the revocations with a sequence in (after, through], still unexpired. */
  private revokedSerialRows(after: number, through: number, now: Date): [string, number, number][] {
    // `+kind`: the planner would otherwise walk the (kind, target_id) index, i.e. every certificate revocation
    // ever made, for what is a range of the primary key (a CRL build after one EndSession reads one row).
    return this.db
      .prepare(
        `SELECT target_id AS serial_hex, revoked_at, expires_at FROM revocations
           WHERE +kind = 'certificate' AND sequence > @after AND sequence <= @through AND +expires_at > @now
         UNION ALL
         SELECT c.serial_hex, r.revoked_at, c.not_after AS expires_at
           FROM revocations r JOIN session_certificates c ON c.session_id = r.target_id
           WHERE +r.kind = 'session' AND r.sequence > @after AND r.sequence <= @through AND c.not_after > @now`,
      )
      .raw()
      .all({ after, through, now: toMs(now) }) as [string, number, number][];
  }

  pruneGrants(before: Date): number {
    return this.db.prepare('DELETE FROM grants WHERE redeem_by < ?').run(toMs(before)).changes;
  }

  /**
   * Drops sessions that expired before `expiredBefore`, with their certificate serials and grants, unless
   * something may still need them: a certificate of the session valid at `now`, or a session delegated from
   * it that is kept (its ancestors stay, so a kept chain never loses a link). Returns how many sessions went.
   */
  pruneSessions(expiredBefore: Date, now: Date): number {
    return this.db
      .transaction(() => {
        const ids = this.db
          .prepare(
            `WITH RECURSIVE kept(id) AS (
               SELECT s.id FROM sessions s
                 WHERE s.expires_at >= @expiredBefore
                    OR EXISTS (SELECT 1 FROM session_certificates c
                                 WHERE c.session_id = s.id AND c.not_after >= @now)
               UNION
               SELECT s.parent_session_id FROM sessions s JOIN kept k ON s.id = k.id
                 WHERE s.parent_session_id IS NOT NULL
             )
             SELECT id FROM sessions WHERE expires_at < @expiredBefore AND id NOT IN (SELECT id FROM kept)`,
          )
          .pluck()
          .all({ expiredBefore: toMs(expiredBefore), now: toMs(now) }) as string[];
        if (ids.length === 0) return 0;
        const json = JSON.stringify(ids);
        const inIds = 'IN (SELECT value FROM json_each(?))';
        this.db.prepare(`DELETE FROM session_certificates WHERE session_id ${inIds}`).run(json);
        this.db.prepare(`DELETE FROM grants WHERE parent_session_id ${inIds}`).run(json);
        // One statement for parents and children: SQLite checks the foreign keys at its end.
        return this.db.prepare(`DELETE FROM sessions WHERE id ${inIds}`).run(json).changes;
      })
      .immediate();
  }

  /** The next cRLNumber: one more than the last ever handed out, persisted before it is returned. */
  nextCrlNumber(): bigint {
    const last = this.db
      .prepare('UPDATE crl_number SET last = last + 1 WHERE id = 1 RETURNING last')
      .safeIntegers()
      .pluck()
      .get() as bigint | undefined;
    if (last === undefined) throw new InternalError('the CRL number counter is missing');
    return last;
  }
}

const decodeSession = rowDecoder<SessionRow>({
  scopes: 'strings',
  created_at: 'time',
  expires_at: 'time',
  ended_at: 'time',
});
const decodeGrant = rowDecoder<GrantRow>({
  scopes: 'strings',
  not_after: 'time',
  redeem_by: 'time',
  created_at: 'time',
  redeemed_at: 'time',
});
const decodeRevocation = rowDecoder<RevocationRow>({ revoked_at: 'time', expires_at: 'time' });
