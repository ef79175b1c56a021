/**
 * The Store conformance suite that the SQLite store passes, run against the PostgreSQL store on a real, throwaway
 * PostgreSQL cluster (test/support/postgres-cluster.ts). Each test gets a fresh database; each open() is a new
 * PgStore (its own pool) on it, like a second server on the same database.
 */
import type { Store } from '../../../src/store/store';
import { PgStore } from '../../../src/store/postgres/pg-store';
import { startPostgresCluster, type PostgresCluster } from '../../support/postgres-cluster';
import { runStoreConformance, type StoreHarness } from '../../store/conformance';

describe('PostgreSQL store', function () {
  let cluster: PostgresCluster;
  before(async function () {
    // Installing Debian's postgresql on a bare machine can take minutes; a present one starts in seconds.
    this.timeout(15 * 60_000);
    cluster = await startPostgresCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  async function pgHarness(): Promise<StoreHarness> {
    const database = await cluster.createDatabase('conformance');
    const opened: Store[] = [];
    return {
      async open(options) {
        const store = await PgStore.open({
          url: cluster.url(database),
          password: cluster.password,
          poolSize: 4,
          ...options,
        });
        opened.push(store);
        return store;
      },
      async destroy() {
        for (const s of opened) await s.close();
        await cluster.dropDatabase(database);
      },
    };
  }

  runStoreConformance('postgres', pgHarness);
});
