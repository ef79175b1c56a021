/**
 * The thread that reads and packs the initial revocation state for WatchRevocations (revocation-snapshot.ts):
 * a chunk of rows by sequence on a read-only SQLite connection of its own (WAL lets it read beside the server's
 * writer), packed into pages (src/internal/revocation-page.ts) that are transferred, not copied, to the server's
 * thread. The chunk is read as one buffer of records made by SQLite (src/store/sqlite/revocation-records.ts,
 * packed by revocation-snapshot-pack.ts): no object per row. A chunk holding a row that does not read so (a value
 * of a type the server never writes) is read as row objects instead (listRevocations, packPages), the same pages either way. Nothing here
 * logs.
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import { packPages, type PackedPage } from '../../internal/revocation-page';
import { ownedBytes } from '../../internal/worker-script';
import { SqliteRevocationRecords, UnreadableRecordError } from '../../store/sqlite/revocation-records';
import { SqliteSessions } from '../../store/sqlite/sessions';
import { packRecordPages } from './revocation-snapshot-pack';
import {
  SNAPSHOT_DRILL_EXIT_CODE,
  type SnapshotWorkerData,
  type SnapshotWorkerReply,
  type SnapshotWorkerRequest,
} from './revocation-snapshot';

const port = parentPort;
if (port === null) throw new Error('revocation-snapshot-worker runs only as a worker thread');
const { sqliteFile } = workerData as SnapshotWorkerData;
const db = new Database(sqliteFile, { readonly: true, fileMustExist: true, timeout: 5000 });
const sessions = new SqliteSessions(db, () => new Date());
const records = new SqliteRevocationRecords(db);

/** Armed by the drill: the next read exits after reading its rows. */
let exitMidRead = false;

port.on('message', (m: SnapshotWorkerRequest) => {
  if (m.type === 'exit-mid-read') {
    exitMidRead = true;
    return;
  }
  let reply: SnapshotWorkerReply;
  try {
    const read = readChunk(m.after, m.limit, m.pageBytes);
    // Stops this thread only (a worker's process.exit), before anything is answered.
    if (exitMidRead) process.exit(SNAPSHOT_DRILL_EXIT_CODE);
    const pages = read.pages.map((p) => ({ ...p, bytes: ownedBytes(p.bytes) }));
    reply = { id: m.id, ok: true, pages, rows: read.rows, contiguous: read.contiguous };
    port.postMessage(
      reply,
      pages.map((p) => p.bytes.buffer as ArrayBuffer),
    );
  } catch (e) {
    const message = e instanceof Error ? `${e.name}: ${e.message}` : 'non-error thrown';
    port.postMessage({ id: m.id, ok: false, message } satisfies SnapshotWorkerReply);
  }
});

/** One chunk read in one statement: as records, or as row objects when a record does not read. */
function readChunk(
  after: number,
  limit: number,
  pageBytes: number,
): { pages: PackedPage[]; rows: number; contiguous: boolean } {
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
