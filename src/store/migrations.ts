import { StoreSchemaTooNewError } from '../errors';

/**
 * One schema migration. A store applies its list in order, each exactly once; a shipped migration is never
 * edited, a change to the schema is a new one at the end.
 */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/** The version a database reaches once every migration of the list is applied. */
export function latestVersion(migrations: readonly Migration[]): number {
  return migrations[migrations.length - 1]?.version ?? 0;
}

/** The ledger of applied migrations, in the store's type for an instant. */
export function schemaMigrationsTable(instantType: string): string {
  return `CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY,
      description TEXT NOT NULL,
      applied_at ${instantType} NOT NULL
    )`;
}

/**
 * The migrations a database at version `current` still needs, in order.
 * @throws StoreSchemaTooNewError when a newer Lanyard wrote the database: running older code on it could
 *   silently drop what the newer schema means.
 */
export function pendingMigrations(migrations: readonly Migration[], current: number): Migration[] {
  const latest = latestVersion(migrations);
  if (current > latest) {
    throw new StoreSchemaTooNewError(
      `database schema version ${current} is newer than this Lanyard supports (${latest}): upgrade Lanyard`,
    );
  }
  return migrations.filter((m) => m.version > current);
}
