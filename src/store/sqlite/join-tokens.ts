import type Database from 'better-sqlite3';
import type { JoinTokenRecord, NewJoinToken } from '../types';
import { isConstraintError, toMs, rowDecoder, type SqliteRow } from './codec';
import {
  consumableJoinToken,
  joinTokenExists,
  joinTokenSpent,
  newJoinTokenRecord,
  type JoinTokenRow,
} from '../rows';

/** Join tokens on one SQLite connection: only hashes are stored, and each token is consumed at most once. */
export class SqliteJoinTokens {
  private readonly insert: Database.Statement;
  private readonly selectByHash: Database.Statement<[Buffer], SqliteRow<JoinTokenRow>>;
  private readonly markSpent: Database.Statement<[number, string]>;
  private readonly deleteExpired: Database.Statement<[number]>;

  constructor(
    private readonly db: Database.Database,
    private readonly now: () => Date,
  ) {
    this.insert = db.prepare(
      'INSERT INTO join_tokens (id, token_hash, entry_id, spiffe_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.selectByHash = db.prepare(
      'SELECT id, entry_id, spiffe_id, created_at, expires_at, spent_at FROM join_tokens WHERE token_hash = ?',
    );
    // "AND spent_at IS NULL" makes the write itself the single-use check, independent of the read before it.
    this.markSpent = db.prepare('UPDATE join_tokens SET spent_at = ? WHERE id = ? AND spent_at IS NULL');
    this.deleteExpired = db.prepare('DELETE FROM join_tokens WHERE expires_at < ?');
  }

  createJoinToken(token: NewJoinToken): JoinTokenRecord {
    const createdAt = this.now();
    try {
      this.insert.run(
        token.id,
        token.tokenHash,
        token.entryId,
        token.spiffeId,
        toMs(createdAt),
        toMs(token.expiresAt),
      );
    } catch (e) {
      if (isConstraintError(e)) throw joinTokenExists(token.id);
      throw e;
    }
    return newJoinTokenRecord(token, createdAt);
  }

  consumeJoinToken(tokenHash: Buffer, now: Date): JoinTokenRecord {
    // IMMEDIATE takes the write lock before the read, so no other connection can consume between the two.
    return this.db
      .transaction((): JoinTokenRecord => {
        const row = this.selectByHash.get(tokenHash);
        const record = consumableJoinToken(row && decodeJoinToken(row), now);
        const result = this.markSpent.run(toMs(now), record.id);
        if (result.changes !== 1) {
          throw joinTokenSpent(record.id);
        }
        return { ...record, spentAt: now };
      })
      .immediate();
  }

  pruneJoinTokens(before: Date): number {
    return this.deleteExpired.run(toMs(before)).changes;
  }
}

const decodeJoinToken = rowDecoder<JoinTokenRow>({
  created_at: 'time',
  expires_at: 'time',
  spent_at: 'time',
});
