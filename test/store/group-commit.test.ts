/** Group commit on the SQLite store (the same suite runs on PostgreSQL: test/integration/postgres-store/). */
import { runGroupCommitConformance } from './group-commit-conformance';
import { sqliteHarness } from './harnesses';

runGroupCommitConformance('sqlite', sqliteHarness);
