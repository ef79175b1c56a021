/** Caller authentication's records in one read transaction on one SQLite connection (Store.readCaller). */
import type Database from 'better-sqlite3';
import { ErrorCode, isLanyardError } from '../../errors';
import type { CallerQuery, CallerRecords } from '../store';
import type { SessionRecord } from '../types';
import type { SqliteEntries } from './entries';
import type { SqliteSessions } from './sessions';

export interface CallerReadTables {
  readonly entries: Pick<SqliteEntries, 'getEntry'>;
  readonly sessions: Pick<SqliteSessions, 'getSession'>;
}

type Reader = (tables: CallerReadTables, query: CallerQuery) => CallerRecords;

interface Connection {
  read: Reader;
  /** Whether the serial is revoked and the session stored, in one statement: no record decoded, nothing thrown. */
  firstLook: Database.Statement<[string, string | null], { revoked: number; stored: number }>;
  revoked: Database.Statement<[string], number | undefined>;
}

const connections = new WeakMap<Database.Database, Connection>();

/**
 * Runs inside the store's connection lock. The deferred read transaction is the snapshot: another process that
 * commits between two of these statements cannot give us a session from before its end and an entry from after.
 */
export function readCallerSqlite(
  db: Database.Database,
  tables: CallerReadTables,
  query: CallerQuery,
): CallerRecords {
  let c = connections.get(db);
  if (c === undefined) {
    const firstLook = db.prepare<[string, string | null], { revoked: number; stored: number }>(
      `SELECT EXISTS (SELECT 1 FROM revocations WHERE kind = 'certificate' AND target_id = ?) AS revoked,
              EXISTS (SELECT 1 FROM sessions WHERE id = ?) AS stored`,
    );
    const revoked = db
      .prepare<[string], number>(`SELECT 1 FROM revocations WHERE kind = 'certificate' AND target_id = ?`)
      .pluck();
    c = { read: db.transaction((t: CallerReadTables, q: CallerQuery) => read(c!, t, q)), firstLook, revoked };
    connections.set(db, c);
  }
  return c.read(tables, query);
}

function read(c: Connection, tables: CallerReadTables, query: CallerQuery): CallerRecords {
  const first = c.firstLook.get(query.serialHex, query.sessionId ?? null)!;
  const records: CallerRecords = {
    certificateRevoked: first.revoked === 1,
    sessions: [],
    revokedSessionSerials: new Set(),
  };
  // A workload SVID's session id names no stored session: the common case reads no session at all.
  if (first.stored === 1 && query.sessionId !== undefined) {
    const chain = sessionChain(tables.sessions, query.sessionId, query.maxAncestors);
    const serials = new Set<string>();
    for (const s of chain) {
      for (const serial of [s.openerSerial, s.parentCertSerial]) {
        if (serial !== undefined && c.revoked.get(serial) !== undefined) serials.add(serial);
      }
    }
    records.sessions = chain;
    records.revokedSessionSerials = serials;
  }
  if (query.entryId !== undefined) {
    const entry = orUndefined(() => tables.entries.getEntry(query.entryId!));
    if (entry !== undefined) records.entry = entry;
  }
  return records;
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
