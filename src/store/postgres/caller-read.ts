/** Caller authentication's records in one statement, or one snapshot for a session SVID (Store.readCaller). */
import { entryFromRow, sessionFromRow, type EntryRow, type SessionRow } from '../rows';
import type { CallerQuery, CallerRecords } from '../store';
import type { Runner, Sql } from './sql';

/**
 * The serial's revocation, whether the session is stored, and the entry with its selectors. The LEFT JOIN from
 * one row answers a row also when the entry is gone (its columns are then NULL).
 */
const CALLER = `SELECT
    EXISTS (SELECT 1 FROM revocations WHERE kind = 'certificate' AND target_id = $1) AS certificate_revoked,
    EXISTS (SELECT 1 FROM sessions WHERE id = $2) AS session_stored,
    e.*,
    (SELECT json_agg(json_build_array(s.type, s.value) ORDER BY s.type, s.value)
       FROM entry_selectors s WHERE s.entry_id = e.id) AS selectors
  FROM (SELECT 1) AS one LEFT JOIN entries e ON e.id = $3`;

/**
 * The session and its ancestors, nearest first, with whether the serials each hangs on are revoked. The walk
 * stops at a root, at a parent that is not stored (the final JOIN drops it) or after $2 ancestors.
 */
const SESSION_CHAIN = `WITH RECURSIVE chain(id, hop) AS (
    SELECT id, 0 FROM sessions WHERE id = $1
    UNION ALL
    SELECT s.parent_session_id, c.hop + 1 FROM chain c JOIN sessions s ON s.id = c.id
     WHERE s.parent_session_id IS NOT NULL AND c.hop < $2
  )
  SELECT s.*,
    ARRAY(SELECT sc.serial_hex FROM session_certificates sc WHERE sc.session_id = s.id ORDER BY sc.seq)
      AS cert_serials,
    EXISTS (SELECT 1 FROM revocations r WHERE r.kind = 'certificate' AND r.target_id = s.opener_serial)
      AS opener_revoked,
    EXISTS (SELECT 1 FROM revocations r WHERE r.kind = 'certificate' AND r.target_id = s.parent_cert_serial)
      AS parent_cert_revoked
  FROM chain c JOIN sessions s ON s.id = c.id ORDER BY c.hop`;

type CallerRow = Partial<EntryRow> & {
  certificate_revoked: boolean;
  session_stored: boolean;
  selectors: [string, string][] | null;
};

type ChainRow = SessionRow & {
  cert_serials: string[];
  opener_revoked: boolean;
  parent_cert_revoked: boolean;
};

/**
 * A workload SVID (no stored session, the Renew path) costs one statement, atomic by itself. A session SVID's
 * records are read again with its chain in one REPEATABLE READ snapshot, so they all stem from one instant.
 */
export async function readCallerPg(run: Runner, query: CallerQuery): Promise<CallerRecords> {
  const first = await run.read((sql) => callerRow(sql, query));
  if (!first.session_stored || query.sessionId === undefined) return records(first, []);
  const sessionId = query.sessionId;
  return run.snapshot(async (sql) => {
    const row = await callerRow(sql, query);
    const chain = row.session_stored
      ? (await sql.query<ChainRow>(SESSION_CHAIN, [sessionId, query.maxAncestors])).rows
      : [];
    return records(row, chain);
  });
}

async function callerRow(sql: Sql, query: CallerQuery): Promise<CallerRow> {
  const { rows } = await sql.query<CallerRow>(CALLER, [
    query.serialHex,
    query.sessionId ?? null,
    query.entryId ?? null,
  ]);
  return rows[0]!;
}

function records(row: CallerRow, chain: readonly ChainRow[]): CallerRecords {
  const revokedSessionSerials = new Set<string>();
  for (const s of chain) {
    if (s.opener_revoked && s.opener_serial !== null) revokedSessionSerials.add(s.opener_serial);
    if (s.parent_cert_revoked && s.parent_cert_serial !== null)
      revokedSessionSerials.add(s.parent_cert_serial);
  }
  const result: CallerRecords = {
    certificateRevoked: row.certificate_revoked,
    sessions: chain.map((s) => sessionFromRow(s, s.cert_serials)),
    revokedSessionSerials,
  };
  if (row.id !== undefined && row.id !== null) {
    const selectors = (row.selectors ?? []).map(([type, value]) => ({ type, value }));
    result.entry = entryFromRow(row as EntryRow, selectors);
  }
  return result;
}
