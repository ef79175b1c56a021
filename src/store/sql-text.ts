/**
 * The statements both stores write alike from a row's column values (src/store/record-columns.ts): each store
 * only says how its dialect writes a placeholder and binds the values (postgres/sql.ts writeRow, SQLite's
 * StatementCache.writeRow).
 */

/** How a dialect writes the placeholder of a statement's value for `column`, the `position`-th (from 1). */
export type Placeholder = (column: string, position: number) => string;

/** A statement that writes one row: its text for a dialect's placeholders, and the column values it binds. */
export interface RowWrite {
  readonly columns: Record<string, unknown>;
  text(placeholder: Placeholder): string;
}

/** `INSERT INTO table (a, b, ...) VALUES (...)` of `columns`, in their order. */
export function insertRow(table: string, columns: Record<string, unknown>): RowWrite {
  const names = Object.keys(columns);
  return {
    columns,
    text: (p) =>
      `INSERT INTO ${table} (${names.join(', ')}) VALUES (${names.map((c, i) => p(c, i + 1)).join(', ')})`,
  };
}

/**
 * `UPDATE table SET ... WHERE key = ...`: the row with the `key` of `columns` gets the others (a column that did
 * not change is written with the value it has).
 */
export function updateRow(table: string, key: string, columns: Record<string, unknown>): RowWrite {
  const names = Object.keys(columns);
  return {
    columns,
    text: (p) => {
      const at = (c: string): string => p(c, names.indexOf(c) + 1);
      const set = names.filter((c) => c !== key).map((c) => `${c} = ${at(c)}`);
      return `UPDATE ${table} SET ${set.join(', ')} WHERE ${key} = ${at(key)}`;
    },
  };
}

/** insertRow, but a row with the same `key` has its other columns replaced. */
export function upsertRow(table: string, key: string, columns: Record<string, unknown>): RowWrite {
  const insert = insertRow(table, columns);
  const set = Object.keys(columns)
    .filter((c) => c !== key)
    .map((c) => `${c} = excluded.${c}`);
  return { columns, text: (p) => `${insert.text(p)} ON CONFLICT (${key}) DO UPDATE SET ${set.join(', ')}` };
}
