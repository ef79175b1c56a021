/** Column encodings shared by the SQLite tables: instants as ms since the epoch, lists as JSON. */

export function toMs(d: Date): number {
  return d.getTime();
}

export function fromMs(ms: number): Date {
  return new Date(ms);
}

export function stringsToJson(list: readonly string[]): string {
  return JSON.stringify(list);
}

export function stringsFromJson(json: string): string[] {
  const parsed: unknown = JSON.parse(json);
  if (!Array.isArray(parsed) || !parsed.every((s) => typeof s === 'string')) {
    throw new Error('stored list is not a JSON array of strings');
  }
  return parsed;
}

export function dersToJson(list: readonly Buffer[]): string {
  return JSON.stringify(list.map((b) => b.toString('base64')));
}

export function dersFromJson(json: string): Buffer[] {
  return stringsFromJson(json).map((s) => Buffer.from(s, 'base64'));
}

/**
 * Column values (src/store/record-columns.ts) as SQLite stores them: instants and booleans as integers, lists as
 * JSON (of base64 for DER).
 */
export function encodeColumns(values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [column, v] of Object.entries(values)) {
    if (v instanceof Date) out[column] = toMs(v);
    else if (typeof v === 'boolean') out[column] = v ? 1 : 0;
    else if (Array.isArray(v)) out[column] = v.every(Buffer.isBuffer) ? dersToJson(v) : stringsToJson(v);
    else out[column] = v;
  }
  return out;
}

/** better-sqlite3 reports constraint failures as SqliteError with a `code` such as SQLITE_CONSTRAINT_UNIQUE. */
export function isConstraintError(e: unknown): boolean {
  return (
    typeof e === 'object' &&
    e !== null &&
    'code' in e &&
    typeof e.code === 'string' &&
    e.code.startsWith('SQLITE_CONSTRAINT')
  );
}

/** How SQLite stores a decoded-row value (src/store/rows.ts): instants and booleans as integers, lists as JSON. */
type Stored<T> = T extends Date
  ? number
  : T extends boolean
    ? number
    : T extends readonly unknown[]
      ? string
      : T;

/** A row as SQLite returns it, for the decoded row R. */
export type SqliteRow<R> = { [K in keyof R]: Stored<R[K]> };

type ColumnKind = 'time' | 'bool' | 'strings' | 'ders';

/** The columns of R that SQLite stores encoded, and how; the others are stored as they are. */
export type RowCodec<R> = { readonly [K in keyof R]?: ColumnKind };

/** The decoder of rows of R: `raw` with every encoded column decoded (null stays null). */
export function rowDecoder<R>(codec: RowCodec<R>): (raw: SqliteRow<R>) => R {
  const columns = Object.entries(codec) as [string, ColumnKind][];
  return (raw) => {
    const out: Record<string, unknown> = { ...raw };
    for (const [column, kind] of columns) {
      const v = out[column];
      if (v === null || v === undefined) continue;
      if (kind === 'time') out[column] = fromMs(v as number);
      else if (kind === 'bool') out[column] = v !== 0;
      else if (kind === 'strings') out[column] = stringsFromJson(v as string);
      else out[column] = dersFromJson(v as string);
    }
    return out as R;
  };
}
