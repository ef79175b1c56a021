/** Caller authentication's records on one SQLite connection (Store.readCaller). */
import type Database from 'better-sqlite3';
import { ErrorCode, isLanyardError } from '../../errors';
import { entryFromRowWithKey, type EntryRow } from '../rows';
import type { CallerQuery, CallerRecords } from '../store';
import type { Entry, SessionRecord } from '../types';
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
  /** The entry's columns of the caller statement (`e.*`), compared one by one to reuse a decoded entry. */
  entryColumns: readonly string[];
  /** The entry decoded from the row last read for each entry id (DecodedEntries). */
  decoded: Map<string, DecodedEntry>;
}

/**
 * An entry as decoded from a row of the caller statement, and that row. Decoding (the JSON columns, the
 * selectors, three object copies) cost more than the statement itself (measured in "Renew: the server's
 * thread, tenth round", docs/design/performance-log.md), and a workload renews with the same entry every time.
 * The row is still read on every call: only a row equal to the kept one in every entry column (an edit, a
 * delete and re-create under the same id, another process's write: any change of any column misses) gives the
 * kept entry back, so what the call judges is exactly what it read. The kept entries are frozen: callers share
 * them, and a change made by one would otherwise reach the next.
 */
interface DecodedEntry {
  readonly row: CallerRow;
  readonly entry: Entry;
}

/** Bounds the decoded entries kept per connection; past it the map starts again (a miss costs a decode). */
export const MAX_DECODED_ENTRIES = 1024;

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
  if (first.caller_session_stored !== 1) return records(c, first, [], new Set());
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
      entryColumns: caller
        .columns()
        .map((col) => col.name)
        .filter((name) => name !== 'caller_revoked' && name !== 'caller_session_stored'),
      decoded: new Map(),
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
  if (row.caller_session_stored !== 1 || query.sessionId === undefined) {
    return records(c, row, [], new Set());
  }
  const chain = sessionChain(tables.sessions, query.sessionId, query.maxAncestors);
  const revoked = new Set<string>();
  for (const s of chain) {
    for (const serial of [s.openerSerial, s.parentCertSerial]) {
      if (serial !== undefined && c.revoked.get(serial) !== undefined) revoked.add(serial);
    }
  }
  return records(c, row, chain, revoked);
}

function records(
  c: Connection,
  row: CallerRow,
  sessions: SessionRecord[],
  revoked: ReadonlySet<string>,
): CallerRecords {
  const out: CallerRecords = {
    certificateRevoked: row.caller_revoked === 1,
    sessions,
    revokedSessionSerials: revoked,
  };
  if (row.id !== undefined && row.id !== null) out.entry = decodedEntry(c, row.id, row);
  return out;
}

/** The entry of `row`: the one kept for `id` when its row equals this one in every entry column, else decoded. */
function decodedEntry(c: Connection, id: string, row: CallerRow): Entry {
  const kept = c.decoded.get(id);
  if (kept !== undefined && sameEntryColumns(c.entryColumns, kept.row, row)) return kept.entry;
  const entryRow = row as SqliteRow<EntryRow> & { selectors_key: string };
  const entry = frozenEntry(
    entryFromRowWithKey({ ...decodeEntry(entryRow), selectors_key: entryRow.selectors_key }),
  );
  if (kept === undefined && c.decoded.size >= MAX_DECODED_ENTRIES) c.decoded.clear();
  c.decoded.set(id, { row, entry });
  return entry;
}

/** Every entry column the same value (TEXT, INTEGER or NULL: compared by value). */
function sameEntryColumns(columns: readonly string[], a: CallerRow, b: CallerRow): boolean {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  for (const name of columns) {
    if (x[name] !== y[name]) return false;
  }
  return true;
}

/** `entry` with it, its arrays and its selectors frozen (its Dates stay as they are: nothing sets them). */
function frozenEntry(entry: Entry): Entry {
  for (const s of entry.selectors) Object.freeze(s);
  Object.freeze(entry.selectors);
  Object.freeze(entry.allowedScopes);
  Object.freeze(entry.allowedDelegates);
  Object.freeze(entry.dnsNames);
  if (entry.federatesWith !== undefined) Object.freeze(entry.federatesWith);
  return Object.freeze(entry);
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
