import type { QueryResult, QueryResultRow } from 'pg';
import type { RowWrite } from '../sql-text';

/** What the table modules need of a connection: a pool, a pool client, or a transaction's client. */
export interface Sql {
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
}

/**
 * How a table module runs its work. `read` is for reads that need no consistency between statements;
 * `snapshot` for several reads that must see one state; `write` for anything that changes state: it runs in one
 * transaction that holds the store's write lock, so writers across every server on the database run one at a
 * time, as on SQLite (see PgStore). Inside Store.transaction each of them is a savepoint of that transaction.
 */
export interface Runner {
  read<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  snapshot<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  write<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
}

function pgCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string'
    ? e.code
    : undefined;
}

/** PostgreSQL's unique_violation (23505), optionally of one named constraint. */
export function isUniqueViolation(e: unknown, constraint?: string): boolean {
  if (pgCode(e) !== '23505') return false;
  return constraint === undefined || (e as { constraint?: string }).constraint === constraint;
}

/** PostgreSQL's foreign_key_violation (23503). */
export function isForeignKeyViolation(e: unknown): boolean {
  return pgCode(e) === '23503';
}

/** Runs `write` with PostgreSQL's $n placeholders, bound from its column values in order. */
export function writeRow(sql: Sql, write: RowWrite): Promise<QueryResult> {
  return sql.query(
    write.text((_column, position) => `$${position}`),
    Object.values(write.columns),
  );
}
