/**
 * The WAL checkpoint, off the server's thread. SQLite's auto-checkpoint runs inside the COMMIT that takes the WAL
 * past its threshold, on the connection that wrote it: with better-sqlite3 that is the server's only thread, which
 * then backfills the pages into the database file and waits for two fsyncs before it serves anything else. Here
 * a worker thread with a connection of its own runs a PASSIVE checkpoint every CHECKPOINT_EVERY_COMMITS commits
 * (never waiting for, nor blocking, the server's writer), and the server's connection keeps an auto-checkpoint
 * only as a backstop, at a threshold the worker keeps the WAL below unless it falls far behind.
 *
 * Durability does not rest on checkpoints: a commit is durable once WalFsync's fsync of the -wal covers it, and a
 * checkpoint by another connection only ever makes more durable (it syncs the -wal before backfilling, and a
 * restart of the WAL overwrites only frames already synced into the database file; docs/design/performance.md,
 * "Renew: the durable commit off the server's thread"). So a worker that fails or dies costs only speed: the
 * server's connection goes back to SQLite's default auto-checkpoint (`onUnavailable`) and no worker is started again.
 *
 * The worker starts at the first checkpoint it is asked for: a store that commits little (a CLI command, most
 * tests) never starts one.
 */
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { startWorkerScript } from '../../internal/worker-script';

export interface CheckpointWorkerData {
  file: string;
}

export type CheckpointRequest = { type: 'checkpoint' } | { type: 'close' };

export type CheckpointReply =
  { ok: true; busy: boolean; log: number; checkpointed: number } | { ok: false; message: string };

/**
 * Commits between two checkpoints. A group commit of Renew calls writes some 50 pages (the record's row and a
 * leaf of each of the five audit indexes per call), so under load this is about SQLite's default of 1,000 pages;
 * a quieter server checkpoints smaller WALs more often, off its thread.
 */
export const CHECKPOINT_EVERY_COMMITS = 16;

/** The server connection's own auto-checkpoint while the worker runs: only if the worker falls far behind. */
export const BACKSTOP_AUTOCHECKPOINT_PAGES = 10_000;

/** SQLite's default, which the server's connection returns to when the worker is unavailable. */
export const INLINE_AUTOCHECKPOINT_PAGES = 1_000;

export class WalCheckpointer {
  private worker: Worker | undefined;
  private unavailable: string | undefined;
  private commits = 0;
  private inFlight = false;
  private again = false;
  private closing: Promise<void> | undefined;
  private idleWaiters: (() => void)[] = [];
  /** Checkpoints the worker completed; for tests and diagnostics. */
  checkpoints = 0;

  /**
   * @param file the database file
   * @param onUnavailable called once if the worker cannot run (it failed to start, a checkpoint failed, it
   *   exited): the store then lets its own connection checkpoint again.
   */
  constructor(
    private readonly file: string,
    private readonly onUnavailable: (reason: string) => void,
  ) {}

  /** Why checkpoints went back to the server's connection, or undefined while the worker does them. */
  get fallback(): string | undefined {
    return this.unavailable;
  }

  /** Counts one commit written on the server's connection; every CHECKPOINT_EVERY_COMMITS asks for a checkpoint. */
  committed(): void {
    if (this.unavailable !== undefined || this.closing !== undefined) return;
    if (++this.commits < CHECKPOINT_EVERY_COMMITS) return;
    this.commits = 0;
    this.request();
  }

  /** Asks for a checkpoint now (or right after the running one); for tests and close-by-hand tools. */
  request(): void {
    if (this.unavailable !== undefined || this.closing !== undefined) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    const worker = this.ensureWorker();
    if (worker === undefined) return;
    this.inFlight = true;
    worker.postMessage({ type: 'checkpoint' } satisfies CheckpointRequest);
  }

  /** Resolves when no checkpoint is running or asked for. */
  idle(): Promise<void> {
    if (!this.inFlight) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops the worker as a crash would (a drill for tests): checkpoints go back to the server's connection.
   * Resolves once it exited.
   */
  async stopWorker(): Promise<void> {
    const worker = this.worker;
    if (worker === undefined) return;
    await worker.terminate();
  }

  /** Lets a running checkpoint end, then closes the worker's connection and stops it. Call before the store closes. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    const worker = this.worker;
    if (worker === undefined) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    // Referenced until it exited: a process whose last work is this close must not end while it waits.
    worker.ref();
    // Messages are handled in order: a checkpoint already asked for runs first.
    worker.postMessage({ type: 'close' } satisfies CheckpointRequest);
    await exited;
    this.worker = undefined;
    this.settleIdle();
  }

  private ensureWorker(): Worker | undefined {
    if (this.worker !== undefined) return this.worker;
    let worker: Worker;
    try {
      worker = startWorkerScript(__filename, 'wal-checkpoint-worker', {
        workerData: { file: path.resolve(this.file) } satisfies CheckpointWorkerData,
      });
    } catch (e) {
      this.fail(`the checkpoint worker did not start: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
    this.worker = worker;
    // Nothing waits for a checkpoint: it must not keep the process alive.
    worker.unref();
    worker.on('message', (m: CheckpointReply) => {
      this.inFlight = false;
      if (!m.ok) {
        this.fail(`a checkpoint failed: ${m.message}`);
        return;
      }
      this.checkpoints++;
      if (this.again) {
        this.again = false;
        this.request();
      }
      if (!this.inFlight) this.settleIdle();
    });
    worker.on('error', (e) => this.fail(`the checkpoint worker failed: ${e.message}`));
    worker.on('exit', (code) => {
      if (this.closing === undefined) this.fail(`the checkpoint worker exited (code ${code})`);
    });
    return worker;
  }

  private fail(reason: string): void {
    if (this.unavailable !== undefined) return;
    this.unavailable = reason;
    this.inFlight = false;
    this.again = false;
    const worker = this.worker;
    this.worker = undefined;
    void worker?.terminate();
    this.onUnavailable(reason);
    this.settleIdle();
  }

  private settleIdle(): void {
    for (const idle of this.idleWaiters.splice(0)) idle();
  }
}
