/**
 * Where a CRL is built: in a worker thread (the default, WorkerCrlBuilder) or on the server's thread
 * (InlineCrlBuilder, the reference the worker is compared against). Both keep the revoked list between builds and
 * make the same bytes for the same revocations (revoked-list.ts applyAndSign); the publisher decides what to read
 * (a full read or the revocations after a sequence) and when.
 *
 * The worker reads a SQLite store itself, on a read-only connection of its own (WAL lets it read beside the
 * server's writer); for any other store (PostgreSQL) the server's thread reads the delta through the store, whose
 * I/O is asynchronous, and hands it over in columns. A worker that dies (a crash, an out-of-memory kill of the
 * thread, `stopWorker`) fails the build it held with ERR_INTERNAL and is replaced on the next build, which then reads
 * the list whole; a build that outlasts `buildTimeoutMs` is treated the same way, so a caller gets an error, never
 * a hang.
 */
import type { Worker } from 'node:worker_threads';
import type { CrlSigner } from '../../ca/ca-manager';
import type { CrlHeader } from '../../ca/crl';
import { errorFromCode, InternalError, isLanyardErrorCode } from '../../errors';
import { startWorkerScript } from '../../internal/worker-script';
import type { Store } from '../../store/store';
import { CrlBufferHold, CrlBufferPool } from './crl-buffers';
import type { CrlBuildResult, CrlWorkerData, CrlWorkerReply, CrlWorkerRequest } from './crl-build-protocol';
import { applyAndSign, RevokedList, toColumns } from './revoked-list';

export type { CrlBuildResult } from './crl-build-protocol';

export interface CrlBuildRequest {
  /** Read the whole list again; else only the revocations after `after`. */
  full: boolean;
  after: number;
  header: CrlHeader;
  signers: readonly CrlSigner[];
}

/** A build's CRLs; `hold` when their DERs live in a reused buffer (crl-buffers.ts), which the caller must follow. */
export interface BuiltCrls extends CrlBuildResult {
  hold?: CrlBufferHold;
}

export interface CrlBuilder {
  build(request: CrlBuildRequest): Promise<BuiltCrls>;
  close(): Promise<void>;
}

type DeltaStore = Pick<Store, 'listRevokedSerialsAfter'>;

/** On the server's thread: what every build did before the worker. */
export class InlineCrlBuilder implements CrlBuilder {
  private readonly list = new RevokedList();

  constructor(private readonly store: DeltaStore) {}

  async build(r: CrlBuildRequest): Promise<CrlBuildResult> {
    try {
      const delta = await this.store.listRevokedSerialsAfter(r.full ? 0 : r.after, r.header.thisUpdate);
      const { crls, added } = applyAndSign(
        this.list,
        { full: r.full, header: r.header, deltas: [toColumns(delta.serials)] },
        r.signers,
      );
      return {
        crls,
        revokedCount: this.list.size,
        added,
        reads: 1,
        throughSequence: delta.throughSequence,
        full: r.full,
      };
    } catch (e) {
      // The list may be half-updated: the publisher reads it whole next time (it does after any failure).
      this.list.clear();
      throw e;
    }
  }

  async close(): Promise<void> {}
}

export const CRL_WORKER_DEFAULTS = Object.freeze({
  /** A build still running after this is abandoned (its worker stopped): the caller gets an error. */
  buildTimeoutMs: 10 * 60_000,
  /** Revocation sequences per bounded read of a SQLite store: no read transaction lasts the whole build. */
  readChunk: 32_768,
  /** The worker thread's nice value (Linux): the server's thread is scheduled first when the cores are busy. */
  niceness: 10,
  /**
   * A longer time slice for the worker thread (ms; Linux >= 6.12, the addon built; thread-priority.ts), so that
   * a woken thread preempts it at once. 0, the kernel's: measured on the 2-core host it changed nothing (a woken
   * thread there waits for the tick whatever the busy thread's slice or policy); kept for `bench-revocation-threads`.
   */
  sliceMs: 0,
  /** SCHED_IDLE instead of the nice value alone: measured, it starves the build on a busy host (thread-priority.ts). */
  idle: false,
});

export interface WorkerCrlBuilderOptions {
  /** The SQLite store's file: the worker reads it itself. Else this thread reads the store and hands over. */
  sqliteFile?: string;
  /**
   * Resolves once every commit written so far is durable (SqliteStore.durableBarrier). The worker's own
   * connection sees a commit as soon as it is written, before its WAL fsync: a built CRL is handed over only
   * once this resolves, taken after the worker's reply, so it never lists a revocation a power loss could take
   * back. Required with `sqliteFile`.
   */
  durable?: () => Promise<void>;
  buildTimeoutMs?: number;
  readChunk?: number;
  niceness?: number;
  sliceMs?: number;
  idle?: boolean;
}

interface Running {
  id: number;
  resolve(r: BuiltCrls): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  /** The free buffers this build was offered. */
  offered: SharedArrayBuffer[];
}

/** In a worker thread of its own, started on the first build and kept (with its list) between builds. */
export class WorkerCrlBuilder implements CrlBuilder {
  private worker: Worker | undefined;
  /** The current worker holds a complete list (it finished a full read). */
  private primed = false;
  private running: Running | undefined;
  private nextId = 1;
  /** Buffers no CRL in use lives in, offered to the next build. */
  readonly buffers = new CrlBufferPool();
  private closed = false;
  private readonly buildTimeoutMs: number;
  /** Workers that stopped while holding a build, or were stopped: for tests and operators. */
  lostWorkers = 0;
  /** Called when the worker begins the running build (stopWorker's midBuild). */
  private startWaiters: (() => void)[] = [];

  constructor(
    private readonly store: DeltaStore,
    private readonly options: WorkerCrlBuilderOptions = {},
  ) {
    this.buildTimeoutMs = options.buildTimeoutMs ?? CRL_WORKER_DEFAULTS.buildTimeoutMs;
    if (options.sqliteFile !== undefined && options.durable === undefined) {
      throw new InternalError("a CRL builder reading SQLite needs the store's durability barrier");
    }
  }

  /** Whether the worker reads the store itself (SQLite) rather than being handed what this thread read. */
  get readsStore(): boolean {
    return this.options.sqliteFile !== undefined;
  }

  async build(r: CrlBuildRequest): Promise<BuiltCrls> {
    if (this.closed) throw new InternalError('the CRL builder is closed');
    // The publisher runs one build at a time; a second here is a bug, not a caller's fault.
    if (this.running !== undefined) throw new InternalError('a CRL build is already running');
    // A new worker has no list: whatever was asked, it reads everything.
    const full = r.full || !this.primed;
    const id = this.nextId++;
    const delta = this.readsStore
      ? undefined
      : await this.store.listRevokedSerialsAfter(full ? 0 : r.after, r.header.thisUpdate);
    if (this.closed) throw new InternalError('the CRL builder is closed');
    const worker = this.ensureWorker();
    const message: CrlWorkerRequest = {
      type: 'build',
      id,
      full,
      after: r.after,
      crlNumber: r.header.crlNumber,
      thisUpdateMs: r.header.thisUpdate.getTime(),
      nextUpdateMs: r.header.nextUpdate.getTime(),
      signers: r.signers.map((s) => ({ authorityId: s.authorityId, certDer: s.cert.der, key: s.key })),
      ...(delta !== undefined && {
        delta: { ...toColumns(delta.serials), throughSequence: delta.throughSequence },
      }),
      // Not given back if the build fails: a stopped worker may still be writing into them.
      buffers: this.buffers.take(),
    };
    return new Promise<BuiltCrls>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.abandon(
          new InternalError(`the CRL build took more than ${this.buildTimeoutMs} ms: its worker was stopped`),
        );
      }, this.buildTimeoutMs);
      timer.unref();
      this.running = { id, resolve, reject, timer, offered: message.buffers };
      worker.ref();
      const transfer =
        message.delta !== undefined
          ? [message.delta.revokedAtMs.buffer as ArrayBuffer, message.delta.expiresAtMs.buffer as ArrayBuffer]
          : [];
      worker.postMessage(message, transfer);
    });
  }

  /**
   * Stops the worker at once, as a crash would: a build it held fails, and the next build starts a new worker
   * that reads the list whole. With `midBuild`, first waits until the worker began a build (the running one,
   * or the next). For operators' drills and for tests of exactly that path.
   */
  async stopWorker(options: { midBuild?: boolean } = {}): Promise<void> {
    if (options.midBuild === true) {
      await new Promise<void>((resolve) => this.startWaiters.push(resolve));
    }
    const w = this.worker;
    if (w === undefined) return;
    await w.terminate();
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    if (w !== undefined) await w.terminate();
    this.settle(undefined, new InternalError('the CRL builder is closed'));
  }

  private ensureWorker(): Worker {
    if (this.worker !== undefined) return this.worker;
    const data: CrlWorkerData = {
      ...(this.options.sqliteFile !== undefined && { sqliteFile: this.options.sqliteFile }),
      readChunk: this.options.readChunk ?? CRL_WORKER_DEFAULTS.readChunk,
      niceness: this.options.niceness ?? CRL_WORKER_DEFAULTS.niceness,
      sliceMs: this.options.sliceMs ?? CRL_WORKER_DEFAULTS.sliceMs,
      idle: this.options.idle ?? CRL_WORKER_DEFAULTS.idle,
    };
    const worker = startWorkerScript(__filename, 'crl-build-worker', { workerData: data });
    this.worker = worker;
    this.primed = false;
    worker.unref();
    worker.on('message', (m: CrlWorkerReply) => this.reply(worker, m));
    // An uncaught error is followed by the exit, which fails the build; nothing here may log a message.
    worker.on('error', () => {});
    worker.on('exit', (code) => this.exited(worker, code));
    return worker;
  }

  private reply(worker: Worker, m: CrlWorkerReply): void {
    const run = this.running;
    if (worker !== this.worker || run === undefined || m.id !== run.id) return;
    if (m.type === 'started') {
      for (const w of this.startWaiters.splice(0)) w();
      return;
    }
    if (m.type === 'built') {
      this.primed = true;
      // The offered buffers the worker did not write into are still free. The one it wrote into is used through
      // this thread's own object for it: a new one per build would be new external memory here (crl-buffers.ts).
      run.offered.forEach((b, i) => {
        if (i !== m.bufferIndex) this.buffers.give(b);
      });
      const buffer = m.bufferIndex < 0 ? m.buffer : run.offered[m.bufferIndex];
      if (buffer === undefined) {
        this.settle(undefined, new InternalError('the CRL build worker named no buffer for its CRLs'));
        return;
      }
      const result: BuiltCrls = {
        crls: m.crls.map((c) => ({
          authorityId: c.authorityId,
          der: new Uint8Array(buffer, c.offset, c.length),
        })),
        hold: new CrlBufferHold(buffer, this.buffers),
        revokedCount: m.revokedCount,
        added: m.added,
        reads: m.reads,
        throughSequence: m.throughSequence,
        full: m.full,
      };
      const durable = this.readsStore ? this.options.durable : undefined;
      if (durable === undefined) {
        this.settle(result);
        return;
      }
      // Taken now, after the reply: every commit the worker read was written before this point. The build stays
      // running meanwhile (a close or the timeout fails it; no other build starts).
      durable().then(
        () => {
          if (this.running === run) this.settle(result);
        },
        (e: unknown) => {
          if (this.running === run)
            this.settle(undefined, e instanceof Error ? e : new InternalError(String(e)));
        },
      );
      return;
    }
    this.primed = false;
    this.settle(
      undefined,
      m.typed && isLanyardErrorCode(m.code)
        ? errorFromCode(m.code, m.message)
        : new InternalError(`the CRL build failed: ${m.code}: ${m.message}`),
    );
  }

  private exited(worker: Worker, code: number): void {
    if (worker !== this.worker) return;
    this.worker = undefined;
    this.primed = false;
    if (this.running !== undefined) this.lostWorkers += 1;
    this.settle(
      undefined,
      new InternalError(`the CRL build worker stopped (exit code ${code}) during the build; no CRL was made`),
    );
  }

  /** Gives up on the running build: its worker is stopped (its exit fails the build with `e`). */
  private abandon(e: Error): void {
    const w = this.worker;
    this.worker = undefined;
    this.primed = false;
    this.lostWorkers += 1;
    this.settle(undefined, e);
    void w?.terminate();
  }

  private settle(result: BuiltCrls | undefined, error?: Error): void {
    const run = this.running;
    if (run === undefined) return;
    this.running = undefined;
    clearTimeout(run.timer);
    this.worker?.unref();
    if (result !== undefined) run.resolve(result);
    else run.reject(error ?? new InternalError('the CRL build failed'));
  }
}
