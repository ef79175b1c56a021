import type { JoinTokenRecord, NewJoinToken } from '../types';
import { isUniqueViolation, type Runner } from './sql';
import {
  consumableJoinToken,
  joinTokenExists,
  joinTokenSpent,
  newJoinTokenRecord,
  type JoinTokenRow,
} from '../rows';

const COLUMNS = 'id, entry_id, spiffe_id, created_at, expires_at, spent_at';

/** Join tokens in PostgreSQL: only hashes are stored, and each token is consumed at most once across servers. */
export class PgJoinTokens {
  constructor(
    private readonly run: Runner,
    private readonly now: () => Date,
  ) {}

  createJoinToken(token: NewJoinToken): Promise<JoinTokenRecord> {
    return this.run.write(async (sql) => {
      const createdAt = this.now();
      try {
        await sql.query(
          `INSERT INTO join_tokens (id, token_hash, entry_id, spiffe_id, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6)`,
          [token.id, token.tokenHash, token.entryId, token.spiffeId, createdAt, token.expiresAt],
        );
      } catch (e) {
        if (isUniqueViolation(e)) throw joinTokenExists(token.id);
        throw e;
      }
      return newJoinTokenRecord(token, createdAt);
    });
  }

  consumeJoinToken(tokenHash: Buffer, now: Date): Promise<JoinTokenRecord> {
    return this.run.write(async (sql) => {
      // FOR UPDATE: a consumer on another server waits here for this transaction, then sees the token spent.
      const { rows } = await sql.query<JoinTokenRow>(
        `SELECT ${COLUMNS} FROM join_tokens WHERE token_hash = $1 FOR UPDATE`,
        [tokenHash],
      );
      const row = rows[0];
      const record = consumableJoinToken(row, now);
      // "AND spent_at IS NULL" makes the write itself the single-use check, independent of the read before it.
      const result = await sql.query(
        'UPDATE join_tokens SET spent_at = $1 WHERE id = $2 AND spent_at IS NULL',
        [now, record.id],
      );
      if (result.rowCount !== 1) {
        throw joinTokenSpent(record.id);
      }
      return { ...record, spentAt: now };
    });
  }

  pruneJoinTokens(before: Date): Promise<number> {
    return this.run.write(
      async (sql) =>
        (await sql.query('DELETE FROM join_tokens WHERE expires_at < $1', [before])).rowCount ?? 0,
    );
  }
}
