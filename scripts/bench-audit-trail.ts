/**
 * The synthetic audit trail the benchmarks load: root sessions of ten records each (start, hops, a delegated
 * child session with its grant redemption), principals and agents spread over them, a deny now and then, and
 * the bulk seeding of such a trail into a server's SQLite file.
 */
import Database from 'better-sqlite3';
import type { AuditSigningKey } from '../src/audit/audit-key';
import { nextRecord } from '../src/audit/chain';
import { signCheckpoint } from '../src/audit/checkpoint';
import type { AuditEvent } from '../src/audit/record';
import { AUDIT_RECORD_COLUMNS, auditRecordValues } from '../src/store/rows';
import { SqliteAudit } from '../src/store/sqlite/audit';

/** Records per root session in the synthetic trail (start, grants, redeems, hops, end). */
export const PER_ROOT = 10;
export const PRINCIPALS = 10_000;
export const AGENTS = 500;

export function event(i: number): AuditEvent {
  const root = Math.floor(i / PER_ROOT);
  const child = i % PER_ROOT >= 5;
  return {
    time: new Date(Date.UTC(2026, 0, 1) + i * 10),
    event: i % PER_ROOT === 0 ? 'session.start' : i % PER_ROOT === 5 ? 'grant.redeem' : 'hop.decision',
    decision: i % 7 === 3 ? 'deny' : 'allow',
    ...(i % 7 === 3 && { reason: 'ERR_SCOPE_ESCALATION' }),
    actor: `spiffe://bench.local/agents/a${i % AGENTS}`,
    agentId: `e-${i % AGENTS}`,
    sessionId: child ? `s-${root}-c` : `s-${root}`,
    rootSessionId: `s-${root}`,
    ...(child && { parentSessionId: `s-${root}` }),
    principal: `user-${root % PRINCIPALS}`,
    scopes: ['docs:read'],
    serial: (0x100000 + Math.floor(i / 2)).toString(16),
  };
}

/** Records per transaction when seeding: one durable commit per this many, not one per record. */
const SEED_TRANSACTION = 50_000;
/** Page cache of the seeding connection: the five query indexes of a large chain stay in memory while it grows. */
const SEED_CACHE_KIB = 256 * 1024;

/**
 * Signed checkpoints among seeded records, as a server signs them (its timer, every export): one over every
 * `every`-th record, signed with `key` (the server's own audit key, so the chain verifies).
 */
export interface SeedCheckpoints {
  every: number;
  key: AuditSigningKey;
}

/**
 * Appends `count` records of the synthetic trail (events `first`..`first + count - 1`) to `chain` straight in a
 * server's SQLite file, on a second connection, as the server's store would append them: each chained from the
 * stored head (hash and link as the recorder does) and stored as the store's own row (rows.ts), with one prepared
 * INSERT and SEED_TRANSACTION records per IMMEDIATE transaction, so a running server's appends interleave
 * between transactions and the chain does not fork. The server signs a checkpoint over them at its next export
 * (after checking that they continue its last signed head); with `checkpoints`, checkpoints are stored among
 * them too, in the same transactions.
 */
export function seedAuditRecords(
  file: string,
  chain: string,
  count: number,
  first = 0,
  checkpoints?: SeedCheckpoints,
): void {
  const db = new Database(file);
  try {
    db.pragma('busy_timeout = 60000');
    db.pragma(`cache_size = -${SEED_CACHE_KIB}`);
    const audit = new SqliteAudit(db);
    const insert = db.prepare(
      `INSERT INTO audit_records (${AUDIT_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const now = new Date();
    const batch = db.transaction((from: number, to: number) => {
      let head = audit.head(chain);
      for (let i = from; i < to; i++) {
        const r = nextRecord(head, event(i), now);
        insert.run(...auditRecordValues(r));
        head = { chain, seq: r.seq, hash: r.hash };
        if (checkpoints !== undefined && (i + 1) % checkpoints.every === 0) {
          audit.addCheckpoint(signCheckpoint(head, checkpoints.key, now));
        }
      }
    });
    for (let from = first; from < first + count; from += SEED_TRANSACTION) {
      batch.immediate(from, Math.min(first + count, from + SEED_TRANSACTION));
    }
  } finally {
    db.close();
  }
}
