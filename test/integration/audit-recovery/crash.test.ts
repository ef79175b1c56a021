/**
 * kill -9 in the middle of writing: a child process appends records as fast as it can and prints `ack <seq>`
 * after each append resolved; it is killed with SIGKILL at a random moment. Every acknowledged record must be
 * there, the chain must verify, and the log must accept appends again (a torn last line is dropped on open).
 * Both storages: the file chain and SQLite. Several rounds on the same chain, so a crash follows a crash.
 */
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AuditSigningKey } from '../../../src/audit/audit-key';
import { FileAuditLog } from '../../../src/audit/file-log';
import { parseChainText } from '../../../src/audit/jsonl';
import { verifyAuditChain } from '../../../src/audit/verify-chain';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store';
import { CHAIN, sampleEvent } from '../../audit/helpers';
import { tempDir } from '../../support/tmp';

const ROUNDS = 3;

/** Runs the worker until it has acknowledged at least `minAcks`, kills it with SIGKILL, returns the acks. */
function appendThenKill(mode: 'file' | 'sqlite', target: string, minAcks: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'fixtures', 'append-worker.ts'), [mode, target], {
      execArgv: ['--require', require.resolve('tsx/cjs')],
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    let out = '';
    let killing = false;
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const acks = (out.match(/^ack \d+$/gm) ?? []).length;
      if (!killing && acks >= minAcks) {
        killing = true;
        // A random moment after the threshold: somewhere inside a later append.
        setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 20));
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') {
        reject(new Error(`worker exited with ${code ?? signal}`));
        return;
      }
      // Only complete lines: a line cut by the kill was never fully printed, so never acknowledged.
      const complete = out.slice(0, out.lastIndexOf('\n') + 1);
      resolve([...complete.matchAll(/^ack (\d+)$/gm)].map((m) => Number(m[1])));
    });
  });
}

describe('audit trail: kill -9 while appending loses nothing acknowledged', function () {
  this.timeout(120_000);
  const dir = tempDir('audit');
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('file chain', async () => {
    const file = path.join(dir, 'crash.jsonl');
    let lastAck = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const acks = await appendThenKill('file', file, 100);
      assert.ok(acks.length >= 100, `round ${round}: ${acks.length} acks`);
      assert.equal(acks[0], lastAck + 1, 'the chain continued where the previous round stopped');
      lastAck = acks[acks.length - 1]!;

      const parsed = parseChainText(fs.readFileSync(file, 'utf8'));
      const key = AuditSigningKey.loadOrCreate(`${file}.key`).publicKey;
      // Killed mid-stream: what was appended after the last checkpoint is unsigned, and that is the point.
      const v = verifyAuditChain(CHAIN, parsed.records, parsed.checkpoints, key, { allowUnsignedTail: true });
      assert.equal(v.ok, true, v.break?.message);
      assert.ok(v.headSeq >= lastAck, `acknowledged ${lastAck}, but the chain ends at ${v.headSeq}`);
      // At most the one append in flight when the kill came completed without its ack.
      assert.ok(v.headSeq <= lastAck + 1, `${v.headSeq} records for ${lastAck} acks`);
      lastAck = v.headSeq;

      // The log opens again (a torn line is cut off) and appends after the last complete record.
      const log = await FileAuditLog.open({ file, chain: CHAIN });
      assert.equal((await log.head()).seq, v.headSeq);
      const r = await log.append(sampleEvent(0));
      assert.equal(r.seq, v.headSeq + 1);
      await log.close();
      lastAck = r.seq;
      const again = parseChainText(fs.readFileSync(file, 'utf8'));
      const v2 = verifyAuditChain(CHAIN, again.records, again.checkpoints, key);
      assert.equal(v2.ok, true, v2.break?.message);
      assert.equal(again.tornTail, false);
    }
  });

  it('SQLite store', async () => {
    const file = path.join(dir, 'crash.db');
    let lastAck = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const acks = await appendThenKill('sqlite', file, 100);
      assert.equal(acks[0], lastAck + 1, 'the chain continued where the previous round stopped');
      lastAck = acks[acks.length - 1]!;
      const store = await SqliteStore.open({ file });
      try {
        const { records } = await store.audit.readRecords(CHAIN, 0, 100_000);
        const v = verifyAuditChain(CHAIN, records, [], undefined, { allowUnsignedTail: true });
        assert.equal(v.ok, true, v.break?.message);
        assert.ok(v.headSeq >= lastAck, `acknowledged ${lastAck}, but the chain ends at ${v.headSeq}`);
        assert.ok(v.headSeq <= lastAck + 1);
        const acked = new Set(acks);
        assert.ok(
          records.filter((r) => acked.has(r.seq)).length === acks.length,
          'every acknowledged record is stored',
        );
        lastAck = v.headSeq;
      } finally {
        await store.close();
      }
    }
  });
});
