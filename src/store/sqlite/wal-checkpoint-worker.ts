/**
 * The thread that checkpoints the store's WAL (wal-checkpointer.ts) on a connection of its own, so that the
 * checkpoint's backfill and its two fsyncs (the -wal before, the database after) do not run inside a COMMIT on
 * the server's thread. PASSIVE: it never waits for, nor blocks, the server's writer or readers. Nothing here logs.
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import type { CheckpointReply, CheckpointRequest, CheckpointWorkerData } from './wal-checkpointer';

const port = parentPort;
if (port === null) throw new Error('wal-checkpoint-worker runs only as a worker thread');
const { file } = workerData as CheckpointWorkerData;
const db = new Database(file, { fileMustExist: true, timeout: 0 });
// A checkpoint syncs the -wal before it backfills and the database after (any level but OFF); stated, not assumed.
db.pragma('synchronous = FULL');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');

port.on('message', (m: CheckpointRequest) => {
  if (m.type === 'close') {
    db.close();
    port.close();
    return;
  }
  let reply: CheckpointReply;
  try {
    const row = checkpoint.get() as { busy: number; log: number; checkpointed: number };
    reply = { ok: true, busy: row.busy !== 0, log: row.log, checkpointed: row.checkpointed };
  } catch (e) {
    // Another connection's checkpoint holds the checkpoint lock (the server's backstop): this one is not needed.
    reply = isBusy(e)
      ? { ok: true, busy: true, log: -1, checkpointed: -1 }
      : { ok: false, message: e instanceof Error ? e.message : String(e) };
  }
  port.postMessage(reply);
});

function isBusy(e: unknown): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && e.code === 'SQLITE_BUSY';
}
