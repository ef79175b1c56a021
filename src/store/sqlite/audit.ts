/**
 * Audit chains in SQLite (migration 4). Each record is one row: the canonical body exactly as hashed (so a
 * verifier recomputes the hash from what is stored), its hash, and copies of the query keys for the indexes.
 * `seq` in the row is the storage position; the body carries the record's own seq, which is what verification
 * trusts. Appends read the head and insert inside one IMMEDIATE transaction, so concurrent writers (also other
 * processes on the same file) serialise and the chain never forks; the calls of one group commit read each head
 * once for the whole batch (audit-batch.ts).
 */
import type Database from 'better-sqlite3';
import { chainRecord, emptyHead, type ChainHead } from '../../audit/chain';
import type { AuditCheckpoint } from '../../audit/checkpoint';
import {
  type AuditChainInfo,
  type AuditCheckpointCursor,
  type AuditPage,
  type AuditQuery,
  type ServerKeyHistory,
  type StoredAuditRecord,
} from '../../audit/log';
import { type AuditEvent, type AuditRecord } from '../../audit/record';
import { AuditChainBrokenError, AuditError } from '../../errors';
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
import type { BatchAuditHeads } from '../audit-batch';

export class SqliteAudit {
  // Prepared once: appends are the hot path (every audited call), and preparing costs more than the insert.
  private readonly headStmt: Database.Statement;
  private readonly insertStmt: Database.Statement;
  private readonly storedHashStmt: Database.Statement;
  private readonly storedStmt: Database.Statement;

  constructor(private readonly db: Database.Database) {
    this.headStmt = db.prepare(
      'SELECT seq, hash FROM audit_records WHERE chain = ? ORDER BY seq DESC LIMIT 1',
    );
    this.insertStmt = db.prepare(
      `INSERT INTO audit_records (${AUDIT_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.storedHashStmt = db.prepare('SELECT hash FROM audit_records WHERE chain = ? AND seq = ?');
    // Rows as arrays: an export reads millions, and only these three columns.
    this.storedStmt = db
      .prepare('SELECT seq, body, hash FROM audit_records WHERE chain = ? AND seq > ? ORDER BY seq LIMIT ?')
      .raw(true);
  }

  append(chain: string, event: AuditEvent, now: Date): AuditRecord {
    // Inside a transaction the head read and the one INSERT need no savepoint of their own: a failing INSERT
    // undoes only itself, and the transaction's write lock keeps the head where it was read.
    if (this.db.inTransaction) return this.appendAfter(this.head(chain), event, now);
    return this.db.transaction(() => this.appendAfter(this.head(chain), event, now)).immediate();
  }

  /**
   * An append by a call of a group-commit batch: the chain's head is read once per batch (`heads` carries it
   * from one call to the next), not once per record. Runs inside the batch's transaction only.
   */
  appendInBatch(chain: string, event: AuditEvent, now: Date, heads: BatchAuditHeads): AuditRecord {
    const record = this.appendAfter(heads.head(chain) ?? this.head(chain), event, now);
    heads.moved({ chain, seq: record.seq, hash: record.hash });
    return record;
  }

  private appendAfter(head: ChainHead, event: AuditEvent, now: Date): AuditRecord {
    const { record, body } = chainRecord(head, event, now);
    this.insertStmt.run(...auditRecordValues(record, body));
    return record;
  }

  appendRecords(
    chain: string,
    records: readonly AuditRecord[],
    checkpoints: readonly AuditCheckpoint[],
  ): number {
    const run = this.db.transaction(() => {
      const head = this.head(chain);
      let added = 0;
      let prev = head;
      for (const r of records) {
        if (r.chain !== chain) throw broken(`record ${r.seq} is of chain "${r.chain}", not "${chain}"`);
        if (r.seq <= head.seq) {
          const stored = this.storedHashStmt.get(chain, r.seq) as { hash: string } | undefined;
          if (stored?.hash !== r.hash) throw broken(`record ${r.seq} differs from the one stored before`);
          continue;
        }
        if (r.seq !== prev.seq + 1 || r.prevHash !== prev.hash) {
          throw broken(`record ${r.seq} does not follow the stored head ${prev.seq}`);
        }
        this.insert(r);
        prev = { chain, seq: r.seq, hash: r.hash };
        added++;
      }
      for (const c of checkpoints) this.addCheckpoint(c);
      return added;
    });
    return this.inTransaction(run);
  }

  head(chain: string): ChainHead {
    const row = this.headStmt.get(chain) as { seq: number; hash: string } | undefined;
    return row === undefined ? emptyHead(chain) : { chain, seq: row.seq, hash: row.hash };
  }

  addCheckpoint(c: AuditCheckpoint): void {
    this.db
      .prepare(
        `INSERT OR IGNORE INTO audit_checkpoints (chain, seq, head_hash, time, key_id, signature)
         VALUES (?, ?, ?, ?, ?, ?)`,
      )
      .run(c.chain, c.seq, c.headHash, c.time, c.keyId, c.signature);
  }

  checkpoints(chain: string): AuditCheckpoint[] {
    return (
      this.db
        .prepare('SELECT * FROM audit_checkpoints WHERE chain = ? ORDER BY seq, time')
        .all(chain) as AuditCheckpointRow[]
    ).map(auditCheckpointFromRow);
  }

  readCheckpoints(chain: string, after: AuditCheckpointCursor | undefined, limit: number): AuditCheckpoint[] {
    // The primary key (chain, seq, time) orders the page and finds where the last one ended.
    const rows =
      after === undefined
        ? this.db
            .prepare('SELECT * FROM audit_checkpoints WHERE chain = ? ORDER BY seq, time LIMIT ?')
            .all(chain, auditReadLimit(limit))
        : this.db
            .prepare(
              'SELECT * FROM audit_checkpoints WHERE chain = ? AND (seq, time) > (?, ?) ORDER BY seq, time LIMIT ?',
            )
            .all(chain, after.seq, after.time, auditReadLimit(limit));
    return (rows as AuditCheckpointRow[]).map(auditCheckpointFromRow);
  }

  latestCheckpoint(chain: string): AuditCheckpoint | undefined {
    const row = this.db
      .prepare('SELECT * FROM audit_checkpoints WHERE chain = ? ORDER BY seq DESC, time DESC LIMIT 1')
      .get(chain) as AuditCheckpointRow | undefined;
    return row === undefined ? undefined : auditCheckpointFromRow(row);
  }

  readRecords(
    chain: string,
    afterPosition: number,
    limit: number,
  ): { records: AuditRecord[]; nextPosition: number } {
    const rows = this.db
      .prepare('SELECT * FROM audit_records WHERE chain = ? AND seq > ? ORDER BY seq LIMIT ?')
      .all(chain, afterPosition, auditReadLimit(limit)) as AuditRecordRow[];
    return {
      records: rows.map(auditRecordFromRow),
      nextPosition: rows[rows.length - 1]?.seq ?? afterPosition,
    };
  }

  readStoredRecords(
    chain: string,
    afterPosition: number,
    limit: number,
  ): { rows: StoredAuditRecord[]; nextPosition: number } {
    const raw = this.storedStmt.all(chain, afterPosition, auditReadLimit(limit)) as [
      number,
      string,
      string,
    ][];
    const rows = raw.map(([position, body, hash]) => ({ position, body, hash }));
    return { rows, nextPosition: rows[rows.length - 1]?.position ?? afterPosition };
  }

  query(q: AuditQuery): AuditPage {
    const { column, size, after } = auditQueryPlan(q);
    const where = [`${column} = @value`];
    if (q.chain !== undefined) where.push('chain = @chain');
    if (after !== undefined) where.push('(time, chain, seq) > (@t, @c, @s)');
    const rows = this.db
      .prepare(
        `SELECT * FROM audit_records WHERE ${where.join(' AND ')} ORDER BY time, chain, seq LIMIT @limit`,
      )
      .all({
        value: q.value,
        ...(q.chain !== undefined && { chain: q.chain }),
        ...(after !== undefined && { t: after[0], c: after[1], s: after[2] }),
        limit: size + 1,
      }) as AuditRecordRow[];
    return auditPage(rows, size);
  }

  chains(): AuditChainInfo[] {
    const rows = this.db
      .prepare(
        `SELECT c.chain AS chain, COALESCE(MAX(r.seq), 0) AS head, k.public_jwk AS jwk
         FROM (SELECT DISTINCT chain FROM audit_records UNION SELECT chain FROM audit_chain_keys) c
         LEFT JOIN audit_records r ON r.chain = c.chain
         LEFT JOIN audit_chain_keys k ON k.chain = c.chain
         GROUP BY c.chain ORDER BY c.chain`,
      )
      .all() as { chain: string; head: number; jwk: string | null }[];
    return rows.map(auditChainFromRow);
  }

  pinChainKey(chain: string, publicJwk: string, now: Date): string {
    const run = this.db.transaction(() => {
      this.db
        .prepare('INSERT OR IGNORE INTO audit_chain_keys (chain, public_jwk, pinned_at) VALUES (?, ?, ?)')
        .run(chain, publicJwk, now.getTime());
      return (
        this.db.prepare('SELECT public_jwk FROM audit_chain_keys WHERE chain = ?').get(chain) as {
          public_jwk: string;
        }
      ).public_jwk;
    });
    return this.inTransaction(run);
  }

  putServerKeyHistory(serverId: string, introductionsJson: string, now: Date): void {
    const run = this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO audit_server_keys (server_id, introductions_json, updated_at) VALUES (?, ?, ?)
           ON CONFLICT (server_id) DO UPDATE SET introductions_json = excluded.introductions_json, updated_at = excluded.updated_at`,
        )
        .run(serverId, introductionsJson, now.getTime());
    });
    this.inTransaction(run);
  }

  serverKeyHistories(): ServerKeyHistory[] {
    return (
      this.db
        .prepare('SELECT server_id, introductions_json FROM audit_server_keys ORDER BY server_id')
        .all() as { server_id: string; introductions_json: string }[]
    ).map((r) => ({ serverId: r.server_id, introductionsJson: r.introductions_json }));
  }

  private insert(r: AuditRecord): void {
    this.insertStmt.run(...auditRecordValues(r));
  }

  /** Inside the store's own transaction (`Store.transaction`) a nested one is a savepoint; else IMMEDIATE. */
  private inTransaction<T>(run: Database.Transaction<() => T>): T {
    return this.db.inTransaction ? run() : run.immediate();
  }
}

function broken(message: string): AuditError {
  return new AuditChainBrokenError(message);
}
