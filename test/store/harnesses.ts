/**
 * The StoreHarness of each store, for the suites every store must pass (./conformance.ts,
 * ./group-commit-conformance.ts). Each open() is a new connection to the same data: a restart, or a second server.
 */
import * as path from 'node:path';
import { PgStore } from '../../src/store/postgres/pg-store';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import type { Store } from '../../src/store/store';
import type { PostgresCluster } from '../support/postgres-cluster';
import { removeDir, tempDir } from '../support/tmp';
import type { StoreHarness } from './conformance';

/** One SQLite file in a temp dir. */
export function sqliteHarness(): Promise<StoreHarness> {
  const dir = tempDir('store');
  const opened: Store[] = [];
  return Promise.resolve({
    async open(options) {
      const store = await SqliteStore.open({ file: path.join(dir, 'lanyard.db'), ...options });
      opened.push(store);
      return store;
    },
    async destroy() {
      for (const s of opened) await s.close();
      removeDir(dir);
    },
  });
}

/** A fresh database on `cluster()` (started by the suite's before hook); each open() is its own pool. */
export function postgresHarness(cluster: () => PostgresCluster, prefix: string): () => Promise<StoreHarness> {
  return async () => {
    const c = cluster();
    const database = await c.createDatabase(prefix);
    const opened: Store[] = [];
    return {
      async open(options) {
        const store = await PgStore.open({
          url: c.url(database),
          password: c.password,
          poolSize: 4,
          ...options,
        });
        opened.push(store);
        return store;
      },
      async destroy() {
        for (const s of opened) await s.close();
        await c.dropDatabase(database);
      },
    };
  };
}
