/** Caller authentication's records on one SQLite connection (Store.readCaller). */
import type Database from 'better-sqlite3';
import { ErrorCode, isLanyardError } from '../../errors';
import { entryFromRowWithKey, type EntryRow } from '../rows';
import type { CallerQuery, CallerRecords } from '../store';
import type { SessionRecord } from '../types';
import type { SqliteRow } from './codec';
import { decodeEntry } from './entries';
import type { SqliteSessions } from './sessions';

export interface CallerReadTables {
  readonly sessions: Pick<SqliteSessions, 'getSession'>;
}

/**
 * The serial's revocation, whether the session is stored, and the entry, in one statement (one snapshot, nothing
 * decoded that is not needed, nothing thrown for a missing record). The LEFT JOIN from one row answers a row also
 * when the entry is gone; its columns are then NULL. The entry's selectors come from its own row
 * (`selectors_key`, entryFromRowWithKey), not from a subquery over entry_selectors.
 */
const CALLER = `SELECT
    EXISTS (SELECT 1 FROM revocations WHERE kind = 'certificate' AND target_id = @serial) AS caller_revoked,
    EXISTS (SELECT 1 FROM sessions WHERE id = @session) AS caller_session_stored,
    e.*
  FROM (SELECT 1) AS one LEFT JOIN entries e ON e.id = @entry`;

type CallerRow = Partial<SqliteRow<EntryRow> & { selectors_key: string }> & {
  caller_revoked: number;
  caller_session_stored: number;
};

interface CallerParams {
  serial: string;
  session: string | null;
  entry: string | null;
}

interface Connection {
  caller: Database.Statement<[CallerParams], CallerRow>;
  revoked: Database.Statement<[string], number | undefined>;
  /** A session SVID's records and its chain in one deferred read transaction: one snapshot. */
  inSnapshot: (tables: CallerReadTables, query: CallerQuery) => CallerRecords;
}

const connections = new WeakMap<Database.Database, Connection>();

/**
 * Runs inside the store's connection lock. A workload SVID (no stored session: the Renew path) costs the one
 * statement. A session SVID's records are read again with its chain in one read transaction, so another process
 * that commits meanwhile cannot give us a session from before its end and an entry from after.
 */
export function readCallerSqlite(
  db: Database.Database,
  tables: CallerReadTables,
  query: CallerQuery,
): CallerRecords {
  const c = connection(db);
  const first = callerRow(c, query);
  if (first.caller_session_stored !== 1) return records(first, [], new Set());
  return c.inSnapshot(tables, query);
}

function connection(db: Database.Database): Connection {
  let c = connections.get(db);
  if (c === undefined) {
    const caller = db.prepare<[CallerParams], CallerRow>(CALLER);
    const revoked = db
      .prepare<[string], number>(`SELECT 1 FROM revocations WHERE kind = 'certificate' AND target_id = ?`)
      .pluck();
    const conn: Connection = {
      caller,
      revoked,
      inSnapshot: db.transaction((tables: CallerReadTables, query: CallerQuery) =>
        withChain(conn, tables, query),
      ),
    };
    connections.set(db, conn);
    c = conn;
  }
  return c;
}

function callerRow(c: Connection, query: CallerQuery): CallerRow {
  return c.caller.get({
    serial: query.serialHex,
    session: query.sessionId ?? null,
    entry: query.entryId ?? null,
  })!;
}

function withChain(c: Connection, tables: CallerReadTables, query: CallerQuery): CallerRecords {
  const row = callerRow(c, query);
  if (row.caller_session_stored !== 1 || query.sessionId === undefined) return records(row, [], new Set());
  const chain = sessionChain(tables.sessions, query.sessionId, query.maxAncestors);
  const revoked = new Set<string>();
  for (const s of chain) {
    for (const serial of [s.openerSerial, s.parentCertSerial]) {
      if (serial !== undefined && c.revoked.get(serial) !== undefined) revoked.add(serial);
    }
  }
  return records(row, chain, revoked);
}

function records(row: CallerRow, sessions: SessionRecord[], revoked: ReadonlySet<string>): CallerRecords {
  const out: CallerRecords = {
    certificateRevoked: row.caller_revoked === 1,
    sessions,
    revokedSessionSerials: revoked,
  };
  if (row.id !== undefined && row.id !== null) {
    const entryRow = row as SqliteRow<EntryRow> & { selectors_key: string };
    out.entry = entryFromRowWithKey({ ...decodeEntry(entryRow), selectors_key: entryRow.selectors_key });
  }
  return out;
}

function sessionChain(
  sessions: CallerReadTables['sessions'],
  sessionId: string,
  maxAncestors: number,
): SessionRecord[] {
  const chain: SessionRecord[] = [];
  let next: string | undefined = sessionId;
  while (next !== undefined && chain.length <= maxAncestors) {
    const id: string = next;
    const s = orUndefined(() => sessions.getSession(id));
    if (s === undefined) break;
    chain.push(s);
    next = s.parentSessionId;
  }
  return chain;
}

/** The record, or undefined when the store reports it NOT_FOUND; any other failure passes through. */
function orUndefined<T>(lookup: () => T): T | undefined {
  try {
    return lookup();
  } catch (e) {
    if (isLanyardError(e) && e.code === ErrorCode.NOT_FOUND) return undefined;
    throw e;
  }
}
