/**
 * Reads a chunk of the revocation state (by sequence, keyset paging) and packs it into pages, for a new
 * watcher's initial state (watch-revocations.ts). With a SQLite store this runs in a worker thread with its own
 * read-only connection (revocation-snapshot-worker.ts): a million rows read, decoded and packed there cost the
 * server's thread only the pages' writes. With any other store (PostgreSQL, whose I/O is asynchronous) the rows
 * are read through the store and packed here.
 *
 * A worker that dies fails the reads it held (the watchers that waited for them get UNAVAILABLE and resume from
 * their sequence) and is replaced on the next read.
 */
import type { Worker } from 'node:worker_threads';
import { CaNotReadyError, InternalError } from '../../errors';
import { packPages, type PackedPage } from '../../internal/revocation-page';
import { startWorkerScript } from '../../internal/worker-script';
import type { Store } from '../../store/store';

/** One chunk: its pages, how many rows it held, and whether their sequences follow `after` without a gap. */
export interface SnapshotRead {
  pages: PackedPage[];
  rows: number;
  contiguous: boolean;
}

export interface SnapshotReader {
  read(after: number, limit: number, pageBytes: number): Promise<SnapshotRead>;
  close(): void;
}

export interface SnapshotWorkerData {
  sqliteFile: string;
}

export type SnapshotWorkerRequest =
  | { type: 'read'; id: number; after: number; limit: number; pageBytes: number }
  /** A drill: the worker exits in the middle of its next read (rows read, nothing answered), as a crash there. */
  | { type: 'exit-mid-read' };

/** The exit code of a worker that exited for the drill. */
export const SNAPSHOT_DRILL_EXIT_CODE = 75;

export type SnapshotWorkerReply =
  | {
      id: number;
      ok: true;
      pages: { bytes: Uint8Array; count: number; sequence: number }[];
      rows: number;
      contiguous: boolean;
    }
  | { id: number; ok: false; message: string };

/** Through the store, on the server's thread. */
export class StoreSnapshotReader implements SnapshotReader {
  constructor(private readonly store: Pick<Store, 'listRevocations'>) {}

  async read(after: number, limit: number, pageBytes: number): Promise<SnapshotRead> {
    const rows = await this.store.listRevocations(after, limit);
    return {
      pages: packPages(rows, pageBytes),
      rows: rows.length,
      contiguous: rows.every((r, i) => r.sequence === after + 1 + i),
    };
  }

  close(): void {}
}

interface Pending {
  resolve(r: SnapshotRead): void;
  reject(e: Error): void;
}

/** In a worker thread reading the SQLite file on its own connection; started on the first read. */
export class WorkerSnapshotReader implements SnapshotReader {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** Workers that stopped while holding reads: for tests and operators. */
  lostWorkers = 0;

  /**
   * `durable` resolves once every commit written so far is on disk (SqliteStore.durableBarrier): the worker's
   * connection sees commits before their fsync, and a watcher must not be handed a revocation (and its sequence)
   * that a power loss could take back and reuse.
   */
  constructor(
    private readonly sqliteFile: string,
    private readonly durable: () => Promise<void>,
  ) {}

  read(after: number, limit: number, pageBytes: number): Promise<SnapshotRead> {
    if (this.closed) return Promise.reject(new CaNotReadyError('the server is shutting down'));
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) worker.ref();
      worker.postMessage({ type: 'read', id, after, limit, pageBytes } satisfies SnapshotWorkerRequest);
    });
  }

  /**
   * Stops the worker as a crash would: the reads it held fail (their watchers get UNAVAILABLE and resume from
   * their sequence) and the next read starts a new worker. At once; or with `midRead`, in the middle of the next
   * read it takes (its rows read, nothing answered), resolving once it exited. For drills and tests.
   */
  async stopWorker(options: { midRead?: boolean } = {}): Promise<void> {
    if (options.midRead !== true) {
      await this.worker?.terminate();
      return;
    }
    if (this.closed) return;
    const worker = this.ensureWorker();
    // Kept referenced until it exits: the drill waits for a read that has not been asked for yet.
    worker.ref();
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ type: 'exit-mid-read' } satisfies SnapshotWorkerRequest);
    await exited;
  }

  close(): void {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    this.failAll(new CaNotReadyError('the server is shutting down'));
    void w?.terminate();
  }

  private ensureWorker(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = startWorkerScript(__filename, 'revocation-snapshot-worker', {
      workerData: { sqliteFile: this.sqliteFile } satisfies SnapshotWorkerData,
    });
    this.worker = worker;
    worker.unref();
    worker.on('message', (m: SnapshotWorkerReply) => {
      if (worker !== this.worker) return;
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) worker.unref();
      if (!m.ok) {
        p.reject(new InternalError(`reading the revocation state failed: ${m.message}`));
        return;
      }
      const read: SnapshotRead = {
        pages: m.pages.map((pg) => ({
          bytes: Buffer.from(pg.bytes.buffer, pg.bytes.byteOffset, pg.bytes.byteLength),
          count: pg.count,
          sequence: pg.sequence,
        })),
        rows: m.rows,
        contiguous: m.contiguous,
      };
      // Taken now, after the read: every commit the worker could have seen was written before this point.
      this.durable().then(
        () => p.resolve(read),
        (e: unknown) => p.reject(e instanceof Error ? e : new InternalError(String(e))),
      );
    });
    worker.on('error', () => {});
    worker.on('exit', (code) => {
      if (worker !== this.worker) return;
      this.worker = undefined;
      if (this.pending.size > 0) this.lostWorkers += 1;
      this.failAll(
        new CaNotReadyError(`the revocation state reader stopped (exit code ${code}): resume the watch`),
      );
    });
    return worker;
  }

  private failAll(e: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(e);
  }
}
