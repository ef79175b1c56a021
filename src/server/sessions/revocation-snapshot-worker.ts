/**
 * The thread that reads and packs the initial revocation state for WatchRevocations (revocation-snapshot.ts):
 * a chunk of rows by sequence on a read-only SQLite connection of its own (WAL lets it read beside the server's
 * writer), packed into pages (src/internal/revocation-page.ts) that are transferred, not copied, to the server's
 * thread. The chunk is read as one buffer of records made by SQLite, no object per row
 * (revocation-snapshot-pack.ts: readSnapshotChunk). Nothing here logs.
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import { ownedBytes } from '../../internal/worker-script';
import { SqliteRevocationRecords } from '../../store/sqlite/revocation-records';
import { SqliteSessions } from '../../store/sqlite/sessions';
import { readSnapshotChunk } from './revocation-snapshot-pack';
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

type Read = ReturnType<typeof readSnapshotChunk>;

/**
 * The chunk after a full, gap-free one, read as soon as that one was answered: the next request (the warm-up's,
 * or a watcher's paging) usually asks for it, and meanwhile the server's thread is taking the pages. Only after
 * such a chunk: its successor starts at a sequence that can no longer change, and a chunk is read again unless
 * it too is full and gap-free (it can never gain a row; a partial or gapped one could, and is never held).
 */
let held: { after: number; limit: number; pageBytes: number; read: Read } | undefined;
/** The `after` of the last request answered: a read-ahead it already met is not made. */
let answered = -1;

port.on('message', (m: SnapshotWorkerRequest) => {
  if (m.type === 'exit-mid-read') {
    exitMidRead = true;
    return;
  }
  let reply: SnapshotWorkerReply;
  try {
    const h = held;
    held = undefined;
    answered = m.after;
    const read =
      h !== undefined && h.after === m.after && h.limit === m.limit && h.pageBytes === m.pageBytes
        ? h.read
        : readSnapshotChunk(records, sessions, m.after, m.limit, m.pageBytes);
    // Stops this thread only (a worker's process.exit), before anything is answered.
    if (exitMidRead) process.exit(SNAPSHOT_DRILL_EXIT_CODE);
    const pages = read.pages.map((p) => ({ ...p, bytes: ownedBytes(p.bytes) }));
    reply = { id: m.id, ok: true, pages, rows: read.rows, contiguous: read.contiguous };
    port.postMessage(
      reply,
      pages.map((p) => p.bytes.buffer as ArrayBuffer),
    );
    const last = read.pages[read.pages.length - 1]?.sequence;
    if (read.rows === m.limit && read.contiguous && last !== undefined) {
      // After the messages already waiting: a request for another chunk is answered first.
      setImmediate(() => readAhead(last, m.limit, m.pageBytes));
    }
  } catch (e) {
    const message = e instanceof Error ? `${e.name}: ${e.message}` : 'non-error thrown';
    port.postMessage({ id: m.id, ok: false, message } satisfies SnapshotWorkerReply);
  }
});

function readAhead(after: number, limit: number, pageBytes: number): void {
  if (answered === after) return;
  try {
    const read = readSnapshotChunk(records, sessions, after, limit, pageBytes);
    if (read.rows === limit && read.contiguous) held = { after, limit, pageBytes, read };
  } catch {
    // The request for it, if one comes, reads it again and answers the error.
  }
}
