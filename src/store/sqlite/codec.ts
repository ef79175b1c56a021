/** Column encodings shared by the SQLite tables: instants as ms since the epoch, lists as JSON. */

export function toMs(d: Date): number {
  return d.getTime();
}

export function fromMs(ms: number): Date {
  return new Date(ms);
}

export function optionalFromMs(ms: number | null): Date | undefined {
  return ms === null ? undefined : new Date(ms);
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
