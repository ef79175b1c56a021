/**
 * A run of revocations by sequence as one buffer of records, made by SQLite in one statement, for
 * the thread that packs a new watcher's initial state (src/server/sessions/revocation-snapshot-worker.ts).
 *
 * Read as row objects (SqliteSessions.listRevocations) a million revocations cost a million row objects, three
 * strings and two Dates each, made and dropped in JavaScript: most of the start-up read of the state at 1M. Here
 * SQLite writes every row of a chunk into one text that the reader gets as one Buffer (its UTF-8 bytes), and walks
 * with a cursor that allocates nothing per row.
 *
 * Record layout, one per row in ascending sequence, the integers in decimal as SQLite writes them:
 *   sequence "," revoked_at "," expires_at "," cause_sequence (0 for NULL) "," kind ("1" session, "0" certificate)
 *   "," byte length of target_id ":" its bytes (the stored UTF-8) byte length of reason ":" its bytes "\n"
 *
 * The cursor reads only what the server writes: an integer of 1 to 15 digits (below 2^53, exact as a number),
 * optionally negative, exactly where one belongs, the separators in place. A value of another type (a REAL is
 * written with a point, a text as itself: only rows written by hand hold one) or a longer integer does not read
 * so: the cursor throws UnreadableRecordError, and the caller reads the chunk through listRevocations, whose
 * decoding is the reference. This strict reading is the type check: asking SQLite for typeof() of each column
 * cost about half as much again as the rest of the statement.
 */
import type Database from 'better-sqlite3';

/** A chunk of revocations in the layout above. */
export interface RevocationRecords {
  bytes: Buffer;
  /** Rows in `bytes`. */
  count: number;
}

const RECORDS_SQL = `
  SELECT count(*), CAST(group_concat(sequence || ',' || revoked_at || ',' || expires_at || ','
      || ifnull(cause_sequence, 0) || ',' || (kind = 'session') || ',' || octet_length(target_id) || ':' || target_id
      || octet_length(reason) || ':' || reason || char(10), '') AS BLOB)
  FROM (SELECT sequence, kind, target_id, reason, revoked_at, expires_at, cause_sequence FROM revocations
        WHERE sequence > ? ORDER BY sequence LIMIT ?)`;

const COMMA = 0x2c;
const COLON = 0x3a;
const NEWLINE = 0x0a;
const MINUS = 0x2d;

/**
 * Records that do not read as the server writes them (a value of another type, a longer integer): the caller
 * reads the chunk as rows instead.
 */
export class UnreadableRecordError extends Error {
  override name = 'UnreadableRecordError';
}

/** Reads chunks of revocations as records, on one connection (read-only is enough). */
export class SqliteRevocationRecords {
  private readonly statement: Database.Statement<[number, number], unknown[]>;

  constructor(db: Database.Database) {
    // group_concat keeps the subquery's order: SQLite feeds an aggregate the rows as the FROM clause yields them
    // (and the page writer refuses sequences that do not grow).
    this.statement = db.prepare<[number, number], unknown[]>(RECORDS_SQL).raw(true);
  }

  /**
   * The revocations with a sequence above `after`, at most `limit` of them, in one read. A row that does not read
   * as the server writes it is met by the cursor (UnreadableRecordError).
   */
  read(after: number, limit: number): RevocationRecords {
    const [count, bytes] = this.statement.get(after, limit) as [number, Buffer | null];
    return { bytes: bytes ?? Buffer.alloc(0), count };
  }
}

/**
 * Walks RevocationRecords one row at a time, its fields updated in place (nothing allocated per row). A record
 * that does not read is an error (UnreadableRecordError), never a row read otherwise.
 */
export class RevocationRecordCursor {
  sequence = 0;
  revokedAtMs = 0;
  expiresAtMs = 0;
  /** 0 for none. */
  causeSequence = 0;
  session = false;
  /** target_id's bytes in `bytes`: [idStart, idEnd). */
  idStart = 0;
  idEnd = 0;
  /** reason's bytes in `bytes`: [reasonStart, reasonEnd). */
  reasonStart = 0;
  reasonEnd = 0;
  private at = 0;

  constructor(readonly bytes: Buffer) {}

  /**
   * Moves to the next record; false at the end.
   * @throws UnreadableRecordError for bytes that are not a record as the server writes them
   */
  next(): boolean {
    if (this.at >= this.bytes.length) return false;
    this.sequence = this.integer(COMMA);
    this.revokedAtMs = this.integer(COMMA);
    this.expiresAtMs = this.integer(COMMA);
    this.causeSequence = this.integer(COMMA);
    const kind = this.integer(COMMA);
    if (kind !== 0 && kind !== 1) throw new UnreadableRecordError();
    this.session = kind === 1;
    this.idStart = this.integer(COLON);
    this.idEnd = this.idStart + this.at;
    this.idStart = this.at;
    this.at = this.idEnd;
    this.reasonStart = this.integer(COLON);
    this.reasonEnd = this.reasonStart + this.at;
    this.reasonStart = this.at;
    if (this.reasonEnd >= this.bytes.length || this.bytes[this.reasonEnd] !== NEWLINE)
      throw new UnreadableRecordError();
    this.at = this.reasonEnd + 1;
    return true;
  }

  /** An integer of 1 to 15 digits, optionally negative, then `end`. */
  private integer(end: number): number {
    const b = this.bytes;
    let p = this.at;
    const negative = b[p] === MINUS;
    if (negative) p += 1;
    const first = p;
    let n = 0;
    for (; p < b.length; p++) {
      const d = b[p]! - 0x30;
      if (d < 0 || d > 9) break;
      n = n * 10 + d;
    }
    if (p === first || p - first > 15 || p >= b.length || b[p] !== end) throw new UnreadableRecordError();
    this.at = p + 1;
    return negative ? -n : n;
  }
}
