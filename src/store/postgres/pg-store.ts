import { AsyncLocalStorage } from 'node:async_hooks';
import { Pool, types, type ClientConfig, type PoolConfig } from 'pg';
import { parseIntoClientConfig } from 'pg-connection-string';
import type { AuditStore } from '../../audit/log';
import { InternalError, InvalidArgumentError, LanyardError, StoreClosedError } from '../../errors';
import { AsyncMutex } from '../../internal/async-mutex';
import { CommitQueue, type CommitJob } from '../commit-queue';
import type { CallerQuery, CallerRecords, GroupCommitStats, Store, StoreOps } from '../store';
import type { BatchAuditHeads } from '../audit-batch';
import { TableOps, type StoreTables, type TableCall } from '../table-ops';
import { PgAudit } from './audit';
import { readCallerPg } from './caller-read';
import { PgCaState } from './ca-state';
import { PgChangeListener } from './change-listener';
import { PgEntries } from './entries';
import { PgFederation } from './federation';
import { runPgBatch } from './group-commit';
import { PgJoinTokens } from './join-tokens';
import { migratePostgres, pgSchemaVersion } from './migrations';
import { PgSessions } from './sessions';
import type { Runner } from './sql';
import { inTransaction, SNAPSHOT_BEGIN, transactionRunner, WRITE_BEGIN } from './transaction';

export { WRITE_LOCK_KEY } from './transaction';

export interface PgStoreOptions {
  /** postgresql://user@host:port/database?... (a Unix socket dir as `host=/path`). Must not hold a password. */
  url: string;
  /** The password, read by the caller from a file or the environment; never logged. */
  password?: string;
  /** Connections in the pool. Default 10. */
  poolSize?: number;
  /** Source of createdAt/updatedAt; tests pass a fake clock. */
  clock?: () => Date;
  /** application_name, visible in pg_stat_activity: which server holds which connection. */
  applicationName?: string;
  /**
   * Which server this is, among those sharing the database: it sees only its own CA authorities and contributes
   * its own roots to the shared bundle. Stable across restarts (kept in the server's data dir). Default 'default'.
   */
  serverId?: string;
}

const INT8_OID = 20;

/** BIGINT columns (sequences, counts) as numbers: all stay far below 2^53; a larger one is refused, not rounded. */
function parseInt8(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new InternalError(`integer ${value} is beyond 2^53`);
  return n;
}

const typeParsers: NonNullable<PoolConfig['types']> = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? parseInt8 : types.getTypeParser(oid, format)) as NonNullable<
    PoolConfig['types']
  >['getTypeParser'],
};

/** The URL without any password, for logs and errors. */
export function redactPostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    for (const key of [...u.searchParams.keys()]) {
      if (/pass|secret/i.test(key)) u.searchParams.set(key, '***');
    }
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** The table modules, all sharing one Runner. */
function pgTables(run: Runner, clock: () => Date, serverId: string): StoreTables {
  return {
    entries: new PgEntries(run, clock),
    joinTokens: new PgJoinTokens(run, clock),
    ca: new PgCaState(run, clock, serverId),
    sessions: new PgSessions(run, clock, serverId),
    federation: new PgFederation(run, clock),
  };
}

/** Every PostgreSQL table method returns a promise already, guarded by its Runner. */
const pgCall: TableCall = (op) => new Promise((resolve) => resolve(op()));

/**
 * The shared store: PostgreSQL, for several Lanyard servers on one database.
 *
 * Atomicity: every write method is one transaction, and `transaction(fn)` one transaction for all of fn's calls;
 * each call inside it is a savepoint, so a failure that fn catches undoes that call only (as in SQLite).
 * `sharedTransaction(fn)` runs fn in a transaction shared with the other calls queued meanwhile (group commit,
 * ./group-commit.ts): one lock, one COMMIT for the batch, fn's writes still a unit of their own.
 * Isolation: writes hold WRITE_LOCK_KEY for their transaction, so they are serial across servers; reads are READ
 * COMMITTED (a read of several statements that must agree runs in one REPEATABLE READ snapshot).
 * Durability: PostgreSQL's (synchronous_commit as the database is configured; the default is on). A call is
 * answered only after the COMMIT that holds it.
 */
export class PgStore extends TableOps implements Store {
  readonly kind = 'postgres';
  declare readonly audit: AuditStore;
  private readonly pool: Pool;
  private readonly url: string;
  private readonly clock: () => Date;
  private readonly serverId: string;
  readonly changes: PgChangeListener;
  private readonly inTransaction = new AsyncLocalStorage<true>();
  private readonly running = new Set<Promise<unknown>>();
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly commits = new CommitQueue((jobs) => this.runBatch(jobs));

  /**
   * Writers of this process queue here before they take a pooled connection. Writes run one at a time across
   * every server anyway (WRITE_LOCK_KEY); without this queue each waiting writer would hold a connection while it
   * waits for the lock, and under load the waiting writers took the whole pool and starved the reads (caller
   * checks, Renew's lookups) until pg-pool's connect timeout failed them.
   */
  private readonly writers: AsyncMutex;

  private constructor(
    pool: Pool,
    url: string,
    clock: () => Date,
    serverId: string,
    listenConfig: ClientConfig,
  ) {
    const writers = new AsyncMutex();
    const run = storeRunner(pool, writers);
    // The closure reads `this` only when called, after super() returned.
    const guarded: Runner = {
      read: (fn) => this.guard(() => run.read(fn)),
      snapshot: (fn) => this.guard(() => run.snapshot(fn)),
      write: (fn) => this.guard(() => run.write(fn)),
    };
    const audit = new PgAudit(guarded);
    super(pgTables(guarded, clock, serverId), pgCall, audit);
    this.pool = pool;
    this.writers = writers;
    this.url = url;
    this.clock = clock;
    this.serverId = serverId;
    this.changes = new PgChangeListener(listenConfig, serverId);
  }

  /** Connects, and brings the schema up to date (under an advisory lock: servers may start together). */
  static async open(options: PgStoreOptions): Promise<PgStore> {
    const clock = options.clock ?? (() => new Date());
    const redacted = redactPostgresUrl(options.url);
    let base: PoolConfig;
    try {
      base = parseIntoClientConfig(options.url) as PoolConfig;
    } catch (e) {
      throw new InvalidArgumentError(`store.postgres.url is not a valid URL: ${redacted}`, {
        cause: e,
      });
    }
    if (typeof base.password === 'string' && base.password !== '') {
      throw new InvalidArgumentError(
        'store.postgres.url holds a password: put it in store.postgres.password_file or LANYARD_POSTGRES_PASSWORD',
      );
    }
    const connection: ClientConfig = {
      ...base,
      ...(options.password !== undefined && { password: options.password }),
      types: typeParsers,
      application_name: options.applicationName ?? 'lanyard',
      connectionTimeoutMillis: 10_000,
    };
    const pool = new Pool({ ...connection, max: options.poolSize ?? 10 });
    // An idle connection that breaks (the database restarted) is dropped and replaced on the next query; without
    // a listener the pool's 'error' event would end the process.
    pool.on('error', () => undefined);
    try {
      const client = await pool.connect();
      try {
        await migratePostgres(client, clock);
      } finally {
        client.release();
      }
    } catch (e) {
      await pool.end().catch(() => undefined);
      if (e instanceof LanyardError) throw e;
      throw new InternalError(
        `cannot open the PostgreSQL store at ${redacted}: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
    return new PgStore(pool, redacted, clock, options.serverId ?? 'default', connection);
  }

  async transaction<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    return this.guard(() =>
      this.writers.run(() =>
        inTransaction(this.pool, WRITE_BEGIN, async (client) => {
          const handle = transactionRunner(client);
          try {
            return await this.inTransaction.run(true, () => fn(this.ops(handle.run)));
          } finally {
            await handle.end();
          }
        }),
      ),
    );
  }

  readCaller(query: CallerQuery): Promise<CallerRecords> {
    return this.guard(() => readCallerPg(storeRunner(this.pool, this.writers), query));
  }

  sharedTransaction<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    return this.guard(() => this.commits.enqueue(fn));
  }

  groupCommitStats(): GroupCommitStats {
    return { batches: this.commits.batches, calls: this.commits.calls };
  }

  /**
   * One group commit. Behind this process's other writers (the `writers` queue), like any write: the batch then
   * holds WRITE_LOCK_KEY once for all of its calls.
   */
  private runBatch(jobs: readonly CommitJob[]): Promise<void> {
    return this.writers.run(() =>
      runPgBatch(
        {
          pool: this.pool,
          ops: (run, heads) => this.ops(run, heads),
          markInTransaction: (f) => this.inTransaction.run(true, f),
        },
        jobs,
      ),
    );
  }

  /** The StoreOps of one transaction (or one call of a shared one), over its runner. */
  private ops(run: Runner, heads?: BatchAuditHeads): StoreOps {
    return new TableOps(pgTables(run, this.clock, this.serverId), pgCall, new PgAudit(run, heads));
  }

  /** What the store runs with, for the start-up log line and tests. The URL never holds a password. */
  async diagnostics(): Promise<{ url: string; poolSize: number; schemaVersion: number }> {
    const schemaVersion = await this.guard(() => pgSchemaVersion(this.pool));
    return { url: this.url, poolSize: this.pool.options.max, schemaVersion };
  }

  /**
   * Always undefined: PostgreSQL has no failed-closed state. A commit it cannot make fails and rolls back only
   * its own calls; an unreachable server or an exhausted pool fails calls until it is back, which restarting
   * this process would not hasten (src/server/store-health.ts says why health stays SERVING then).
   */
  failedClosed(): undefined {
    return undefined;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      await Promise.allSettled([...this.running]);
      await this.changes.close();
      await this.pool.end();
    })();
    return this.closing;
  }

  /** Refuses re-entry and calls after close; tracks running calls so close() can wait for them. */
  private guard<T>(op: () => Promise<T>): Promise<T> {
    if (this.inTransaction.getStore()) {
      return Promise.reject(
        new InternalError(
          'store called from inside its own transaction: use the `tx` handle passed to the callback',
        ),
      );
    }
    if (this.closed) return Promise.reject(new StoreClosedError('the store is closed'));
    const p = op();
    this.running.add(p);
    const done = (): void => {
      this.running.delete(p);
    };
    p.then(done, done);
    return p;
  }
}

/** Outside a transaction: reads on the pool, snapshots and writes each in a transaction of their own. */
function storeRunner(pool: Pool, writers: AsyncMutex): Runner {
  return {
    read: (fn) => fn(pool),
    snapshot: (fn) => inTransaction(pool, SNAPSHOT_BEGIN, fn),
    write: (fn) => writers.run(() => inTransaction(pool, WRITE_BEGIN, fn)),
  };
}
