/** Caller authentication's records in one read transaction on one SQLite connection (Store.readCaller). */
import type Database from 'better-sqlite3';
import { ErrorCode, isLanyardError } from '../../errors';
import type { CallerQuery, CallerRecords } from '../store';
import type { SessionRecord } from '../types';
import type { SqliteEntries } from './entries';
import type { SqliteSessions } from './sessions';

export interface CallerReadTables {
  readonly entries: Pick<SqliteEntries, 'getEntry'>;
  readonly sessions: Pick<SqliteSessions, 'getSession' | 'getRevocation'>;
}

type Reader = (tables: CallerReadTables, query: CallerQuery) => CallerRecords;

/** One wrapped read transaction per connection: better-sqlite3 compiles its BEGIN and COMMIT once. */
const readers = new WeakMap<Database.Database, Reader>();

/**
 * Runs inside the store's connection lock. The deferred read transaction is the snapshot: another process that
 * commits between two of these statements cannot give us a session from before its end and an entry from after.
 */
export function readCallerSqlite(
  db: Database.Database,
  tables: CallerReadTables,
  query: CallerQuery,
): CallerRecords {
  let reader = readers.get(db);
  if (reader === undefined) {
    reader = db.transaction(read);
    readers.set(db, reader);
  }
  return reader(tables, query);
}

function read(tables: CallerReadTables, query: CallerQuery): CallerRecords {
  const { sessions } = tables;
  const revoked = (serial: string): boolean => sessions.getRevocation('certificate', serial) !== undefined;
  const records: CallerRecords = {
    certificateRevoked: revoked(query.serialHex),
    sessions: [],
    revokedSessionSerials: new Set(),
  };
  if (query.sessionId !== undefined) {
    const chain = sessionChain(sessions, query.sessionId, query.maxAncestors);
    const serials = new Set<string>();
    for (const s of chain) {
      for (const serial of [s.openerSerial, s.parentCertSerial]) {
        if (serial !== undefined && revoked(serial)) serials.add(serial);
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
