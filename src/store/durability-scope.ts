/**
 * A per-call durability scope. A store whose commits become durable after they are visible (SQLite with the
 * WAL fsync off the thread) makes every read wait until all it could have seen is durable: a strict rule that
 * costs a call one fsync round per read. Inside a scope a read instead notes the last commit it could have
 * seen and returns at once; whoever opened the scope waits once, before it answers, for every commit noted.
 * A call that commits afterwards pays nothing more: WAL durability is a prefix, so once its own commit is
 * durable so is everything it read.
 *
 * The rule this rests on: nothing a read in a scope returned may leave the call before `settle()` resolved.
 * The scope's opener answers only then; a call that hands what it read to other calls (a cache, a memoised
 * promise, a stream) must not run in a scope, since their answers would not wait for it. Once `settle()` has
 * begun the scope is sealed: a read finishing later (detached work the call started) waits for itself.
 *
 * Store-agnostic: a store whose commits are durable when they return (PostgreSQL) notes nothing, and settling
 * such a scope waits for nothing.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** A store's sequence of commits: `whenDurable(n)` resolves once commit n and every one before it is durable. */
export interface DurableLog {
  whenDurable(commit: number): Promise<void>;
}

export class DurabilityScope {
  private readonly seen = new Map<DurableLog, number>();
  private sealed = false;

  /**
   * Notes that what the call read may rest on commit `commit` of `log`. False once the scope is sealed: the
   * reader must then wait for that commit itself.
   */
  note(log: DurableLog, commit: number): boolean {
    if (this.sealed) return false;
    if (commit > (this.seen.get(log) ?? 0)) this.seen.set(log, commit);
    return true;
  }

  /** Seals the scope and resolves once every commit noted is durable; rejects if one cannot be made so. */
  async settle(): Promise<void> {
    this.sealed = true;
    for (const [log, commit] of this.seen) await log.whenDurable(commit);
  }
}

const scopes = new AsyncLocalStorage<DurabilityScope>();

/** Runs `fn` with `scope` as the durability scope of the store calls it makes (and the async work it starts). */
export function runInDurabilityScope<T>(scope: DurabilityScope, fn: () => T): T {
  return scopes.run(scope, fn);
}

/** The scope of the running call, if it opened one. */
export function currentDurabilityScope(): DurabilityScope | undefined {
  return scopes.getStore();
}
