/**
 * Tamper evidence: each kind of change to a chain is reported with its kind and the sequence number where it
 * is, for a file chain (edit the JSON lines) and for the SQLite store (edit the rows with a second
 * connection, as someone with write access to the database file would). An untouched chain verifies.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { AuditSigningKey } from '../../src/audit/audit-key';
import { nextRecord, recordBody, recordLine } from '../../src/audit/chain';
import { signCheckpoint, type AuditCheckpoint } from '../../src/audit/checkpoint';
import { FileAuditLog } from '../../src/audit/file-log';
import { parseChainText } from '../../src/audit/jsonl';
import type { AuditRecord } from '../../src/audit/record';
import { verifyAuditChain, type ChainBreakKind } from '../../src/audit/verify-chain';
import { ErrorCode, isLanyardError } from '../../src/errors';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { CHAIN, sampleEvent } from './helpers';
import { tempDir } from '../support/tmp';

const N = 12;

function expectBreak(result: ReturnType<typeof verifyAuditChain>, kind: ChainBreakKind, seq: number): void {
  assert.equal(result.ok, false, 'the chain must not verify');
  assert.equal(result.break?.kind, kind, result.break?.message);
  assert.equal(result.break?.seq, seq, result.break?.message);
}

describe('audit tamper evidence: file chain', () => {
  const dir = tempDir('audit');
  const file = path.join(dir, 'hops.jsonl');
  let log: FileAuditLog;
  let pristine: string;

  before(async () => {
    log = await FileAuditLog.open({ file, chain: CHAIN });
    for (let i = 1; i <= N; i++) {
      await log.append(sampleEvent(i));
      if (i === 6) await log.checkpoint();
    }
    await log.close(); // checkpoint at 12
    pristine = fs.readFileSync(file, 'utf8');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const lines = (): string[] => pristine.trimEnd().split('\n');
  const verifyText = (text: string): ReturnType<typeof verifyAuditChain> => {
    const p = parseChainText(text);
    return verifyAuditChain(p.chain, p.records, p.checkpoints, log.key.publicKey);
  };
  /** Index of the line holding record `seq`. */
  const lineOf = (ls: string[], seq: number): number =>
    ls.findIndex(
      (l) =>
        l.startsWith('{') &&
        (JSON.parse(l) as { type: string; seq: number }).type === 'record' &&
        (JSON.parse(l) as { seq: number }).seq === seq,
    );
  const recordAt = (ls: string[], seq: number): AuditRecord => {
    const { type: _t, ...r } = JSON.parse(ls[lineOf(ls, seq)]!) as AuditRecord & { type: string };
    return r;
  };

  it('the untouched chain verifies, with both checkpoints', () => {
    const r = verifyText(pristine);
    assert.equal(r.ok, true, r.break?.message);
    assert.equal(r.headSeq, N);
    assert.equal(r.checkpoints, 2);
    assert.equal(r.checkpointedSeq, N);
  });

  it('edited: a changed field in record 4', () => {
    const ls = lines();
    const i = lineOf(ls, 4);
    ls[i] = ls[i]!.replace('"principal":"alice"', '"principal":"mallory"');
    assert.notEqual(ls.join('\n'), pristine.trimEnd(), 'the edit changed something');
    expectBreak(verifyText(ls.join('\n') + '\n'), 'edited', 4);
  });

  it('edited: record 4 replaced with a recomputed hash', () => {
    const ls = lines();
    const orig = recordAt(ls, 4);
    const forged = nextRecord(
      { chain: CHAIN, seq: 3, hash: orig.prevHash },
      { ...sampleEvent(4), principal: 'mallory', time: new Date(orig.time) },
      new Date(),
    );
    ls[lineOf(ls, 4)] = recordLine(forged);
    expectBreak(verifyText(ls.join('\n') + '\n'), 'edited', 4);
  });

  it('deleted: record 4 removed', () => {
    const ls = lines();
    ls.splice(lineOf(ls, 4), 1);
    expectBreak(verifyText(ls.join('\n') + '\n'), 'deleted', 4);
  });

  it('reordered: records 4 and 5 swapped', () => {
    const ls = lines();
    const i = lineOf(ls, 4);
    const j = lineOf(ls, 5);
    [ls[i], ls[j]] = [ls[j]!, ls[i]!];
    expectBreak(verifyText(ls.join('\n') + '\n'), 'reordered', 5);
  });

  it('inserted: a well-formed record slipped in after record 3', () => {
    const ls = lines();
    const three = recordAt(ls, 3);
    const forged = nextRecord(
      { chain: CHAIN, seq: 3, hash: three.hash },
      { ...sampleEvent(99), decision: 'allow' },
      new Date(),
    );
    ls.splice(lineOf(ls, 3) + 1, 0, recordLine(forged));
    expectBreak(verifyText(ls.join('\n') + '\n'), 'inserted', 4);
  });

  it('checkpoint_signature: a forged checkpoint (other key, or an altered head)', () => {
    const ls = lines();
    const cpIndex = ls.findIndex((l) => l.includes('"type":"checkpoint"'));
    const cp = JSON.parse(ls[cpIndex]!) as AuditCheckpoint;
    const other = signCheckpoint(
      { chain: CHAIN, seq: cp.seq, hash: cp.headHash },
      AuditSigningKey.generate(),
      new Date(),
    );
    const forgedLs = [...ls];
    forgedLs[cpIndex] = JSON.stringify({ type: 'checkpoint', ...other });
    expectBreak(verifyText(forgedLs.join('\n') + '\n'), 'checkpoint_signature', 6);
    const altered = [...ls];
    altered[cpIndex] = JSON.stringify({ type: 'checkpoint', ...cp, seq: 5 });
    expectBreak(verifyText(altered.join('\n') + '\n'), 'checkpoint_signature', 5);
  });

  it('checkpoint_mismatch: record 2 edited and every later hash recomputed', () => {
    const p = parseChainText(pristine);
    let head = { chain: CHAIN, seq: 0, hash: p.records[0]!.prevHash };
    const rewritten: AuditRecord[] = [];
    for (const r of p.records) {
      const { chain: _c, seq: _s, prevHash: _p, hash: _h, time, ...fields } = r;
      const event =
        r.seq === 2 ? { ...fields, decision: 'deny' as const, reason: 'ERR_UNAUTHORIZED' } : fields;
      const next = nextRecord(head, { ...event, time: new Date(time) }, new Date());
      rewritten.push(next);
      head = { chain: CHAIN, seq: next.seq, hash: next.hash };
    }
    expectBreak(
      verifyAuditChain(CHAIN, rewritten, p.checkpoints, log.key.publicKey),
      'checkpoint_mismatch',
      6,
    );
  });

  it('truncated: the last records cut off, the checkpoint that signed them kept', () => {
    const ls = lines().filter((l) => {
      const o = JSON.parse(l) as { type: string; seq?: number };
      return !(o.type === 'record' && (o.seq ?? 0) > 9);
    });
    expectBreak(verifyText(ls.join('\n') + '\n'), 'truncated', 10);
  });

  it('FileAuditLog refuses to append to a broken file, and a malformed line names its number', async () => {
    const broken = path.join(dir, 'broken.jsonl');
    const ls = lines();
    ls.splice(lineOf(ls, 4), 1);
    fs.writeFileSync(broken, ls.join('\n') + '\n');
    fs.copyFileSync(`${file}.key`, `${broken}.key`);
    await assert.rejects(
      FileAuditLog.open({ file: broken, chain: CHAIN }),
      (e: unknown) =>
        isLanyardError(e) && e.code === ErrorCode.AUDIT_CHAIN_BROKEN && /deleted at 4/.test(e.message),
    );
    const garbled = [...lines()];
    garbled.splice(3, 0, '{"type":"record","seq":');
    assert.throws(
      () => parseChainText(garbled.join('\n') + '\n'),
      (e: unknown) =>
        isLanyardError(e) && e.code === ErrorCode.AUDIT_RECORD_INVALID && /line 4/.test(e.message),
    );
  });
});

describe('audit tamper evidence: SQLite store', () => {
  const dir = tempDir('audit');
  const file = path.join(dir, 'lanyard.db');
  const key = AuditSigningKey.generate();
  let store: SqliteStore;

  beforeEach(async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    store = await SqliteStore.open({ file });
    for (let i = 1; i <= N; i++) {
      await store.audit.append(CHAIN, sampleEvent(i), new Date());
      if (i === 6 || i === N)
        await store.audit.addCheckpoint(signCheckpoint(await store.audit.head(CHAIN), key, new Date()));
    }
  });
  afterEach(() => store.close());
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const verifyStored = async (): Promise<ReturnType<typeof verifyAuditChain>> =>
    verifyAuditChain(
      CHAIN,
      (await store.audit.readRecords(CHAIN, 0, 1000)).records,
      await store.audit.checkpoints(CHAIN),
      key.publicKey,
    );
  /** Another connection to the same file: what someone with write access to the database could do. */
  const tamper = (fn: (db: Database.Database) => void): void => {
    const db = new Database(file);
    try {
      fn(db);
    } finally {
      db.close();
    }
  };
  const row = (db: Database.Database, seq: number): { body: string; hash: string } =>
    db.prepare('SELECT body, hash FROM audit_records WHERE chain = ? AND seq = ?').get(CHAIN, seq) as {
      body: string;
      hash: string;
    };

  it('the untouched chain verifies', async () => {
    const r = await verifyStored();
    assert.equal(r.ok, true, r.break?.message);
    assert.equal(r.headSeq, N);
    assert.equal(r.checkpointedSeq, N);
  });

  it('edited: the body of record 7 changed in place', async () => {
    tamper((db) => {
      const { body } = row(db, 7);
      db.prepare('UPDATE audit_records SET body = ? WHERE chain = ? AND seq = 7').run(
        body.replace('"principal":"bob"', '"principal":"mallory"'),
        CHAIN,
      );
    });
    expectBreak(await verifyStored(), 'edited', 7);
  });

  it('deleted: the row of record 7 removed', async () => {
    tamper((db) => db.prepare('DELETE FROM audit_records WHERE chain = ? AND seq = 7').run(CHAIN));
    expectBreak(await verifyStored(), 'deleted', 7);
  });

  it('reordered: records 7 and 8 swapped between their rows', async () => {
    tamper((db) => {
      const a = row(db, 7);
      const b = row(db, 8);
      const set = db.prepare('UPDATE audit_records SET body = ?, hash = ? WHERE chain = ? AND seq = ?');
      set.run(b.body, b.hash, CHAIN, 7);
      set.run(a.body, a.hash, CHAIN, 8);
    });
    expectBreak(await verifyStored(), 'reordered', 8);
  });

  it('inserted: later rows shifted up and a forged record 7 put in the gap', async () => {
    const before = (await store.audit.readRecords(CHAIN, 5, 1)).records[0]!;
    const forged = nextRecord(
      { chain: CHAIN, seq: 6, hash: before.hash },
      { ...sampleEvent(50), decision: 'allow' },
      new Date(),
    );
    tamper((db) => {
      db.transaction(() => {
        for (let s = N; s >= 7; s--)
          db.prepare('UPDATE audit_records SET seq = seq + 1 WHERE chain = ? AND seq = ?').run(CHAIN, s);
        db.prepare(
          `INSERT INTO audit_records (chain, seq, time, event, body, hash) VALUES (?, 7, ?, ?, ?, ?)`,
        ).run(CHAIN, forged.time, forged.event, recordBody(forged), forged.hash);
      })();
    });
    expectBreak(await verifyStored(), 'inserted', 7);
  });

  it('checkpoint_signature: a checkpoint row with a changed head or signature', async () => {
    tamper((db) => db.prepare('UPDATE audit_checkpoints SET seq = 5 WHERE chain = ? AND seq = 6').run(CHAIN));
    expectBreak(await verifyStored(), 'checkpoint_signature', 5);
  });

  it('truncated: the last three rows deleted, the final checkpoint kept', async () => {
    tamper((db) => db.prepare('DELETE FROM audit_records WHERE chain = ? AND seq > 9').run(CHAIN));
    expectBreak(await verifyStored(), 'truncated', 10);
  });

  it('appendRecords refuses records that do not follow the stored head', async () => {
    const other = nextRecord({ chain: CHAIN, seq: 3, hash: '0'.repeat(64) }, sampleEvent(1), new Date());
    await assert.rejects(
      store.audit.appendRecords(CHAIN, [other], []),
      (e: unknown) => isLanyardError(e) && e.code === ErrorCode.AUDIT_CHAIN_BROKEN,
    );
    assert.equal((await store.audit.head(CHAIN)).seq, N, 'nothing was written');
  });
});
