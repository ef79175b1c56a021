import { AlreadyExistsError, TokenExpiredError, TokenInvalidError, TokenSpentError } from '../../errors';
import type { JoinTokenRecord, NewJoinToken } from '../types';
import { isUniqueViolation, type Runner } from './sql';
import { joinTokenFromRow, type JoinTokenRow } from '../rows';

const COLUMNS = 'id, entry_id, spiffe_id, created_at, expires_at, spent_at';

/** Join tokens in PostgreSQL: only hashes are stored, and each token is consumed at most once across servers. */
export class PgJoinTokens {
  constructor(
    private readonly run: Runner,
    private readonly now: () => Date,
  ) {}

  create(token: NewJoinToken): Promise<JoinTokenRecord> {
    return this.run.write(async (sql) => {
      const createdAt = this.now();
      try {
        await sql.query(
          `INSERT INTO join_tokens (id, token_hash, entry_id, spiffe_id, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6)`,
          [token.id, token.tokenHash, token.entryId, token.spiffeId, createdAt, token.expiresAt],
        );
      } catch (e) {
        if (isUniqueViolation(e))
          throw new AlreadyExistsError(`join token ${token.id} (or its hash) already exists`);
        throw e;
      }
      return {
        id: token.id,
        entryId: token.entryId,
        spiffeId: token.spiffeId,
        createdAt,
        expiresAt: new Date(token.expiresAt.getTime()),
      };
    });
  }

  consume(tokenHash: Buffer, now: Date): Promise<JoinTokenRecord> {
    return this.run.write(async (sql) => {
      // FOR UPDATE: a consumer on another server waits here for this transaction, then sees the token spent.
      const { rows } = await sql.query<JoinTokenRow>(
        `SELECT ${COLUMNS} FROM join_tokens WHERE token_hash = $1 FOR UPDATE`,
        [tokenHash],
      );
      const row = rows[0];
      if (!row) throw new TokenInvalidError('join token is not valid');
      const record = joinTokenFromRow(row);
      if (record.spentAt) {
        throw new TokenSpentError(
          `join token ${record.id} was already used at ${record.spentAt.toISOString()}`,
        );
      }
      if (record.expiresAt.getTime() <= now.getTime()) {
        throw new TokenExpiredError(`join token ${record.id} expired at ${record.expiresAt.toISOString()}`);
      }
      // "AND spent_at IS NULL" makes the write itself the single-use check, independent of the read before it.
      const result = await sql.query(
        'UPDATE join_tokens SET spent_at = $1 WHERE id = $2 AND spent_at IS NULL',
        [now, record.id],
      );
      if (result.rowCount !== 1) {
        throw new TokenSpentError(`join token ${record.id} was already used`);
      }
      return { ...record, spentAt: now };
    });
  }

  prune(before: Date): Promise<number> {
    return this.run.write(
      async (sql) =>
        (await sql.query('DELETE FROM join_tokens WHERE expires_at < $1', [before])).rowCount ?? 0,
    );
  }
}
