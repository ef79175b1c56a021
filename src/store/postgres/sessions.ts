import { InternalError } from '../../errors';
import type {
  AgentSessionCounts,
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
} from '../types';
import { isForeignKeyViolation, isUniqueViolation, writeRow, type Runner, type Sql } from './sql';
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

interface SerialRow {
  serial_hex: string;
  revoked_at: Date;
  expires_at: Date;
}

/** Channel of the notification each new revocation sends (payload: server id, tab, sequence). */
export const REVOCATIONS_CHANNEL = 'lanyard_revocations';

/** A session row with the serials of its certificates, oldest first (SELECT_SESSION). */
type PgSessionRow = SessionRow & { cert_serials: string[] };

const SELECT_SESSION = `SELECT s.*, ARRAY(SELECT c.serial_hex FROM session_certificates c WHERE c.session_id = s.id
    ORDER BY c.seq) AS cert_serials FROM sessions s`;

/**
 * Sessions, grants and revocations in PostgreSQL: the same contract as SqliteSessions. Writes run under the
 * store's write lock (see Runner), so a read followed by a write inside one of them sees no other writer between.
 */
export class PgSessions {
  constructor(
    private readonly run: Runner,
    private readonly now: () => Date,
    private readonly serverId: string,
  ) {}

  createSession(s: NewSession): Promise<SessionRecord> {
    return this.run.write(async (sql) => {
      try {
        await writeRow(sql, insertRow('sessions', newSessionColumns(s, this.now())));
      } catch (e) {
        if (isUniqueViolation(e) || isForeignKeyViolation(e)) throw sessionExists(s.id);
        throw e;
      }
      return getSession(sql, s.id);
    });
  }

  getSession(id: string): Promise<SessionRecord> {
    return this.run.read((sql) => getSession(sql, id));
  }

  listSessions(q: SessionQuery): Promise<SessionRecord[]> {
    return this.run.read(async (sql) => {
      const where: string[] = [];
      const params: unknown[] = [];
      if (q.spiffeId !== undefined) {
        params.push(q.spiffeId);
        where.push(`s.spiffe_id = $${params.length}`);
      }
      if (q.rootSessionId !== undefined) {
        params.push(q.rootSessionId);
        where.push(`s.root_session_id = $${params.length}`);
      }
      if (q.liveAt !== undefined) {
        params.push(q.liveAt);
        where.push(`s.ended_at IS NULL AND s.expires_at > $${params.length}`);
      }
      params.push(q.limit);
      const { rows } = await sql.query<PgSessionRow>(
        `${SELECT_SESSION} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY s.created_at DESC, s.id LIMIT $${params.length}`,
        params,
      );
      return rows.map((row) => sessionFromRow(row, row.cert_serials));
    });
  }

  addSessionCertificate(sessionId: string, serialHex: string, notAfter: Date): Promise<void> {
    return this.run.write(async (sql) => {
      try {
        await sql.query(
          `INSERT INTO session_certificates (session_id, serial_hex, not_after) VALUES ($1, $2, $3)
           ON CONFLICT (session_id, serial_hex) DO NOTHING`,
          [sessionId, serialHex, notAfter],
        );
      } catch (e) {
        if (isForeignKeyViolation(e)) throw sessionNotFound(sessionId);
        throw e;
      }
    });
  }

  /**
   * Ends the session and, transitively, every session delegated from it that has not ended yet, and records a
   * session revocation for each, all at once. Sessions already ended are walked through but not recorded again.
   */
  endSessionTree(
    id: string,
    now: Date,
    reason: string,
  ): Promise<{ ended: SessionRecord[]; revocations: RevocationRecord[] }> {
    return this.run.write(async (sql) => {
      await getSession(sql, id);
      const { rows: tree } = await sql.query<{ id: string; expires_at: Date }>(
        `WITH RECURSIVE tree(id) AS (
           SELECT $1::text COLLATE "C" UNION ALL SELECT s.id FROM sessions s JOIN tree t ON s.parent_session_id = t.id
         )
         SELECT s.id, s.expires_at FROM sessions s JOIN tree t ON s.id = t.id WHERE s.ended_at IS NULL
         ORDER BY s.depth, s.id`,
        [id],
      );
      const ended: SessionRecord[] = [];
      const revocations: RevocationRecord[] = [];
      let cause: RevocationRecord | undefined;
      for (const row of tree) {
        await sql.query(
          'UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL',
          [now, reason, row.id],
        );
        ended.push(await getSession(sql, row.id));
        const revocation = await addRevocation(
          sql,
          this.serverId,
          sessionTreeRevocation(row.id, row.expires_at, reason, cause),
          now,
        );
        cause ??= revocation;
        revocations.push(revocation);
      }
      return { ended, revocations };
    });
  }

  createGrant(g: NewGrant): Promise<GrantRecord> {
    return this.run.write(async (sql) => {
      try {
        await writeRow(sql, insertRow('grants', newGrantColumns(g, this.now())));
      } catch (e) {
        if (isUniqueViolation(e) || isForeignKeyViolation(e)) throw grantExists(g.id);
        throw e;
      }
      return getGrant(sql, g.id);
    });
  }

  getGrant(id: string): Promise<GrantRecord> {
    return this.run.read((sql) => getGrant(sql, id));
  }

  /** The single-use step: "AND redeemed_at IS NULL" makes the write itself the check. */
  markGrantRedeemed(id: string, now: Date, sessionId: string): Promise<GrantRecord> {
    return this.run.write(async (sql) => {
      const { rows } = await sql.query<GrantRow>(
        `UPDATE grants SET redeemed_at = $1, redeemed_session_id = $2 WHERE id = $3 AND redeemed_at IS NULL
         RETURNING *`,
        [now, sessionId, id],
      );
      const row = rows[0];
      if (row === undefined) {
        await getGrant(sql, id);
        throw grantReplayed(id);
      }
      return grantFromRow(row);
    });
  }

  addRevocation(r: NewRevocation, now: Date): Promise<RevocationRecord> {
    return this.run.write((sql) => addRevocation(sql, this.serverId, r, now));
  }

  countAgentSessions(entryId: string, now: Date, endedSince: Date): Promise<AgentSessionCounts> {
    return this.run.read(async (sql) => {
      const { rows } = await sql.query<{ live: number; ended: number }>(
        `SELECT
           (SELECT COUNT(*) FROM sessions WHERE entry_id = $1 AND ended_at IS NULL AND expires_at > $2) AS live,
           (SELECT COUNT(*) FROM sessions WHERE entry_id = $1 AND ended_at >= $3) AS ended`,
        [entryId, now, endedSince],
      );
      const row = rows[0];
      return { live: row?.live ?? 0, endedInWindow: row?.ended ?? 0 };
    });
  }

  countLiveSessions(now: Date): Promise<number> {
    return this.run.read(async (sql) => {
      const { rows } = await sql.query<{ live: number }>(
        'SELECT COUNT(*)::int AS live FROM sessions WHERE ended_at IS NULL AND expires_at > $1',
        [now],
      );
      return rows[0]?.live ?? 0;
    });
  }

  getRevocation(kind: RevocationKind, id: string): Promise<RevocationRecord | undefined> {
    return this.run.read((sql) => getRevocation(sql, kind, id));
  }

  listRevocations(afterSequence: number, limit?: number): Promise<RevocationRecord[]> {
    return this.run.read(async (sql) => {
      const { rows } = await sql.query<RevocationRow>(
        `SELECT ${REVOCATION_COLUMNS} FROM revocations WHERE sequence > $1 ORDER BY sequence LIMIT $2`,
        [afterSequence, limit ?? null],
      );
      return rows.map(revocationFromRow);
    });
  }

  /** The highest sequence ever handed out (0 before the first), also when its row was pruned. */
  lastRevocationSequence(): Promise<number> {
    return this.run.read(async (sql) => {
      const { rows } = await sql.query<{ last: number }>('SELECT last FROM revocation_counter WHERE id = 1');
      return rows[0]?.last ?? 0;
    });
  }

  pruneRevocations(before: Date): Promise<number> {
    return this.run.write(
      async (sql) =>
        (await sql.query('DELETE FROM revocations WHERE expires_at < $1', [before])).rowCount ?? 0,
    );
  }

  listRevokedSerials(now: Date): Promise<RevokedSerialRecord[]> {
    return this.run.read(async (sql) => {
      const { rows } = await sql.query<SerialRow>(
        `SELECT serial_hex, MIN(revoked_at) AS revoked_at, MAX(expires_at) AS expires_at FROM (
           SELECT target_id AS serial_hex, revoked_at, expires_at FROM revocations
             WHERE kind = 'certificate' AND expires_at > $1
           UNION ALL
           SELECT c.serial_hex, r.revoked_at, c.not_after AS expires_at
             FROM revocations r JOIN session_certificates c ON c.session_id = r.target_id
             WHERE r.kind = 'session' AND c.not_after > $1
         ) s GROUP BY serial_hex ORDER BY serial_hex`,
        [now],
      );
      return rows.map(serialFromRow);
    });
  }

  listRevokedSerialsAfter(afterSequence: number, now: Date): Promise<RevokedSerialsDelta> {
    // One snapshot for the rows and the sequence they cover, so nothing committed in between is skipped.
    return this.run.snapshot(async (sql) => {
      const { rows } = await sql.query<SerialRow>(
        `SELECT target_id AS serial_hex, revoked_at, expires_at FROM revocations
           WHERE kind = 'certificate' AND sequence > $1 AND expires_at > $2
         UNION ALL
         SELECT c.serial_hex, r.revoked_at, c.not_after AS expires_at
           FROM revocations r JOIN session_certificates c ON c.session_id = r.target_id
           WHERE r.kind = 'session' AND r.sequence > $1 AND c.not_after > $2`,
        [afterSequence, now],
      );
      const through = (await sql.query<{ m: number | null }>('SELECT MAX(sequence) AS m FROM revocations'))
        .rows[0]?.m;
      return { serials: rows.map(serialFromRow), throughSequence: Math.max(afterSequence, through ?? 0) };
    });
  }

  pruneGrants(before: Date): Promise<number> {
    return this.run.write(
      async (sql) => (await sql.query('DELETE FROM grants WHERE redeem_by < $1', [before])).rowCount ?? 0,
    );
  }

  /**
   * Drops sessions that expired before `expiredBefore`, with their certificate serials and grants, unless a
   * certificate of the session is valid at `now` or a session delegated from it is kept.
   */
  pruneSessions(expiredBefore: Date, now: Date): Promise<number> {
    return this.run.write(async (sql) => {
      const { rows } = await sql.query<{ id: string }>(
        `WITH RECURSIVE kept(id) AS (
           SELECT s.id FROM sessions s
             WHERE s.expires_at >= $1
                OR EXISTS (SELECT 1 FROM session_certificates c WHERE c.session_id = s.id AND c.not_after >= $2)
           UNION
           SELECT s.parent_session_id FROM sessions s JOIN kept k ON s.id = k.id
             WHERE s.parent_session_id IS NOT NULL
         )
         SELECT id FROM sessions WHERE expires_at < $1 AND id NOT IN (SELECT id FROM kept)`,
        [expiredBefore, now],
      );
      if (rows.length === 0) return 0;
      const ids = rows.map((r) => r.id);
      await sql.query('DELETE FROM session_certificates WHERE session_id = ANY($1::text[])', [ids]);
      await sql.query('DELETE FROM grants WHERE parent_session_id = ANY($1::text[])', [ids]);
      // One statement for parents and children: the foreign key is checked at its end.
      return (await sql.query('DELETE FROM sessions WHERE id = ANY($1::text[])', [ids])).rowCount ?? 0;
    });
  }

  /** The next cRLNumber: one more than the last ever handed out, persisted before it is returned. */
  nextCrlNumber(): Promise<bigint> {
    return this.run.write(async (sql) => {
      const { rows } = await sql.query<{ last: string }>(
        'UPDATE crl_number SET last = last + 1 WHERE id = 1 RETURNING last::text AS last',
      );
      const last = rows[0]?.last;
      if (last === undefined) throw new InternalError('the CRL number counter is missing');
      return BigInt(last);
    });
  }
}

async function getSession(sql: Sql, id: string): Promise<SessionRecord> {
  const row = (await sql.query<PgSessionRow>(`${SELECT_SESSION} WHERE s.id = $1`, [id])).rows[0];
  if (row === undefined) throw sessionNotFound(id);
  return sessionFromRow(row, row.cert_serials);
}

async function getGrant(sql: Sql, id: string): Promise<GrantRecord> {
  const row = (await sql.query<GrantRow>('SELECT * FROM grants WHERE id = $1', [id])).rows[0];
  if (row === undefined) throw grantNotFound(id);
  return grantFromRow(row);
}

async function getRevocation(
  sql: Sql,
  kind: RevocationKind,
  id: string,
): Promise<RevocationRecord | undefined> {
  const row = (
    await sql.query<RevocationRow>(
      `SELECT ${REVOCATION_COLUMNS} FROM revocations WHERE kind = $1 AND target_id = $2`,
      [kind, id],
    )
  ).rows[0];
  return row === undefined ? undefined : revocationFromRow(row);
}

/** Idempotent: revoking what is already revoked returns the existing record with its sequence. */
async function addRevocation(
  sql: Sql,
  serverId: string,
  r: NewRevocation,
  now: Date,
): Promise<RevocationRecord> {
  const existing = await getRevocation(sql, r.kind, r.id);
  if (existing !== undefined) return existing;
  const { rows } = await sql.query<RevocationRow>(
    `WITH next AS (UPDATE revocation_counter SET last = last + 1 WHERE id = 1 RETURNING last)
     INSERT INTO revocations (sequence, kind, target_id, reason, revoked_at, expires_at, cause_sequence)
     SELECT last, $1, $2, $3, $4, $5, $6 FROM next RETURNING ${REVOCATION_COLUMNS}`,
    [r.kind, r.id, r.reason, now, r.expiresAt, r.causeSequence ?? null],
  );
  const row = rows[0];
  if (row === undefined) throw new InternalError('the revocation counter is missing');
  // Delivered at commit (never for a rollback), to every other server: their watchers and CRLs follow at once.
  await sql.query('SELECT pg_notify($1, $2)', [REVOCATIONS_CHANNEL, `${serverId}\t${row.sequence}`]);
  return revocationFromRow(row);
}

function serialFromRow(r: SerialRow): RevokedSerialRecord {
  return { serialHex: r.serial_hex, revokedAt: r.revoked_at, expiresAt: r.expires_at };
}
