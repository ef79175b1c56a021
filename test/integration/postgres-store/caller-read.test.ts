/** Store.readCaller's contract (test/store/caller-read-conformance.ts) on a real, throwaway PostgreSQL cluster. */
import { usePostgresCluster } from '../../support/postgres-cluster';
import { runCallerReadConformance } from '../../store/caller-read-conformance';
import { postgresHarness } from '../../store/harnesses';

describe('PostgreSQL store', function () {
  const cluster = usePostgresCluster();

  runCallerReadConformance('postgres', postgresHarness(cluster, 'callerread'));
});
