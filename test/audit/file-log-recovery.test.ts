/**
 * A file chain after a failed write (review finding: one ENOSPC/EIO silenced the log for good while traffic
 * continued). The disk is the real file; the injected handle writes half a line to it and then fails, as a
 * full disk does. The next append cuts the torn line, reopens and continues the chain, which verifies. And a
 * hop service that asked for it (failClosed + gate) refuses peers while its log cannot be written.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileAuditLog, type AppendHandle } from '../../src/audit/file-log';
import { auditHopDecisions } from '../../src/hop/audit';
import { nextRecord, recordLine } from '../../src/audit/chain';
import { parseChainText } from '../../src/audit/jsonl';
import { verifyAuditChain } from '../../src/audit/verify-chain';
import { isLanyardError } from '../../src/errors';
import { verifyHopPeer } from '../../src/hop/peer';
import { authorizeAny } from '../../src/verify';
import { createPki, issueSvid } from '../support/pki';
import { CHAIN, sampleEvent } from './helpers';
import { tempDir } from '../support/tmp';

/** A real append handle that, while `full` is set, writes the first half of what it is given and fails. */
function fillingDisk(): { full: boolean; open: (file: string) => Promise<AppendHandle> } {
  const disk = {
    full: false,
    open: async (file: string): Promise<AppendHandle> => {
      const fh = await fsp.open(file, 'a', 0o600);
      return {
        write: async (data: string) => {
          if (!disk.full) return fh.write(data);
          await fh.write(data.slice(0, Math.floor(data.length / 2)));
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        },
        datasync: () => fh.datasync(),
        sync: () => fh.sync(),
        stat: () => fh.stat(),
        close: () => fh.close(),
      };
    },
  };
  return disk;
}

const code = (e: unknown): string | undefined => (isLanyardError(e) ? e.code : undefined);

describe('audit: a file chain recovers from a failed write', function () {
  this.timeout(30_000);
  const dir = tempDir('audit');
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the next append cuts the torn line and continues the chain, which verifies', async () => {
    const file = path.join(dir, 'recover.jsonl');
    const disk = fillingDisk();
    const log = await FileAuditLog.open({ file, chain: CHAIN, openForAppend: disk.open });
    await log.append(sampleEvent(1));
    await log.append(sampleEvent(2));

    disk.full = true;
    await assert.rejects(log.append(sampleEvent(3)), (e) => code(e) === 'ERR_AUDIT_WRITE_FAILED');
    assert.equal(log.healthy, false);
    assert.ok(!fs.readFileSync(file, 'utf8').endsWith('\n'), 'the failed append left a torn line');
    // Still full: the repair runs (cuts the line) and the append fails again, nothing half-trusted.
    await assert.rejects(log.append(sampleEvent(3)), (e) => code(e) === 'ERR_AUDIT_WRITE_FAILED');

    disk.full = false;
    const r = await log.append(sampleEvent(4));
    assert.equal(r.seq, 3, 'the unacknowledged appends never became part of the chain');
    assert.equal(log.healthy, true);
    await log.close();

    const parsed = parseChainText(fs.readFileSync(file, 'utf8'));
    assert.equal(parsed.tornTail, false);
    const result = verifyAuditChain(CHAIN, parsed.records, parsed.checkpoints, log.key.publicKey);
    assert.equal(result.ok, true, result.break?.message);
    assert.deepEqual([result.headSeq, result.checkpointedSeq], [3, 3]);
    // And the file opens again as a clean chain.
    const again = await FileAuditLog.open({ file, chain: CHAIN });
    assert.equal((await again.head()).seq, 3);
    await again.close();
  });

  it('a failed checkpoint write is repaired the same way', async () => {
    const file = path.join(dir, 'checkpoint.jsonl');
    const disk = fillingDisk();
    const log = await FileAuditLog.open({ file, chain: CHAIN, openForAppend: disk.open });
    await log.append(sampleEvent(1));
    disk.full = true;
    await assert.rejects(log.checkpoint(), (e) => code(e) === 'ERR_AUDIT_WRITE_FAILED');
    disk.full = false;
    await log.append(sampleEvent(2));
    await log.close();
    const parsed = parseChainText(fs.readFileSync(file, 'utf8'));
    assert.equal(verifyAuditChain(CHAIN, parsed.records, parsed.checkpoints, log.key.publicKey).ok, true);
    assert.deepEqual(
      parsed.checkpoints.map((c) => c.seq),
      [2],
    );
  });

  it('reopening after a crash drops an unterminated last line, also a complete one, counting bytes', async () => {
    for (const tail of ['complete', 'torn'] as const) {
      const file = path.join(dir, `crash-${tail}.jsonl`);
      const log = await FileAuditLog.open({ file, chain: CHAIN });
      // Non-ASCII text: a cut computed in characters instead of bytes would land inside a good record.
      await log.append({ ...sampleEvent(1), principal: 'ålice ✓ 名前' });
      await log.append({ ...sampleEvent(2), principal: 'bøb' });
      const head = await log.head();
      await log.close();
      const next = recordLine(nextRecord(head, { ...sampleEvent(3), principal: 'çarol' }, new Date()));
      fs.appendFileSync(file, tail === 'complete' ? next : next.slice(0, 40));

      const again = await FileAuditLog.open({ file, chain: CHAIN });
      assert.equal((await again.head()).seq, 2, tail);
      assert.equal((await again.append(sampleEvent(4))).seq, 3);
      await again.close();
      const parsed = parseChainText(fs.readFileSync(file, 'utf8'));
      const result = verifyAuditChain(CHAIN, parsed.records, parsed.checkpoints, again.key.publicKey);
      assert.equal(result.ok, true, `${tail}: ${result.break?.message}`);
      assert.deepEqual(
        parsed.records.map((r) => r.principal),
        ['ålice ✓ 名前', 'bøb', sampleEvent(4).principal],
      );
    }
  });

  describe('hop decisions', () => {
    const pki = createPki('example.org');
    const chain = issueSvid(pki, 'spiffe://example.org/agent').chain.map((c) => c.der);
    const request = { transport: 'http' as const, action: 'GET /docs' };

    it('failClosed: peers are refused (ERR_AUDIT_WRITE_FAILED) while the log is unhealthy, then served again', async () => {
      const disk = fillingDisk();
      const log = await FileAuditLog.open({
        file: path.join(dir, 'closed.jsonl'),
        chain: CHAIN,
        openForAppend: disk.open,
      });
      const errors: unknown[] = [];
      const audit = auditHopDecisions(log, { failClosed: true, onError: (e) => errors.push(e) });
      const options = {
        bundles: pki.bundle,
        authorize: audit.gate(authorizeAny()),
        onDecision: audit,
        service: CHAIN,
      };
      await verifyHopPeer(chain, options, request);
      await audit.settled();

      disk.full = true;
      await verifyHopPeer(chain, options, request); // decided before the failure was known
      await audit.settled();
      assert.equal(audit.healthy(), false);
      assert.equal(errors.length, 1);
      await assert.rejects(
        verifyHopPeer(chain, options, request),
        (e) => code(e) === 'ERR_AUDIT_WRITE_FAILED',
      );
      await audit.settled();

      // The disk has room again: recording the refusal repairs the log, and the next peer is served.
      disk.full = false;
      await assert.rejects(
        verifyHopPeer(chain, options, request),
        (e) => code(e) === 'ERR_AUDIT_WRITE_FAILED',
      );
      await audit.settled();
      assert.equal(audit.healthy(), true);
      await verifyHopPeer(chain, options, request);
      await audit.settled();
      await log.close();

      const records = await log.readRecords(0, 100);
      assert.deepEqual(
        records.map((r) => `${r.decision}${r.reason !== undefined ? ` ${r.reason}` : ''}`),
        ['allow', 'deny ERR_AUDIT_WRITE_FAILED', 'allow'],
        'the allow and refusal written while the disk was full are lost and reported; the rest is the chain',
      );
      const parsed = parseChainText(fs.readFileSync(path.join(dir, 'closed.jsonl'), 'utf8'));
      assert.equal(verifyAuditChain(CHAIN, parsed.records, parsed.checkpoints, log.key.publicKey).ok, true);
    });

    it('fail-open (default): traffic continues, every lost record is reported', async () => {
      const disk = fillingDisk();
      const log = await FileAuditLog.open({
        file: path.join(dir, 'open.jsonl'),
        chain: CHAIN,
        openForAppend: disk.open,
      });
      const errors: unknown[] = [];
      const audit = auditHopDecisions(log, { onError: (e) => errors.push(e) });
      const options = { bundles: pki.bundle, authorize: audit.gate(authorizeAny()), onDecision: audit };
      disk.full = true;
      for (let i = 0; i < 3; i++) {
        await verifyHopPeer(chain, options, request);
        await audit.settled();
      }
      assert.equal(audit.healthy(), false);
      assert.equal(errors.length, 3, 'each lost decision is reported');
      disk.full = false;
      await verifyHopPeer(chain, options, request);
      await audit.settled();
      assert.equal(audit.healthy(), true);
      assert.equal((await log.readRecords(0, 10)).length, 1);
      await log.close();
    });
  });
});
