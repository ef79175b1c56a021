/**
 * Audit chains in PostgreSQL: the same rows as the SQLite store (src/store/sqlite/audit.ts). Appends read the head
 * and insert inside one write (under the store's write lock), so concurrent writers on every server serialise and
 * no chain ever forks.
 */
import { chainRecord, emptyHead, type ChainHead } from '../../audit/chain';
import type { AuditCheckpoint } from '../../audit/checkpoint';
import {
  type AuditChainInfo,
  type AuditCheckpointCursor,
  type AuditPage,
  type AuditQuery,
  type AuditStore,
  type ServerKeyHistory,
  type StoredAuditRecord,
} from '../../audit/log';
import { type AuditEvent, type AuditRecord } from '../../audit/record';
import { AuditChainBrokenError } from '../../errors';
import type { BatchAuditHeads } from '../audit-batch';
import type { Runner, Sql } from './sql';
import {
  AUDIT_RECORD_COLUMNS,
  auditChainFromRow,
  auditCheckpointFromRow,
  auditPage,
  auditQueryPlan,
  auditReadLimit,
  auditRecordFromRow,
  auditRecordValues,
  type AuditCheckpointRow,
  type AuditRecordRow,
} from '../rows';

export class PgAudit implements AuditStore {
  /**
   * @param heads on a call of a group commit: the batch's chain heads, so that the head is read once per batch
   *   (in its transaction, under the write lock) rather than once per record
   */
  constructor(
    private readonly run: Runner,
    private readonly heads?: BatchAuditHeads,
  ) {}

  append(chain: string, event: AuditEvent, now: Date): Promise<AuditRecord> {
    const heads = this.heads;
    return this.run.write(async (sql) => {
      const { record, body } = chainRecord(heads?.head(chain) ?? (await head(sql, chain)), event, now);
      await insert(sql, record, body);
      heads?.moved({ chain, seq: record.seq, hash: record.hash });
      return record;
    });
  }

  appendRecords(
    chain: string,
    records: readonly AuditRecord[],
    checkpoints: readonly AuditCheckpoint[],
  ): Promise<number> {
    return this.run.write(async (sql) => {
      const stored = await head(sql, chain);
      let added = 0;
      let prev = stored;
      for (const r of records) {
        if (r.chain !== chain) throw broken(`record ${r.seq} is of chain "${r.chain}", not "${chain}"`);
        if (r.seq <= stored.seq) {
          const { rows } = await sql.query<{ hash: string }>(
            'SELECT hash FROM audit_records WHERE chain = $1 AND seq = $2',
            [chain, r.seq],
          );
          if (rows[0]?.hash !== r.hash) throw broken(`record ${r.seq} differs from the one stored before`);
          continue;
        }
        if (r.seq !== prev.seq + 1 || r.prevHash !== prev.hash) {
          throw broken(`record ${r.seq} does not follow the stored head ${prev.seq}`);
        }
        await insert(sql, r);
        prev = { chain, seq: r.seq, hash: r.hash };
        added++;
      }
      for (const c of checkpoints) await addCheckpoint(sql, c);
      return added;
    });
  }

  head(chain: string): Promise<ChainHead> {
    return this.run.read((sql) => head(sql, chain));
  }

  addCheckpoint(c: AuditCheckpoint): Promise<void> {
    return this.run.write((sql) => addCheckpoint(sql, c));
  }

  checkpoints(chain: string): Promise<AuditCheckpoint[]> {
    return this.run.read(async (sql) => {
      const { rows } = await sql.query<AuditCheckpointRow>(
        'SELECT * FROM audit_checkpoints WHERE chain = $1 ORDER BY seq, time',
        [chain],
      );
      return rows.map(auditCheckpointFromRow);
    });
  }

  readCheckpoints(
    chain: string,
    after: AuditCheckpointCursor | undefined,
    limit: number,
  ): Promise<AuditCheckpoint[]> {
    return this.run.read(async (sql) => {
      // The primary key (chain, seq, time) orders the page and finds where the last one ended.
      const { rows } =
        after === undefined
          ? await sql.query<AuditCheckpointRow>(
              'SELECT * FROM audit_checkpoints WHERE chain = $1 ORDER BY seq, time LIMIT $2',
              [chain, auditReadLimit(limit)],
            )
          : await sql.query<AuditCheckpointRow>(
              'SELECT * FROM audit_checkpoints WHERE chain = $1 AND (seq, time) > ($2, $3) ORDER BY seq, time LIMIT $4',
              [chain, after.seq, after.time, auditReadLimit(limit)],
            );
      return rows.map(auditCheckpointFromRow);
    });
  }

  latestCheckpoint(chain: string): Promise<AuditCheckpoint | undefined> {
    return this.run.read(async (sql) => {
      const { rows } = await sql.query<AuditCheckpointRow>(
        'SELECT * FROM audit_checkpoints WHERE chain = $1 ORDER BY seq DESC, time DESC LIMIT 1',
        [chain],
      );
      return rows[0] === undefined ? undefined : auditCheckpointFromRow(rows[0]);
    });
  }

  readRecords(
    chain: string,
    afterPosition: number,
    limit: number,
  ): Promise<{ records: AuditRecord[]; nextPosition: number }> {
    return this.run.read(async (sql) => {
      const { rows } = await sql.query<AuditRecordRow>(
        'SELECT chain, seq, time, body, hash FROM audit_records WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3',
        [chain, afterPosition, auditReadLimit(limit)],
      );
      return {
        records: rows.map(auditRecordFromRow),
        nextPosition: rows[rows.length - 1]?.seq ?? afterPosition,
      };
    });
  }

  readStoredRecords(
    chain: string,
    afterPosition: number,
    limit: number,
  ): Promise<{ rows: StoredAuditRecord[]; nextPosition: number }> {
    return this.run.read(async (sql) => {
      const { rows } = await sql.query<{ seq: number; body: string; hash: string }>(
        'SELECT seq, body, hash FROM audit_records WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3',
        [chain, afterPosition, auditReadLimit(limit)],
      );
      const stored = rows.map((r) => ({ position: Number(r.seq), body: r.body, hash: r.hash }));
      return { rows: stored, nextPosition: stored[stored.length - 1]?.position ?? afterPosition };
    });
  }

  query(q: AuditQuery): Promise<AuditPage> {
    let plan: ReturnType<typeof auditQueryPlan>;
    try {
      plan = auditQueryPlan(q);
    } catch (e) {
      return Promise.reject(e);
    }
    const { column, size, after } = plan;
    const params: unknown[] = [q.value];
    const where = [`${column} = $1`];
    if (q.chain !== undefined) {
      params.push(q.chain);
      where.push(`chain = $${params.length}`);
    }
    if (after !== undefined) {
      params.push(after[0], after[1], after[2]);
      const n = params.length;
      where.push(`(time, chain, seq) > ($${n - 2}, $${n - 1}, $${n})`);
    }
    params.push(size + 1);
    const text = `SELECT chain, seq, time, body, hash FROM audit_records WHERE ${where.join(' AND ')}
      ORDER BY time, chain, seq LIMIT $${params.length}`;
    return this.run.read(async (sql) =>
      auditPage((await sql.query<AuditRecordRow>(text, params)).rows, size),
    );
  }

  chains(): Promise<AuditChainInfo[]> {
    return this.run.read(async (sql) => {
      const { rows } = await sql.query<{ chain: string; head: number; jwk: string | null }>(
        `SELECT c.chain AS chain, COALESCE(MAX(r.seq), 0) AS head, MAX(k.public_jwk) AS jwk
         FROM (SELECT DISTINCT chain FROM audit_records UNION SELECT chain FROM audit_chain_keys) c
         LEFT JOIN audit_records r ON r.chain = c.chain
         LEFT JOIN audit_chain_keys k ON k.chain = c.chain
         GROUP BY c.chain ORDER BY c.chain`,
      );
      return rows.map(auditChainFromRow);
    });
  }

  pinChainKey(chain: string, publicJwk: string, now: Date): Promise<string> {
    return this.run.write(async (sql) => {
      await sql.query(
        'INSERT INTO audit_chain_keys (chain, public_jwk, pinned_at) VALUES ($1, $2, $3) ON CONFLICT (chain) DO NOTHING',
        [chain, publicJwk, now],
      );
      const { rows } = await sql.query<{ public_jwk: string }>(
        'SELECT public_jwk FROM audit_chain_keys WHERE chain = $1',
        [chain],
      );
      const pinned = rows[0]?.public_jwk;
      if (pinned === undefined) throw new Error(`the key pinned for ${chain} vanished`);
      return pinned;
    });
  }

  putServerKeyHistory(serverId: string, introductionsJson: string, now: Date): Promise<void> {
    return this.run.write(async (sql) => {
      await sql.query(
        `INSERT INTO audit_server_keys (server_id, introductions_json, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (server_id) DO UPDATE SET introductions_json = EXCLUDED.introductions_json, updated_at = EXCLUDED.updated_at`,
        [serverId, introductionsJson, now],
      );
    });
  }

  serverKeyHistories(): Promise<ServerKeyHistory[]> {
    return this.run.read(async (sql) => {
      const { rows } = await sql.query<{ server_id: string; introductions_json: string }>(
        'SELECT server_id, introductions_json FROM audit_server_keys ORDER BY server_id',
      );
      return rows.map((r) => ({ serverId: r.server_id, introductionsJson: r.introductions_json }));
    });
  }
}

async function head(sql: Sql, chain: string): Promise<ChainHead> {
  const { rows } = await sql.query<{ seq: number; hash: string }>(
    'SELECT seq, hash FROM audit_records WHERE chain = $1 ORDER BY seq DESC LIMIT 1',
    [chain],
  );
  const row = rows[0];
  return row === undefined ? emptyHead(chain) : { chain, seq: row.seq, hash: row.hash };
}

async function addCheckpoint(sql: Sql, c: AuditCheckpoint): Promise<void> {
  await sql.query(
    `INSERT INTO audit_checkpoints (chain, seq, head_hash, time, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT DO NOTHING`,
    [c.chain, c.seq, c.headHash, c.time, c.keyId, c.signature],
  );
}

async function insert(sql: Sql, r: AuditRecord, body?: string): Promise<void> {
  await sql.query(
    `INSERT INTO audit_records (${AUDIT_RECORD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    auditRecordValues(r, body),
  );
}

function broken(message: string): AuditChainBrokenError {
  return new AuditChainBrokenError(message);
}
