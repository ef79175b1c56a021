import type Database from 'better-sqlite3';
import type { RowWrite } from '../sql-text';
import { encodeColumns } from './codec';

/**
 * Statements prepared once per connection, by their SQL text. Compiling a statement costs more than running a
 * point lookup, and some lookups run on every authenticated call (the caller's session and revocations). Only
 * for fixed SQL: a statement's mode (pluck, raw) is part of what the caller keeps.
 */
export class StatementCache {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  get(sql: string, configure?: (s: Database.Statement) => Database.Statement): Database.Statement {
    let s = this.statements.get(sql);
    if (s === undefined) {
      s = this.db.prepare(sql);
      if (configure !== undefined) s = configure(s);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** Runs `write` with named parameters (@column), bound from its column values as SQLite stores them. */
  writeRow(write: RowWrite): Database.RunResult {
    return this.get(write.text((column) => `@${column}`)).run(encodeColumns(write.columns));
  }
}
