import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { InternalError } from '../../errors';
import type { DurableLog } from '../durability-scope';

/** Makes everything written to the file behind `fd` durable; the default is fsync(2) on libuv's threadpool. */
export type FsyncHook = (fd: number) => Promise<void>;

export const fsyncOnThreadpool: FsyncHook = promisify(fs.fsync);

interface Waiter {
  commit: number;
  resolve: () => void;
  reject: (reason: unknown) => void;
}

/**
 * The durable half of a commit, off the server's thread. The connection runs WAL with synchronous=NORMAL: a
 * COMMIT writes its frames into the -wal file (the page cache) and returns without an fsync. The store numbers
 * each commit (`committed()`) and answers its calls only once `whenDurable(n)` resolves: an fsync of the -wal
 * file that started after commit n was written. One fsync is in flight at a time and covers every commit
 * written before it started, so commits made while it runs share the next one (pipelined group commit).
 *
 * Fails closed: once an fsync fails, every commit not yet durable is rejected and so is every later wait, for
 * good (after a failed fsync Linux may have dropped the dirty pages and report the next fsync clean). The
 * descriptor must be the file SQLite writes: `open` takes it after the connection opened its WAL, and each fsync
 * first checks that the path still names that file (a -wal removed or replaced under an open connection would
 * leave SQLite writing to an unlinked inode that no restart reads).
 */
export class WalFsync implements DurableLog {
  private written = 0;
  private durable = 0;
  private inFlight: Promise<void> | undefined;
  private waiters: Waiter[] = [];
  private fault: InternalError | undefined;
  private idleWaiters: (() => void)[] = [];
  private poisonListeners: ((failure: InternalError) => void)[] = [];
  /** fsyncs run, and commits they covered: commits / fsyncs is what pipelining saved. */
  fsyncs = 0;

  private constructor(
    private readonly walPath: string,
    private readonly fd: number,
    private readonly identity: { dev: number; ino: number },
    private readonly fsync: FsyncHook,
  ) {}

  /** Opens a descriptor on the -wal file SQLite has open (read-only is enough for fsync). */
  static open(walPath: string, fsync: FsyncHook = fsyncOnThreadpool): WalFsync {
    const fd = fs.openSync(walPath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const st = fs.fstatSync(fd);
      return new WalFsync(walPath, fd, { dev: st.dev, ino: st.ino }, fsync);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** The durability failure that poisoned the store, if any. */
  get failure(): InternalError | undefined {
    return this.fault;
  }

  /**
   * Calls `listener` once, when the pipeline fails closed, before any waiter's rejection can be observed (so
   * health is NOT_SERVING before the failing call's caller hears of it); at once if it already has. Returns a
   * function that removes the listener.
   */
  onPoisoned(listener: (failure: InternalError) => void): () => void {
    if (this.fault !== undefined) {
      listener(this.fault);
      return () => {};
    }
    this.poisonListeners.push(listener);
    return () => {
      this.poisonListeners = this.poisonListeners.filter((l) => l !== listener);
    };
  }

  /** Counts one COMMIT written to the WAL and returns its number, to pass to whenDurable. */
  committed(): number {
    return ++this.written;
  }

  /** The number of the last commit written: what a read that may have seen it must wait for. */
  lastWritten(): number {
    return this.written;
  }

  /** Resolves once commit `commit` (and every one before it) is on disk; rejects if that cannot be made so. */
  whenDurable(commit: number): Promise<void> {
    if (this.fault !== undefined) return Promise.reject(this.fault);
    if (commit <= this.durable) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ commit, resolve, reject });
      this.kick();
    });
  }

  /** Resolves when no fsync is in flight and every commit is durable, or the pipeline failed. */
  settled(): Promise<void> {
    if (this.fault !== undefined || (this.inFlight === undefined && this.durable >= this.written)) {
      return Promise.resolve();
    }
    this.kick();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Closes the descriptor; call only once settled. */
  close(): void {
    fs.closeSync(this.fd);
  }

  private kick(): void {
    if (this.inFlight !== undefined || this.fault !== undefined) return;
    if (this.durable >= this.written) {
      for (const idle of this.idleWaiters.splice(0)) idle();
      return;
    }
    // Taken before the fsync starts: a commit written later may or may not be covered, so it waits for the next.
    const target = this.written;
    this.inFlight = this.syncUpTo(target).finally(() => {
      this.inFlight = undefined;
      this.kick();
    });
  }

  private async syncUpTo(target: number): Promise<void> {
    try {
      this.assertSameFile();
      this.fsyncs++;
      await this.fsync(this.fd);
    } catch (e) {
      this.poison(e);
      return;
    }
    this.durable = target;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.commit <= target) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  private assertSameFile(): void {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.walPath);
    } catch (e) {
      throw new Error(`${this.walPath} is gone while the database is open`, { cause: e });
    }
    if (st.dev !== this.identity.dev || st.ino !== this.identity.ino) {
      throw new Error(`${this.walPath} was replaced while the database is open`);
    }
  }

  private poison(cause: unknown): void {
    this.fault = new InternalError(
      'the store could not make its write-ahead log durable; it refuses every call until restarted',
      { cause },
    );
    // Before the waiters are rejected: a rejection reaches its handlers only on a later microtask, but a
    // listener that throws must not keep the waiters hanging either.
    for (const listener of this.poisonListeners.splice(0)) {
      try {
        listener(this.fault);
      } catch {
        // The store is poisoned whatever a listener does; its failure is not the store's to report.
      }
    }
    for (const w of this.waiters.splice(0)) w.reject(this.fault);
    for (const idle of this.idleWaiters.splice(0)) idle();
  }
}
