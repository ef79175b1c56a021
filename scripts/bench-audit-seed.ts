/**
 * Seeds a server's audit chain with millions of records in minutes, for measuring export and verify at 10M.
 * Writes straight into a stopped server's SQLite data dir: the synthetic trail of bench-audit-trail.ts, each
 * record chained by the project's own code (chainRecord: the canonical body, its SHA-256, the link), a
 * checkpoint signed with the server's own audit key every --checkpoint-every records and over the last one,
 * so `lanyard audit verify` (--server, or --file of an export) accepts the chain.
 *
 * Why it is fast where seedAuditRecords (bench-audit-trail.ts, for a running server) is not: the five query
 * indexes are dropped while the rows go in and built again at the end (one sort each instead of millions of
 * random B-tree inserts into indexes larger than the cache), the rows arrive in primary-key order, the
 * statements are prepared once, one transaction holds --batch records, and commits are not fsync'ed (bench
 * data: a crash means seeding again). The server must be stopped: nothing else may write the file meanwhile.
 *
 *   tsx scripts/bench-audit-seed.ts --data-dir DIR --records 10000000
 *   tsx scripts/bench-audit-seed.ts --data-dir DIR --records 2000000 --checkpoint-every 1000 --batch 200000
 * Prints what it did and how long each part took. Not a figure: a means to one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { AuditSigningKey } from '../src/audit/audit-key';
import { chainRecord, type ChainHead } from '../src/audit/chain';
import { signCheckpoint } from '../src/audit/checkpoint';
import { AUDIT_KEY_FILE } from '../src/server/audit/recorder';
import { AUDIT_RECORD_COLUMNS, auditRecordValues } from '../src/store/rows';
import { SqliteAudit } from '../src/store/sqlite/audit';
import { SQLITE_FILE_NAME } from '../src/store/sqlite/sqlite-store';
import { event } from './bench-audit-trail';

export interface AuditSeedOptions {
  /** A signed checkpoint over every this many records (and always over the last one). */
  checkpointEvery: number;
  /** Records per transaction. */
  batch: number;
  /** Told after each transaction: records written so far. */
  progress?: (written: number) => void;
}

export interface AuditSeedResult {
  chain: string;
  /** Head of the chain after seeding. */
  headSeq: number;
  checkpoints: number;
  /** Milliseconds spent writing the rows, and building the indexes again. */
  writeMs: number;
  indexMs: number;
}

/**
 * The server's chain in a data dir: the chain of the checkpoints its audit key signed (it signs one at its
 * first start, over the empty chain).
 */
function serverChain(db: Database.Database, keyId: string): string {
  const rows = db.prepare('SELECT DISTINCT chain FROM audit_checkpoints WHERE key_id = ?').all(keyId) as {
    chain: string;
  }[];
  if (rows.length !== 1) {
    throw new Error(
      `expected the checkpoints of one chain signed by audit key ${keyId}, found ${rows.length}: start the server once first`,
    );
  }
  return rows[0]!.chain;
}

/**
 * Appends `count` records of the synthetic trail to the server's chain in the stopped server's `dataDir`,
 * continuing its stored head, with checkpoints signed by the server's current audit key.
 */
export function seedAuditDataDir(dataDir: string, count: number, o: AuditSeedOptions): AuditSeedResult {
  const keyFile = path.join(dataDir, AUDIT_KEY_FILE);
  if (!fs.existsSync(keyFile)) throw new Error(`${keyFile} does not exist: start the server once first`);
  const key = AuditSigningKey.loadOrCreate(keyFile);
  const db = new Database(path.join(dataDir, SQLITE_FILE_NAME), { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    // Bench data: a lost commit is seeded again, so no fsync per transaction.
    db.pragma('synchronous = OFF');
    db.pragma('cache_size = -262144');
    const chain = serverChain(db, key.publicKey.keyId);
    const audit = new SqliteAudit(db);
    const start = audit.head(chain);
    const insertRecord = db.prepare(
      `INSERT INTO audit_records (${AUDIT_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const insertCheckpoint = db.prepare(
      'INSERT INTO audit_checkpoints (chain, seq, head_hash, time, key_id, signature) VALUES (?, ?, ?, ?, ?, ?)',
    );
    const indexes = db
      .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_records'")
      .all() as { name: string; sql: string | null }[];
    const droppable = indexes.filter((i): i is { name: string; sql: string } => i.sql !== null);
    const now = new Date();
    let head: ChainHead = start;
    let checkpoints = 0;
    const last = start.seq + count;
    const signOver = (h: ChainHead): void => {
      const c = signCheckpoint(h, key, now);
      insertCheckpoint.run(c.chain, c.seq, c.headHash, c.time, c.keyId, c.signature);
      checkpoints++;
    };
    const batch = db.transaction((to: number) => {
      while (head.seq < to) {
        // The trail's event numbering continues where the stored chain ends, so a second seeding extends it.
        const { record, body } = chainRecord(head, event(head.seq), now);
        insertRecord.run(...auditRecordValues(record, body));
        head = { chain, seq: record.seq, hash: record.hash };
        if (head.seq % o.checkpointEvery === 0 || head.seq === last) signOver(head);
      }
    });
    const t0 = Date.now();
    // Built again below whatever the seeding throws; a seeding killed by a signal leaves the data dir without
    // them (bench data: seed a new one).
    db.transaction(() => {
      for (const i of droppable) db.exec(`DROP INDEX ${i.name}`);
    }).immediate();
    let indexMs = 0;
    let writeMs = 0;
    try {
      while (head.seq < last) {
        batch.immediate(Math.min(last, head.seq + o.batch));
        o.progress?.(head.seq - start.seq);
      }
    } finally {
      writeMs = Date.now() - t0;
      const t1 = Date.now();
      db.transaction(() => {
        for (const i of droppable) db.exec(i.sql);
      }).immediate();
      db.pragma('wal_checkpoint(TRUNCATE)');
      indexMs = Date.now() - t1;
    }
    return { chain, headSeq: head.seq, checkpoints, writeMs, indexMs };
  } finally {
    db.close();
  }
}

function main(): void {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const num = (name: string, dflt: number): number => {
    const v = Number(arg(name) ?? dflt);
    if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`${name}: a positive integer, not ${arg(name)}`);
    return v;
  };
  const dataDir = arg('--data-dir');
  if (dataDir === undefined) throw new Error("--data-dir DIR: a stopped server's data dir");
  const records = num('--records', 1_000_000);
  const r = seedAuditDataDir(dataDir, records, {
    checkpointEvery: num('--checkpoint-every', 1000),
    batch: num('--batch', 200_000),
    progress: (n) => process.stderr.write(`  ${n.toLocaleString('en-US')} records\r`),
  });
  process.stdout.write(
    `seeded ${records.toLocaleString('en-US')} records into ${r.chain}: head ${r.headSeq}, ` +
      `${r.checkpoints} checkpoints; rows ${(r.writeMs / 1000).toFixed(1)} s, indexes ${(r.indexMs / 1000).toFixed(1)} s\n`,
  );
}

if (require.main === module) main();
