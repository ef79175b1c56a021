import { AsyncLocalStorage } from 'node:async_hooks';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { InternalError, StoreClosedError } from '../../errors';
import { AsyncMutex } from '../../internal/async-mutex';
import { BatchAuditHeads } from '../audit-batch';
import { currentDurabilityScope } from '../durability-scope';
import { CommitQueue, type CommitJob } from '../commit-queue';
import type { CallerQuery, CallerRecords, Store, StoreOps } from '../store';
import { TableOps, type StoreTables, type TableCall } from '../table-ops';
import type { AuditStore } from '../../audit/log';
import { SqliteAudit } from './audit';
import { readCallerSqlite } from './caller-read';
import { SqliteCaState } from './ca-state';
import { SqliteEntries } from './entries';
import { SqliteFederation } from './federation';
import { SqliteJoinTokens } from './join-tokens';
import { migrate, schemaVersion } from './migrations';
import { SqliteSessions } from './sessions';
import {
  BACKSTOP_AUTOCHECKPOINT_PAGES,
  INLINE_AUTOCHECKPOINT_PAGES,
  WalCheckpointer,
} from './wal-checkpointer';
import { WalFsync, type FsyncHook } from './wal-fsync';

/** The database file's name inside the data dir. */
export const SQLITE_FILE_NAME = 'lanyard.db';

export interface SqliteStoreOptions {
  /** The database file; created (mode 0600) when missing. */
  file: string;
  /** Source of createdAt/updatedAt; tests pass a fake clock. */
  clock?: () => Date;
  /** How long a write waits for another connection's write lock before failing. Default 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * How the -wal file is made durable after each commit; the default is fsync(2) on libuv's threadpool. Tests
   * wrap it to hold or fail an fsync (it receives the store's own descriptor of the -wal file).
   */
  fsync?: FsyncHook;
}

/**
 * The statements that open and end the store's transactions and a group commit's per-call savepoints, prepared
 * once: `db.exec` compiles its SQL on every call, and these run several times per batch on the server's thread.
 */
interface TransactionControl {
  begin: Database.Statement;
  commit: Database.Statement;
  rollback: Database.Statement;
  savepoint: Database.Statement;
  release: Database.Statement;
  rollbackToSavepoint: Database.Statement;
}

/**
 * Opens a write transaction (BEGIN IMMEDIATE) whose sub-journal stays in memory. A savepoint (a group commit's
 * per-call one, a nested `db.transaction`) copies each page it is the first to change into the sub-journal; past
 * 64 KiB SQLite spills that to a temp file, and from then on until the transaction ends every page a call
 * changes first costs two more write(2) calls on the server's thread (an audit record changes six b-trees, a
 * batch holds up to MAX_GROUP_COMMIT calls). SQLite decides where the sub-journal lives from temp_store when the
 * write transaction begins, so the setting is MEMORY only for that statement: the connection's sorts and
 * temporary b-trees (a CRL's GROUP BY over every revoked serial) spill to files as before. The sub-journal holds
 * the pages of the savepoints open at the time only (it is emptied when the outermost is released). PRAGMA
 * temp_store takes effect when it is prepared, so it cannot be a prepared statement stepped again.
 */
function beginWrite(db: Database.Database, control: TransactionControl, restoreTempStore: number): void {
  db.pragma('temp_store = MEMORY');
  try {
    control.begin.run();
  } finally {
    try {
      db.pragma(`temp_store = ${restoreTempStore}`);
    } catch (e) {
      // Not expected (the connection opens no TEMP schema); never leave a transaction open behind a failure.
      if (db.inTransaction) control.rollback.run();
      // eslint-disable-next-line no-unsafe-finally
      throw e;
    }
  }
}

function transactionControl(db: Database.Database): TransactionControl {
  return {
    begin: db.prepare('BEGIN IMMEDIATE'),
    commit: db.prepare('COMMIT'),
    rollback: db.prepare('ROLLBACK'),
    savepoint: db.prepare('SAVEPOINT group_commit_call'),
    release: db.prepare('RELEASE group_commit_call'),
    rollbackToSavepoint: db.prepare('ROLLBACK TO group_commit_call'),
  };
}

/** The synchronous table modules of one connection; SqliteStore gives them the async StoreOps shape. */
class SyncTables implements StoreTables {
  readonly entries: SqliteEntries;
  readonly joinTokens: SqliteJoinTokens;
  readonly ca: SqliteCaState;
  readonly sessions: SqliteSessions;
  readonly audit: SqliteAudit;
  readonly federation: SqliteFederation;

  constructor(db: Database.Database, clock: () => Date) {
    this.federation = new SqliteFederation(db, clock);
    this.audit = new SqliteAudit(db);
    this.sessions = new SqliteSessions(db, clock);
    this.entries = new SqliteEntries(db, clock);
    this.joinTokens = new SqliteJoinTokens(db, clock);
    this.ca = new SqliteCaState(db, clock);
  }
}

/**
 * The async StoreOps over SyncTables. `guard` runs before each call: the store uses it to take its lock, a
 * transaction handle to check that its transaction is still open.
 */
class AsyncOps extends TableOps {
  constructor(
    protected readonly sync: SyncTables,
    guard: TableCall,
    heads?: BatchAuditHeads,
  ) {
    // Inside a transaction the record commits with it; a call of a group commit appends after the batch's head.
    super(sync, guard, {
      append: (chain, event, now) =>
        guard(() =>
          heads !== undefined
            ? sync.audit.appendInBatch(chain, event, now, heads)
            : sync.audit.append(chain, event, now),
        ),
    });
  }
}

/**
 * The embedded store: one SQLite file in the data dir, one connection per SqliteStore.
 *
 * Durability: no call is answered before its rows are on disk (power loss, not only a process crash). The
 * connection runs WAL with synchronous=NORMAL, so a COMMIT only writes the WAL frames; the fsync of the -wal
 * file that makes them durable runs on libuv's threadpool (WalFsync) and the calls of that commit are answered
 * when it completes, while the server's thread goes on (the next commit can be written during that fsync; one
 * fsync covers every commit written before it started). A call that only reads is answered once every commit
 * written before it ran is durable, so no answer rests on rows a power loss could take back; inside a
 * durability scope (../durability-scope.ts) the read notes that commit instead and the scope's opener waits for
 * it once, before it answers (a gRPC call: server/durable-answers.ts). A failed fsync
 * fails every call it covered and every later call (the store is poisoned until reopened): fail closed. Why this
 * is as strong as synchronous=FULL against SQLite's WAL internals (restarts, checkpoints, the -wal being
 * truncated or deleted): docs/design/performance.md, "Renew: the durable commit off the server's thread".
 *
 * Atomicity: every write method is one transaction; `transaction(fn)` wraps several; `sharedTransaction(fn)`
 * runs `fn` in a transaction shared with the other calls queued meanwhile (group commit). Several processes may
 * open the same file: writers take SQLite's write lock up front (BEGIN IMMEDIATE) and wait up to busyTimeoutMs
 * for it.
 */
export class SqliteStore extends AsyncOps implements Store {
  readonly kind = 'sqlite';
  readonly file: string;
  declare readonly audit: AuditStore;
  private readonly db: Database.Database;
  private readonly mutex = new AsyncMutex();
  /** Marks the async context of a running transaction callback, to refuse re-entrant calls. */
  private readonly inTransaction = new AsyncLocalStorage<true>();
  private readonly commits = new CommitQueue((jobs) => this.runBatch(jobs));
  private readonly totalChanges: Database.Statement;
  private readonly control: TransactionControl;
  /** The connection's temp_store, restored once a write transaction has begun (beginWrite). */
  private readonly tempStore: number;
  private readonly checkpointer: WalCheckpointer;
  /** Set by close(): new calls are refused, the ones already made still run. */
  private closing: Promise<void> | undefined;
  private closed = false;

  private constructor(
    file: string,
    db: Database.Database,
    clock: () => Date,
    private readonly wal: WalFsync,
  ) {
    const sync = new SyncTables(db, clock);
    // A method reference cannot be passed before super(); this closure reads `this` only when called.
    super(sync, (op) => this.exclusive(op));
    this.file = file;
    this.db = db;
    this.totalChanges = db.prepare('SELECT total_changes()').pluck();
    this.control = transactionControl(db);
    this.tempStore = Number(db.pragma('temp_store', { simple: true }));
    // The worker's connection checkpoints; should it fail, this connection does again, as SQLite does by default.
    this.checkpointer = new WalCheckpointer(file, () => {
      if (!this.closed) db.pragma(`wal_autocheckpoint = ${INLINE_AUTOCHECKPOINT_PAGES}`);
    });
    const audit = sync.audit;
    const guard = <T>(op: () => T): Promise<T> => this.exclusive(op);
    this.audit = {
      append: (chain, event, now) => guard(() => audit.append(chain, event, now)),
      appendRecords: (chain, records, checkpoints) =>
        guard(() => audit.appendRecords(chain, records, checkpoints)),
      head: (chain) => guard(() => audit.head(chain)),
      addCheckpoint: (c) => guard(() => audit.addCheckpoint(c)),
      checkpoints: (chain) => guard(() => audit.checkpoints(chain)),
      readCheckpoints: (chain, after, limit) => guard(() => audit.readCheckpoints(chain, after, limit)),
      latestCheckpoint: (chain) => guard(() => audit.latestCheckpoint(chain)),
      readRecords: (chain, afterSeq, limit) => guard(() => audit.readRecords(chain, afterSeq, limit)),
      readStoredRecords: (chain, after, limit) => guard(() => audit.readStoredRecords(chain, after, limit)),
      query: (q) => guard(() => audit.query(q)),
      chains: () => guard(() => audit.chains()),
      pinChainKey: (chain, jwk, now) => guard(() => audit.pinChainKey(chain, jwk, now)),
      putServerKeyHistory: (serverId, json, now) =>
        guard(() => audit.putServerKeyHistory(serverId, json, now)),
      serverKeyHistories: () => guard(() => audit.serverKeyHistories()),
    };
  }

  /** Opens (creating when needed) the database and brings its schema up to date. */
  // async although nothing is awaited: a failure must arrive as a rejection, not a synchronous throw.
  static async open(options: SqliteStoreOptions): Promise<SqliteStore> {
    const clock = options.clock ?? (() => new Date());
    fs.mkdirSync(path.dirname(options.file), { recursive: true, mode: 0o700 });
    // Create the file ourselves so it is 0600 from the first byte; SQLite gives -wal and -shm the same mode.
    fs.closeSync(fs.openSync(options.file, 'a', 0o600));
    fs.chmodSync(options.file, 0o600);
    const db = new Database(options.file, { timeout: options.busyTimeoutMs ?? 5000 });
    let wal: WalFsync;
    try {
      db.pragma('journal_mode = WAL');
      // Migrations commit durably by themselves; only then do commits leave their fsync to WalFsync.
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      migrate(db, clock);
      db.pragma('synchronous = NORMAL');
      // Checkpoints run on the WalCheckpointer's connection; this one only if that falls far behind.
      db.pragma(`wal_autocheckpoint = ${BACKSTOP_AUTOCHECKPOINT_PAGES}`);
      // The connection has its -wal open by now (a WAL-mode read opens or creates it), so this is the same file.
      wal = WalFsync.open(`${path.resolve(options.file)}-wal`, options.fsync);
    } catch (e) {
      db.close();
      throw e;
    }
    return new SqliteStore(options.file, db, clock, wal);
  }

  async transaction<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    this.refuseReentry();
    this.refuseIfClosing();
    const { value, commit } = await this.mutex.run(async () => {
      this.assertOpen();
      const handle = this.transactionHandle();
      beginWrite(this.db, this.control, this.tempStore);
      try {
        const result = await this.inTransaction.run(true, () => fn(handle.tx));
        handle.close();
        this.control.commit.run();
        return { value: result, commit: this.commitWritten() };
      } catch (e) {
        handle.close();
        // A failed COMMIT may already have rolled back; ROLLBACK without a transaction would throw.
        if (this.db.inTransaction) this.control.rollback.run();
        throw e;
      }
    });
    // Outside the lock: the next transaction is written while this one's fsync runs.
    await this.wal.whenDurable(commit);
    return value;
  }

  readCaller(query: CallerQuery): Promise<CallerRecords> {
    return this.exclusive(() => readCallerSqlite(this.db, this.sync, query));
  }

  sharedTransaction<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    try {
      this.refuseReentry();
      this.refuseIfClosing();
    } catch (e) {
      return Promise.reject(e);
    }
    return this.commits.enqueue(fn);
  }

  /**
   * One group commit: every queued call runs in the one transaction, each inside its own savepoint so that a
   * call that fails leaves nothing behind while the others go on; then one COMMIT for all. Their results wait
   * for the fsync that makes that COMMIT durable, which runs off the thread: this returns (and the next batch
   * may start) as soon as the COMMIT is written.
   */
  private runBatch(jobs: readonly CommitJob[]): Promise<void> {
    return this.mutex.run(async () => {
      try {
        this.assertOpen();
        beginWrite(this.db, this.control, this.tempStore);
      } catch (e) {
        for (const job of jobs) job.reject(e);
        return;
      }
      const succeeded: { job: CommitJob; value: unknown }[] = [];
      const heads = new BatchAuditHeads();
      let aborted: unknown;
      for (const job of jobs) {
        if (aborted !== undefined) {
          job.reject(aborted);
          continue;
        }
        const handle = this.transactionHandle(heads);
        this.control.savepoint.run();
        try {
          const value = await job.inCallerContext(() =>
            this.inTransaction.run(true, () => job.fn(handle.tx)),
          );
          handle.close();
          this.control.release.run();
          heads.callKept();
          succeeded.push({ job, value });
        } catch (e) {
          handle.close();
          heads.callRolledBack();
          job.reject(e);
          if (this.db.inTransaction) {
            this.control.rollbackToSavepoint.run();
            this.control.release.run();
          } else {
            // SQLite rolled the whole transaction back (a full disk, an I/O error): nothing here commits.
            aborted = new InternalError('the shared transaction was rolled back', {
              cause: e,
            });
          }
        }
      }
      try {
        if (aborted !== undefined) throw aborted;
        this.control.commit.run();
      } catch (e) {
        if (this.db.inTransaction) this.control.rollback.run();
        for (const s of succeeded) s.job.reject(e);
        return;
      }
      this.wal.whenDurable(this.commitWritten()).then(
        () => {
          for (const s of succeeded) s.job.resolve(s.value);
        },
        (e: unknown) => {
          for (const s of succeeded) s.job.reject(e);
        },
      );
    });
  }

  /** A StoreOps bound to the open transaction, refusing use once `close` was called. */
  private transactionHandle(heads?: BatchAuditHeads): { tx: StoreOps; close: () => void } {
    let open = true;
    const tx = new AsyncOps(
      this.sync,
      (op) => {
        if (!open) {
          return Promise.reject(new InternalError('transaction handle used after its transaction ended'));
        }
        // A throw becomes a rejection: callers of an async API expect one.
        return new Promise((resolve) => resolve(op()));
      },
      heads,
    );
    return {
      tx,
      close: () => {
        open = false;
      },
    };
  }

  /** What the connection actually runs with, for the start-up log line and tests. */
  diagnostics(): {
    file: string;
    journalMode: string;
    synchronous: 'off' | 'normal' | 'full' | 'extra';
    /** This connection's own auto-checkpoint threshold in pages (a backstop while the worker checkpoints). */
    walAutocheckpointPages: number;
    /** Where a commit's WAL fsync runs: off the server's thread, before the commit's calls are answered. */
    walFsync: 'threadpool';
    schemaVersion: number;
  } {
    const sync = this.db.pragma('synchronous', { simple: true }) as number;
    return {
      file: this.file,
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: (['off', 'normal', 'full', 'extra'] as const)[sync] ?? 'off',
      walAutocheckpointPages: Number(this.db.pragma('wal_autocheckpoint', { simple: true })),
      walFsync: 'threadpool',
      schemaVersion: schemaVersion(this.db),
    };
  }

  /** How many shared transactions ran and how many calls they held (for metrics and tests). */
  groupCommitStats(): { batches: number; calls: number } {
    return { batches: this.commits.batches, calls: this.commits.calls };
  }

  /**
   * Resolves once every commit written so far is durable; rejects if the store failed closed. Another connection
   * to this file (a worker thread's reader) sees a commit as soon as it is written, before its fsync: such a reader
   * calls this after its read and answers with what it read only when it resolves.
   */
  durableBarrier(): Promise<void> {
    return this.wal.whenDurable(this.wal.lastWritten());
  }

  /**
   * Why the store failed closed (a failed fsync, a -wal removed or replaced), or undefined while it works. Once
   * set it stays: every call fails until the server restarts, so the health service reports NOT_SERVING.
   */
  failedClosed(): InternalError | undefined {
    return this.wal.failure;
  }

  /**
   * Calls `listener` once, when the store fails closed, synchronously and before the failing calls' rejections
   * reach their callers; at once if it already has. Returns a function that removes the listener.
   */
  onFailedClosed(listener: (failure: InternalError) => void): () => void {
    return this.wal.onPoisoned(listener);
  }

  /**
   * Checkpoints the worker thread completed, and why checkpoints went back to this connection (undefined while
   * the worker does them); `idle` resolves when none is running or asked for.
   */
  walCheckpoints(): {
    checkpoints: number;
    fallback: string | undefined;
    idle: () => Promise<void>;
    /** A drill: the worker stops as if it crashed. */
    stopWorker: () => Promise<void>;
  } {
    return {
      checkpoints: this.checkpointer.checkpoints,
      fallback: this.checkpointer.fallback,
      idle: () => this.checkpointer.idle(),
      stopWorker: () => this.checkpointer.stopWorker(),
    };
  }

  /** How many fsyncs of the -wal file ran (each covers every commit written before it started). */
  walFsyncCount(): number {
    return this.wal.fsyncs;
  }

  /**
   * Refuses new calls at once; the calls already made (queued for a shared transaction, waiting for the lock,
   * waiting for their fsync) finish first, then the connection closes.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    await this.commits.idle();
    // Before this connection closes: the last connection to close checkpoints the WAL and deletes it.
    await this.checkpointer.close();
    await this.mutex.run(async () => {
      await this.wal.settled();
      this.closed = true;
      this.wal.close();
      this.db.close();
    });
  }

  /**
   * Runs one operation under the connection lock, after any running transaction, and answers once what it
   * wrote (or, for a read, every commit it could have seen) is durable. Its outcome, a failure included (a
   * "not found" is an answer too), waits the same way. A read inside a durability scope (durability-scope.ts)
   * does not wait: it notes the commit in the scope, whose opener waits for it before answering. A write
   * always waits for its own commit (what follows it may tell others about it).
   */
  private exclusive<T>(op: () => T | Promise<T>): Promise<T> {
    try {
      this.refuseReentry();
      this.refuseIfClosing();
    } catch (e) {
      // A rejection, not a synchronous throw: callers of an async API expect one.
      return Promise.reject(e);
    }
    // Taken now, in the caller's async context: the lock may hand the operation over from another's.
    const scope = currentDurabilityScope();
    return this.mutex
      .run(async () => {
        this.assertOpen();
        const before = this.totalChanges.get() as number;
        let outcome: { ok: true; value: T } | { ok: false; error: unknown };
        try {
          outcome = { ok: true, value: await op() };
        } catch (e) {
          // It may have committed something before failing: its failure waits for that to be durable too.
          outcome = { ok: false, error: e };
        }
        return { outcome, ...this.commitOf(before) };
      })
      .then(async ({ outcome, commit, wrote }) => {
        if (wrote || scope === undefined || !scope.note(this.wal, commit)) {
          await this.wal.whenDurable(commit);
        }
        if (!outcome.ok) throw outcome.error;
        return outcome.value;
      });
  }

  /**
   * The commit an operation must wait for: a new one if it changed rows (each write method is its own
   * transaction), else the last one written, which a read may have seen.
   */
  private commitOf(changesBefore: number): { commit: number; wrote: boolean } {
    const wrote = (this.totalChanges.get() as number) !== changesBefore;
    return { commit: wrote ? this.commitWritten() : this.wal.lastWritten(), wrote };
  }

  /** Numbers a COMMIT just written on this connection (for WalFsync) and counts it towards the next checkpoint. */
  private commitWritten(): number {
    this.checkpointer.committed();
    return this.wal.committed();
  }

  private refuseReentry(): void {
    // Waiting for the lock from inside the transaction that holds it would hang forever; fail loudly instead.
    if (this.inTransaction.getStore()) {
      throw new InternalError(
        'store called from inside its own transaction: use the `tx` handle passed to the callback',
      );
    }
  }

  private refuseIfClosing(): void {
    if (this.closing !== undefined) throw new StoreClosedError('the store is closed');
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError('the store is closed');
    if (this.wal.failure !== undefined) throw this.wal.failure;
  }
}
