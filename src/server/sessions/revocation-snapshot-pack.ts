/**
 * Packs a chunk of revocations read as records (src/store/sqlite/revocation-records.ts) into pages: the same pages,
 * byte for byte, as packPages gives for the same rows read as objects (listRevocations), without an object, a
 * Date or, for a certificate's hex serial, a string per row. Used by the snapshot worker
 * (revocation-snapshot-worker.ts) for a new watcher's initial state.
 */
import { PackedPageWriter, packPages, type PackedPage } from '../../internal/revocation-page';
import {
  RevocationRecordCursor,
  UnreadableRecordError,
  type RevocationRecords,
  type SqliteRevocationRecords,
} from '../../store/sqlite/revocation-records';
import type { SqliteSessions } from '../../store/sqlite/sessions';

/** The largest time in ms a Date holds: a row's time beyond it reads as an invalid Date, which packing refuses. */
const MAX_DATE_MS = 8.64e15;

/** A chunk's pages, and whether its sequences follow `after` one by one. */
export interface PackedRecords {
  pages: PackedPage[];
  contiguous: boolean;
}

/**
 * One chunk of the state after `after` (at most `limit` rows), read in one statement and packed: as records, or,
 * when a record does not read as the server writes it (a value of a type it never writes), as row objects
 * through listRevocations. The same pages either way.
 */
export function readSnapshotChunk(
  records: SqliteRevocationRecords,
  sessions: Pick<SqliteSessions, 'listRevocations'>,
  after: number,
  limit: number,
  pageBytes: number,
): PackedRecords & { rows: number } {
  try {
    const chunk = records.read(after, limit);
    return { ...packRecordPages(chunk, after, pageBytes), rows: chunk.count };
  } catch (e) {
    if (!(e instanceof UnreadableRecordError)) throw e;
  }
  const rows = sessions.listRevocations(after, limit);
  return {
    pages: packPages(rows, pageBytes),
    rows: rows.length,
    contiguous: rows.every((r, i) => r.sequence === after + 1 + i),
  };
}

/**
 * @throws PackedRevocationsError as packPages would for the same rows (sequences that do not grow, a value that
 * is not encodable); UnreadableRecordError for records that do not read as the server writes them (read those
 * rows as objects); RangeError when `records.count` is not the number of records.
 */
export function packRecordPages(records: RevocationRecords, after: number, pageBytes: number): PackedRecords {
  const pages: PackedPage[] = [];
  const src = records.bytes;
  const c = new RevocationRecordCursor(src);
  let w = new PackedPageWriter();
  let contiguous = true;
  let expected = after + 1;
  // The previous row's reason, as its bytes and its string: a chunk's reasons mostly repeat, so a string is made
  // only when the bytes change.
  let reason = '';
  let reasonStart = 0;
  let reasonEnd = 0;
  let rows = 0;
  while (c.next()) {
    rows += 1;
    if (c.sequence !== expected) contiguous = false;
    expected = c.sequence + 1;
    if (!sameBytes(src, c.reasonStart, c.reasonEnd, reasonStart, reasonEnd)) {
      reason = src.toString('utf8', c.reasonStart, c.reasonEnd);
    }
    reasonStart = c.reasonStart;
    reasonEnd = c.reasonEnd;
    const revokedAt = dateMs(c.revokedAtMs);
    const expiresAt = dateMs(c.expiresAtMs);
    const hex = !c.session && PackedPageWriter.isHexId(src, c.idStart, c.idEnd);
    const id = hex ? '' : src.toString('utf8', c.idStart, c.idEnd);
    const bound = PackedPageWriter.boundOf(hex ? c.idEnd - c.idStart : id.length, reason.length);
    if (w.count > 0 && w.size + bound > pageBytes) {
      pages.push({ bytes: w.finish(), count: w.count, sequence: w.lastSequence });
      w = new PackedPageWriter();
    }
    if (hex) {
      w.addHexId(c.sequence, src, c.idStart, c.idEnd, reason, revokedAt, expiresAt, c.causeSequence);
    } else {
      w.add({
        sequence: c.sequence,
        kind: c.session ? 'session' : 'certificate',
        id,
        reason,
        revokedAt,
        expiresAt,
        causeSequence: c.causeSequence,
      });
    }
  }
  if (rows !== records.count)
    throw new RangeError(`revocation records: ${rows} rows, ${records.count} expected`);
  if (w.count > 0) pages.push({ bytes: w.finish(), count: w.count, sequence: w.lastSequence });
  return { pages, contiguous };
}

/** A row's time as the Date it would be read as gives it back: NaN past a Date's range. */
function dateMs(ms: number): number {
  return Math.abs(ms) <= MAX_DATE_MS ? ms : NaN;
}

function sameBytes(b: Buffer, start: number, end: number, otherStart: number, otherEnd: number): boolean {
  if (end - start !== otherEnd - otherStart) return false;
  for (let i = 0; i < end - start; i++) if (b[start + i] !== b[otherStart + i]) return false;
  return true;
}
