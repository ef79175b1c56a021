/**
 * SQL text both stores build alike from a row's column values (src/store/record-columns.ts); only how a dialect
 * writes a placeholder differs.
 */

/** How a dialect writes the placeholder of a statement's value for `column`, the `position`-th (from 1). */
export type Placeholder = (column: string, position: number) => string;

/** `INSERT INTO table (a, b, ...) VALUES (...)` for the columns of `values`, in their order. */
export function insertStatement(
  table: string,
  values: Record<string, unknown>,
  placeholder: Placeholder,
): string {
  const columns = Object.keys(values);
  return `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns
    .map((c, i) => placeholder(c, i + 1))
    .join(', ')})`;
}

/**
 * `UPDATE table SET ... WHERE key = ...` for the columns of `values`: the row with their `key` gets the others
 * (a column that did not change is written with the value it has).
 */
export function updateStatement(
  table: string,
  key: string,
  values: Record<string, unknown>,
  placeholder: Placeholder,
): string {
  const columns = Object.keys(values);
  const at = (c: string): string => placeholder(c, columns.indexOf(c) + 1);
  return `UPDATE ${table} SET ${columns
    .filter((c) => c !== key)
    .map((c) => `${c} = ${at(c)}`)
    .join(', ')} WHERE ${key} = ${at(key)}`;
}

/** insertStatement, but a row with the same `key` has its other columns replaced by `values`. */
export function upsertStatement(
  table: string,
  key: string,
  values: Record<string, unknown>,
  placeholder: Placeholder,
): string {
  const replaced = Object.keys(values).filter((c) => c !== key);
  return `${insertStatement(table, values, placeholder)} ON CONFLICT (${key}) DO UPDATE SET ${replaced
    .map((c) => `${c} = excluded.${c}`)
    .join(', ')}`;
}
