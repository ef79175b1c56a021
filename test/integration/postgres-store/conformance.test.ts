/**
 * The Store conformance suite that the SQLite store passes, run against the PostgreSQL store on a real, throwaway
 * PostgreSQL cluster (test/support/postgres-cluster.ts). Each test gets a fresh database; each open() is a new
 * PgStore (its own pool) on it, like a second server on the same database.
 */
import { usePostgresCluster } from '../../support/postgres-cluster';
import { runStoreConformance } from '../../store/conformance';
import { postgresHarness } from '../../store/harnesses';

describe('PostgreSQL store', function () {
  const cluster = usePostgresCluster();

  runStoreConformance('postgres', postgresHarness(cluster, 'conformance'));
});
