/**
 * Who may ship a chain, and what a shipment must prove (review finding: shipped-chain impersonation).
 * Hash links alone let anyone who read a chain's head extend it, so the server takes only shipments whose
 * last record is covered by a checkpoint signed with the chain's pinned key; on the public listener the
 * chain must be the caller's own SPIFFE ID, so only B can ship (and first pin) B's chain.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AuditPublicKey } from '../../../src/audit/audit-key';
import { nextRecord, recordLine } from '../../../src/audit/chain';
import { FileAuditLog } from '../../../src/audit/file-log';
import { headerLine, parseChainText } from '../../../src/audit/jsonl';
import { verifyAuditChain } from '../../../src/audit/verify-chain';
import { EXIT_OK, EXIT_REJECTED } from '../../../src/cli/exit-codes';
import { AuditServiceClient, type IngestAuditChainResponse } from '../../../src/gen/lanyard/v1/audit';
import { AuditAdminClient } from '../../../src/server/audit/client';
import { publicCredentials, PUBLIC_CHANNEL_OPTIONS } from '../../support/public-client';
import { type Agent, id, register, TD, unary } from '../../support/sessions';
import { startTestServer, type TestServer } from '../../support/test-server';
import { hopEvent } from '../../audit/helpers';
import { tempDir } from '../../support/tmp';
import { rejectsWithWireCode } from '../../support/grpc-refusal';
import { BIN } from '../../support/paths';

function lanyard(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: path.dirname(BIN),
      env: { ...process.env, LANYARD_FROM_SOURCE: '1', LANYARD_DATA_DIR: '' },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

const text = (lines: string[]): string => lines.join('\n') + '\n';

describe('audit: a shipped chain must be its owner’s', function () {
  this.timeout(90_000);
  const files = tempDir('audit');
  let s: TestServer;
  let audit: AuditAdminClient;

  before(async () => {
    s = await startTestServer();
    audit = new AuditAdminClient(s.config.adminSocketPath);
  });
  after(async () => {
    audit.close();
    await s.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
    fs.rmSync(files, { recursive: true, force: true });
  });

  it("refuses an attacker's forged record appended to B's chain under B's public key; B ships on", async () => {
    const B = 'spiffe://lanyard.local/services/b';
    const log = await FileAuditLog.open({ file: path.join(files, 'b.jsonl'), chain: B });
    await log.append({
      event: 'hop.decision',
      decision: 'deny',
      service: B,
      actor: id('evil'),
      action: 'GET /admin',
    });
    assert.equal((await audit.ingest(text(await log.shipmentLines()))).added, 1);

    // The attacker holds only what B shipped: its records and its public key. It links a forged allow.
    const victim = parseChainText(text(await log.exportLines()));
    const last = victim.records[victim.records.length - 1]!;
    const forged = nextRecord(
      { chain: B, seq: last.seq, hash: last.hash },
      {
        event: 'hop.decision',
        decision: 'allow',
        service: B,
        actor: id('evil'),
        action: 'GET /admin',
        reason: 'forged',
      },
      new Date(),
    );
    const attack = [headerLine(B, victim.publicJwk), ...victim.records.map(recordLine), recordLine(forged)];
    await rejectsWithWireCode(
      audit.ingest(text(attack)),
      'ERR_AUDIT_CHAIN_BROKEN',
      /ends at record 2 but its last signed checkpoint covers 0/,
    );

    const stored = await s.running.store.audit.readRecords(B, 0, 100);
    assert.deepEqual(
      stored.records.map((r) => r.decision),
      ['deny'],
      'nothing forged was stored',
    );
    const ok = verifyAuditChain(
      B,
      stored.records,
      await s.running.store.audit.checkpoints(B),
      AuditPublicKey.fromJwk(victim.publicJwk),
    );
    assert.equal(ok.ok, true);

    await log.append({ event: 'hop.decision', decision: 'deny', service: B, actor: id('x') });
    const next = await audit.ingest(text(await log.shipmentLines()));
    assert.deepEqual([next.added, next.headSeq], [1, 2], "B's genuine next shipment is taken");
    await log.close();
  });

  it('refuses a shipment whose last record no checkpoint covers, even on first use', async () => {
    const C = 'spiffe://lanyard.local/services/c';
    const log = await FileAuditLog.open({ file: path.join(files, 'c.jsonl'), chain: C });
    await log.append(hopEvent(1, C));
    await log.checkpoint();
    await log.append(hopEvent(2, C));
    await rejectsWithWireCode(
      audit.ingest(text(await log.exportLines())),
      'ERR_AUDIT_CHAIN_BROKEN',
      /covers 1/,
    );
    assert.equal((await audit.head(C)).headSeq, 0, 'nothing stored');
    assert.equal(
      (await s.running.store.audit.chains()).find((c) => c.chain === C)?.publicJwk,
      undefined,
      'no key pinned by a refused shipment',
    );
    assert.equal((await audit.ingest(text(await log.shipmentLines()))).added, 2);
    await log.close();
  });

  describe('on the public listener', () => {
    let planner: Agent;
    let runner: Agent;
    const ingestAs = (who: Agent | undefined, jsonl: string): Promise<IngestAuditChainResponse> => {
      const c = new AuditServiceClient(
        s.running.publicAddress,
        publicCredentials(s.running.ca.bundle().toPem(), TD, who),
        PUBLIC_CHANNEL_OPTIONS,
      );
      return unary(c.ingestAuditChain.bind(c), { jsonl: Buffer.from(jsonl) }).finally(() => c.close());
    };

    before(async () => {
      planner = await register(s, 'planner');
      runner = await register(s, 'runner');
    });

    it('a service ships its own chain with its SVID (no admin right), and pins its key', async () => {
      const log = await FileAuditLog.open({
        file: path.join(files, 'planner.jsonl'),
        chain: planner.spiffeId,
      });
      await log.append(hopEvent(1, planner.spiffeId));
      const res = await ingestAs(planner, text(await log.shipmentLines()));
      assert.deepEqual([res.chain, res.added], [planner.spiffeId, 1]);
      const pinned = (await s.running.store.audit.chains()).find((c) => c.chain === planner.spiffeId);
      assert.equal(
        JSON.parse(pinned!.publicJwk!).x,
        (log.key.publicKey.jwk() as { x: string }).x,
        "the planner's own key is pinned",
      );
      await log.close();
    });

    it("refuses a caller shipping another service's chain name, and a caller without an SVID", async () => {
      // The runner names the planner's chain, under a key of its own (would have been TOFU-pinned before).
      const other = 'spiffe://lanyard.local/services/not-yet-shipped';
      for (const chain of [planner.spiffeId, other]) {
        const log = await FileAuditLog.open({ file: path.join(files, `forge-${chain.length}.jsonl`), chain });
        await log.append(hopEvent(3, chain));
        const jsonl = text(await log.shipmentLines());
        await rejectsWithWireCode(
          ingestAs(runner, jsonl),
          'ERR_UNAUTHORIZED',
          /may ship only its own audit chain/,
        );
        await rejectsWithWireCode(ingestAs(undefined, jsonl), 'ERR_CLIENT_CERT_REQUIRED');
        await log.close();
      }
      assert.equal(
        (await s.running.store.audit.chains()).some((c) => c.chain === other),
        false,
        'no key pinned for a chain its owner never shipped',
      );
      assert.equal((await audit.head(planner.spiffeId)).headSeq, 1, "the planner's chain is unchanged");
    });
  });

  it('lanyard audit ship signs a checkpoint over the last record first; without the key it refuses', async () => {
    const D = 'spiffe://lanyard.local/services/d';
    const file = path.join(files, 'd.jsonl');
    const log = await FileAuditLog.open({ file, chain: D });
    await log.append(hopEvent(1, D));
    await log.append(hopEvent(2, D));
    // The service is still running (the file open, no checkpoint over record 2).
    const socket = ['--socket', s.config.adminSocketPath];
    const moved = path.join(files, 'd.key.elsewhere');
    fs.renameSync(`${file}.key`, moved);
    const noKey = await lanyard(['audit', 'ship', '--file', file, ...socket]);
    assert.equal(noKey.code, EXIT_REJECTED, noKey.out);
    assert.match(noKey.out, /no checkpoint over its last record/);
    assert.equal((await audit.head(D)).headSeq, 0);

    const shipped = await lanyard(['audit', 'ship', '--file', file, '--key-file', moved, ...socket]);
    assert.equal(shipped.code, EXIT_OK, shipped.out);
    assert.match(shipped.out, new RegExp(`chain ${D}: 2 new records stored, head 2`));
    const parsed = parseChainText(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(
      parsed.checkpoints.map((c) => c.seq),
      [2],
      'the checkpoint went into the file as well',
    );
    // The service carries on appending after the CLI's checkpoint line; the file still verifies.
    await log.append(hopEvent(3, D));
    const after = parseChainText(fs.readFileSync(file, 'utf8'));
    const v = verifyAuditChain(D, after.records, after.checkpoints, log.key.publicKey, {
      allowUnsignedTail: true,
    });
    assert.equal(v.ok, true, v.break?.message);
    await log.close();
  });
});
