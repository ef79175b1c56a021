/**
 * Stores opened per test, closed after it: a fresh place (a SQLite file in a temp dir, a PostgreSQL database) for
 * each test, every store the test opened on it closed, then the place removed. Call inside a `describe`: the hooks
 * are that block's. `beforeClose` runs first, in the order given: whatever would keep a close() from finishing (a
 * held fsync) is let go there, before any store is closed.
 */
import * as path from 'node:path';
import { PgStore, type PgStoreOptions } from '../../src/store/postgres/pg-store';
import { SqliteStore, type SqliteStoreOptions } from '../../src/store/sqlite/sqlite-store';
import type { PostgresCluster } from './postgres-cluster';
import { removeDir, tempDir } from './tmp';

interface Closable {
  close(): Promise<void>;
}

interface PerTest<S extends Closable, P> {
  /** This test's place; set in beforeEach. */
  place(): P;
  /** Keeps `store` to close after the test. */
  track(store: S): S;
  /** Runs after each test, before its stores close. */
  beforeClose(fn: () => void | Promise<void>): void;
}

function storesPerTest<S extends Closable, P>(options: {
  create: () => P | Promise<P>;
  remove: (place: P) => void | Promise<void>;
  /** A store that failed closed (a failed fsync) may refuse to close cleanly; the test already judged it. */
  ignoreCloseErrors: boolean;
}): PerTest<S, P> {
  const stores: S[] = [];
  const hooks: (() => void | Promise<void>)[] = [];
  let current: { place: P } | undefined;
  beforeEach(async () => {
    current = { place: await options.create() };
  });
  afterEach(async () => {
    for (const h of hooks) await h();
    for (const s of stores.splice(0)) {
      if (options.ignoreCloseErrors) await s.close().catch(() => undefined);
      else await s.close();
    }
    if (current !== undefined) await options.remove(current.place);
    current = undefined;
  });
  return {
    place: () => {
      if (current === undefined) throw new Error('no store place outside a test');
      return current.place;
    },
    track: (store) => {
      stores.push(store);
      return store;
    },
    beforeClose: (fn) => {
      hooks.push(fn);
    },
  };
}

export interface SqliteFilePerTest {
  /** This test's database file (`lanyard.db` in a fresh temp dir). */
  file(): string;
  dir(): string;
  /** Opens a store on this test's file, closed after the test. */
  open(options?: Omit<SqliteStoreOptions, 'file'>): Promise<SqliteStore>;
  beforeClose(fn: () => void | Promise<void>): void;
}

/** A SQLite file per test in a temp dir named after `name`; every store opened on it closed, the dir removed. */
export function useSqliteFilePerTest(name: string): SqliteFilePerTest {
  const t = storesPerTest<SqliteStore, string>({
    create: () => tempDir(name),
    remove: (dir) => removeDir(dir),
    ignoreCloseErrors: true,
  });
  const file = (): string => path.join(t.place(), 'lanyard.db');
  return {
    file,
    dir: () => t.place(),
    open: async (options = {}) => t.track(await SqliteStore.open({ ...options, file: file() })),
    beforeClose: t.beforeClose,
  };
}

export interface PgDatabasePerTest {
  /** This test's database name. */
  database(): string;
  /** Opens a store on this test's database, closed after the test. */
  open(options?: Omit<PgStoreOptions, 'url' | 'password'>): Promise<PgStore>;
  beforeClose(fn: () => void | Promise<void>): void;
}

/** A PostgreSQL database per test (named after `name`); every store opened on it closed, then it is dropped. */
export function usePgDatabasePerTest(cluster: () => PostgresCluster, name: string): PgDatabasePerTest {
  const t = storesPerTest<PgStore, string>({
    create: () => cluster().createDatabase(name),
    remove: (database) => cluster().dropDatabase(database),
    ignoreCloseErrors: false,
  });
  return {
    database: () => t.place(),
    open: async (options = {}) =>
      t.track(
        await PgStore.open({
          ...options,
          url: cluster().url(t.place()),
          password: cluster().password,
        }),
      ),
    beforeClose: t.beforeClose,
  };
}
