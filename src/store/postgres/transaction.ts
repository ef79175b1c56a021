/** Transactions on PostgreSQL connections, for PgStore and its group commit. */
import type { Pool, PoolClient } from 'pg';
import { InternalError } from '../../errors';
import { AsyncMutex } from '../../internal/async-mutex';
import type { Runner, Sql } from './sql';

/**
 * Transaction-scoped advisory lock that every write holds ("lanyard" + 2). It gives PostgreSQL the guarantee the
 * SQLite store gets from BEGIN IMMEDIATE: writers, on every server sharing the database, run one at a time, so a
 * transaction that reads and then writes (a session not ended yet, then a certificate for it; the audit head, then
 * the next record) sees no other writer in between, and sequence numbers commit in order. Reads take no lock.
 */
export const WRITE_LOCK_KEY = 0x6c616e79_0002n.toString();

export interface Statement {
  text: string;
  values: unknown[];
}

/**
 * A write transaction: writers hold WRITE_LOCK_KEY, so they run one at a time across servers. One round trip (a
 * simple query of two statements; the key is our constant, not input), since every write pays it under load.
 */
export const WRITE_BEGIN: readonly Statement[] = [
  { text: `BEGIN; SELECT pg_advisory_xact_lock(${WRITE_LOCK_KEY})`, values: [] },
];

export const SNAPSHOT_BEGIN: readonly Statement[] = [
  { text: 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', values: [] },
];

/** A connection taken from the pool, until `release`. */
export interface CheckedOut {
  client: PoolClient;
  /** Gives it back; one that broke (`broken`, or an 'error' it emitted meanwhile) is closed, not reused. */
  release(broken?: Error): void;
}

/**
 * Takes a connection from the pool. pg-pool listens for a connection's 'error' only while it is idle, and a
 * connection that breaks while checked out (the database restarted, the backend was terminated) emits one even
 * when a query is running: without a listener of ours that would be an uncaught exception ending the server. The
 * running query and every later one fail on their own, so the listener only remembers that it broke.
 */
export async function checkout(pool: Pool): Promise<CheckedOut> {
  const client = await pool.connect();
  let lost: Error | undefined;
  const onError = (e: Error): void => {
    lost ??= e;
  };
  client.on('error', onError);
  return {
    client,
    release: (broken) => {
      client.removeListener('error', onError);
      client.release(broken ?? lost);
    },
  };
}

/** Runs fn on a pooled connection inside the transaction the `begin` statements open; commits or rolls back. */
export async function inTransaction<T>(
  pool: Pool,
  begin: readonly Statement[],
  fn: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const { client, release } = await checkout(pool);
  let broken: Error | undefined;
  try {
    for (const statement of begin) await client.query(statement.text, statement.values);
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (e) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackError) {
      broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
    }
    throw e;
  } finally {
    // A connection whose ROLLBACK failed is in an unknown state: the pool closes it instead of reusing it.
    release(broken);
  }
}

/** The Runner of an open transaction, and how to end it. */
export interface TransactionHandle {
  run: Runner;
  /** Refuses any later call, then resolves once the calls already started have ended. */
  end(): Promise<void>;
}

/**
 * Inside a transaction: every call on the one connection, one at a time (a callback may start several at once),
 * each in a savepoint, so a failed statement undoes that call only instead of aborting the transaction. A call
 * that succeeds leaves its savepoint in place rather than paying a round trip to release it: savepoints nest,
 * ROLLBACK TO names the newest of that name (the failing call's own), and the transaction's end discards them all.
 */
export function transactionRunner(client: PoolClient): TransactionHandle {
  const mutex = new AsyncMutex();
  let open = true;
  const ended = (): InternalError => new InternalError('transaction handle used after its transaction ended');
  const inSavepoint = <T>(fn: (sql: Sql) => Promise<T>): Promise<T> => {
    if (!open) return Promise.reject(ended());
    return mutex.run(async () => {
      if (!open) throw ended();
      await client.query('SAVEPOINT lanyard_call');
      try {
        return await fn(client);
      } catch (e) {
        await client.query('ROLLBACK TO SAVEPOINT lanyard_call');
        throw e;
      }
    });
  };
  return {
    run: { read: inSavepoint, snapshot: inSavepoint, write: inSavepoint },
    end: () => {
      open = false;
      // The mutex is FIFO: this runs after every call queued before; those queued later see `open` false.
      return mutex.run(() => undefined);
    },
  };
}
