/**
 * The Store conformance suite that the SQLite store passes, run against the PostgreSQL store on a real, throwaway
 * PostgreSQL cluster (test/support/postgres-cluster.ts). Each test gets a fresh database; each open() is a new
 * PgStore (its own pool) on it, like a second server on the same database.
 */
import { startPostgresCluster, type PostgresCluster } from '../../support/postgres-cluster';
import { runStoreConformance } from '../../store/conformance';
import { postgresHarness } from '../../store/harnesses';

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

  runStoreConformance(
    'postgres',
    postgresHarness(() => cluster, 'conformance'),
  );
});
