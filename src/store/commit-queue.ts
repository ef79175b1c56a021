import { AsyncResource } from 'node:async_hooks';
import type { StoreOps } from './store';

/** One call waiting for a group commit. */
export interface CommitJob {
  fn: (tx: StoreOps) => Promise<unknown>;
  /**
   * Runs `f` in the async context of the call that queued the job. A batch runs in the context of whatever
   * started the drain (the first call's); a job must see its own (its AsyncLocalStorage values: the audit
   * wrapper lends each call its recorder that way), or one call would write with another's.
   */
  inCallerContext<T>(f: () => T): T;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

/** Most calls in one shared transaction: bounds how long the first of them waits for the last. */
export const MAX_GROUP_COMMIT = 256;

/**
 * Group commit's queue. A durable commit costs one fsync whatever it holds, so calls that arrive while a
 * batch is being written wait for the next one instead of each paying their own: a batch starts as soon as
 * the previous one ended (or, when idle, at the next turn of the event loop, so the calls of one tick share
 * it), with at most MAX_GROUP_COMMIT calls. Under no load a call waits for nothing but its own commit.
 * `runBatch` may settle its jobs after it returns (SQLite answers them once their fsync is done): the next batch
 * starts when the previous one returned, not when its calls were answered.
 */
export class CommitQueue {
  private queue: CommitJob[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  /** Shared transactions run, and the calls they held: calls / batches is the fsyncs saved per commit. */
  batches = 0;
  calls = 0;

  constructor(private readonly runBatch: (jobs: readonly CommitJob[]) => Promise<void>) {}

  enqueue<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const context = new AsyncResource('lanyard.group-commit');
      this.queue.push({
        fn,
        inCallerContext: (f) => context.runInAsyncScope(f),
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      if (!this.running) {
        this.running = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  /** Resolves once every call queued so far has been run (their batches returned). */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_GROUP_COMMIT);
      this.batches++;
      this.calls += batch.length;
      try {
        await this.runBatch(batch);
      } catch (e) {
        // runBatch settles every job itself; this is a bug guard so that no caller waits forever.
        for (const job of batch) job.reject(e);
      }
    }
    this.running = false;
    for (const idle of this.idleWaiters.splice(0)) idle();
  }
}
