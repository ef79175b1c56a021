/**
 * One group commit on PostgreSQL (PgStore.sharedTransaction; the queue is src/store/commit-queue.ts, shared with
 * the SQLite store). A batch is one transaction on one pooled connection that takes the cross-server write lock
 * once; each call runs inside a savepoint of its own, so a call that fails leaves nothing behind and the others go
 * on; then one COMMIT (one WAL flush, synchronous_commit as configured) for all of them, and only then does any
 * call get its result.
 *
 * Failure: a connection that breaks, a savepoint that cannot be rolled back, or a COMMIT that fails or that
 * PostgreSQL turns into a rollback fails every call of the batch, and none is acknowledged. When the connection
 * broke during COMMIT its outcome is unknown to us; every call is still refused, as a single transaction's would
 * be: a client's retry issues afresh, and a single-use token or grant spent by a commit whose answer was lost is
 * reported spent, as after any lost answer.
 *
 * Notifications (pg_notify in setBundle and addRevocation) are transactional: PostgreSQL sends those of a batch
 * when it commits, drops those of a call whose savepoint was rolled back, and sends none when the batch rolls
 * back, so other servers hear exactly what committed, once it did.
 */
import type { Pool, PoolClient } from 'pg';
import { InternalError } from '../../errors';
import { BatchAuditHeads } from '../audit-batch';
import type { CommitJob } from '../commit-queue';
import type { StoreOps } from '../store';
import type { Runner } from './sql';
import { checkout, transactionRunner, WRITE_BEGIN, type CheckedOut } from './transaction';

/** What a batch needs from the store. */
export interface PgBatchContext {
  pool: Pool;
  /** The StoreOps a call gets, over the runner of its savepoint, appending after the batch's audit heads. */
  ops(run: Runner, heads: BatchAuditHeads): StoreOps;
  /** Runs `f` marked as inside a store transaction (the store refuses calls on itself from there). */
  markInTransaction<T>(f: () => T): T;
}

type CallOutcome = { ok: true; value: unknown } | { ok: false; error: unknown; broken?: unknown };

/** Runs the calls of `jobs` in one transaction and settles every one of them. Never rejects. */
export async function runPgBatch(ctx: PgBatchContext, jobs: readonly CommitJob[]): Promise<void> {
  let connection: CheckedOut;
  try {
    connection = await checkout(ctx.pool);
  } catch (e) {
    for (const job of jobs) job.reject(e);
    return;
  }
  const { client } = connection;
  const succeeded: { job: CommitJob; value: unknown }[] = [];
  let failure: unknown;
  let broken: Error | undefined;
  let next = 0;
  try {
    for (const statement of WRITE_BEGIN) await client.query(statement.text, statement.values);
    const heads = new BatchAuditHeads();
    for (; next < jobs.length; next++) {
      const job = jobs[next]!;
      const outcome = await runCall(ctx, client, job, heads);
      if (outcome.ok) {
        succeeded.push({ job, value: outcome.value });
        continue;
      }
      job.reject(outcome.error);
      if (outcome.broken !== undefined) throw outcome.broken;
    }
    const result = await client.query('COMMIT');
    // PostgreSQL answers COMMIT of a transaction in the aborted state with ROLLBACK, not an error.
    if (result.command !== 'COMMIT') {
      throw new InternalError(`PostgreSQL ended the shared transaction with ${result.command}`);
    }
  } catch (e) {
    failure = e;
  }
  if (failure !== undefined) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackError) {
      broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
    }
  }
  // A connection whose ROLLBACK failed is in an unknown state: the pool closes it instead of reusing it.
  connection.release(broken);
  if (failure === undefined) {
    for (const s of succeeded) s.job.resolve(s.value);
    return;
  }
  const error = batchNotCommitted(failure);
  for (const s of succeeded) s.job.reject(error);
  // The call that was running when the batch broke was settled with its own error; the rest never ran.
  for (const job of jobs.slice(next + 1)) job.reject(error);
}

/** One call of the batch in its own savepoint, in its caller's async context. */
async function runCall(
  ctx: PgBatchContext,
  client: PoolClient,
  job: CommitJob,
  heads: BatchAuditHeads,
): Promise<CallOutcome> {
  try {
    await client.query('SAVEPOINT group_commit_call');
  } catch (e) {
    return { ok: false, error: batchNotCommitted(e), broken: e };
  }
  const handle = transactionRunner(client);
  let outcome: CallOutcome;
  try {
    const value = await job.inCallerContext(() =>
      ctx.markInTransaction(() => job.fn(ctx.ops(handle.run, heads))),
    );
    outcome = { ok: true, value };
  } catch (e) {
    outcome = { ok: false, error: e };
  }
  // A call may have left work running on its handle (started, not awaited): let it end before the savepoint
  // does, or its statements would land in the next call's savepoint. Later use of the handle is refused.
  await handle.end();
  // A call that succeeded keeps its savepoint (the next call's nests inside it; COMMIT ends them all): releasing
  // it would cost a round trip per call, under the lock. ROLLBACK TO names the newest one: this call's.
  if (outcome.ok) {
    heads.callKept();
    return outcome;
  }
  heads.callRolledBack();
  try {
    await client.query('ROLLBACK TO SAVEPOINT group_commit_call');
  } catch (e) {
    return { ...outcome, broken: e };
  }
  return outcome;
}

function batchNotCommitted(cause: unknown): InternalError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new InternalError(
    `the shared transaction did not commit (${reason}); nothing of this call was acknowledged: retry`,
    { cause },
  );
}
