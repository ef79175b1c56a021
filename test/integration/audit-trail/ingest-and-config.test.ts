/**
 * Shipping chains to the server, the refusals: a chain signed by another key than the one pinned at its first
 * shipment, the server's own chain name, a gap after the stored head. And the checkpoint interval from the
 * config: a server with audit.checkpoint_interval 1s signs its head without being asked.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileAuditLog } from '../../../src/audit/file-log';
import { loadConfig } from '../../../src/server/config';
import { AuditAdminClient } from '../../../src/server/audit/client';
import { ErrorCode, isLanyardError } from '../../../src/errors';
import { startTestServer, type TestServer } from '../../support/test-server';
import { hopEvent, sampleEvent } from '../../audit/helpers';
import { tempDir } from '../../support/tmp';

const SERVICE = 'spiffe://lanyard.local/services/billing';

describe('audit: shipping chains and the checkpoint interval', function () {
  this.timeout(60_000);
  const files = tempDir('audit');
  let s: TestServer;
  let audit: AuditAdminClient;

  before(async () => {
    s = await startTestServer({ config: { auditCheckpointIntervalSeconds: 1 } });
    audit = new AuditAdminClient(s.config.adminSocketPath);
  });
  after(async () => {
    audit.close();
    await s.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
    fs.rmSync(files, { recursive: true, force: true });
  });

  const chainText = async (file: string, keyFile: string, n: number): Promise<string> => {
    const log = await FileAuditLog.open({ file, chain: SERVICE, keyFile });
    for (let i = 0; i < n; i++) await log.append(hopEvent(i + 1, SERVICE));
    const text = (await log.shipmentLines()).join('\n') + '\n';
    await log.close();
    return text;
  };

  it('pins the first shipper key; a chain of the same name under another key is refused', async () => {
    const first = await chainText(path.join(files, 'a.jsonl'), path.join(files, 'a.key'), 3);
    assert.equal((await audit.ingest(first)).added, 3);
    const impostor = await chainText(path.join(files, 'b.jsonl'), path.join(files, 'b.key'), 4);
    await assert.rejects(
      audit.ingest(impostor),
      (e: { lanyardCode?: string; details?: string }) =>
        e.lanyardCode === 'ERR_AUDIT_CHAIN_BROKEN' && /another audit key/.test(e.details ?? ''),
    );
    assert.equal((await audit.head(SERVICE)).headSeq, 3, 'nothing of the impostor was stored');
  });

  it("refuses the server's own chain name and a malformed line", async () => {
    const own = (await audit.head()).chain;
    const log = await FileAuditLog.open({ file: path.join(files, 'own.jsonl'), chain: own });
    await log.append(sampleEvent(1));
    const text = (await log.exportLines()).join('\n') + '\n';
    await log.close();
    await assert.rejects(
      audit.ingest(text),
      (e: { lanyardCode?: string }) => e.lanyardCode === 'ERR_AUDIT_RECORD_INVALID',
    );
    await assert.rejects(
      audit.ingest('{"type":"header","chain":"x","version":1}\n{"type":"record","seq":\n{}\n'),
      (e: { lanyardCode?: string }) => e.lanyardCode === 'ERR_AUDIT_RECORD_INVALID',
    );
  });

  it('signs a checkpoint every audit.checkpoint_interval once records were added', async () => {
    await s.client.createEntry({
      entry: { spiffeId: 'spiffe://lanyard.local/agents/x', selectors: [{ type: 'unix', value: 'uid:5' }] },
    });
    const headSeq = (await audit.head()).headSeq;
    let checkpointed = -1;
    // Polls for the timer's work (no timing is asserted: only that it happens).
    for (let i = 0; i < 100 && checkpointed < headSeq; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const h = await audit.head();
      checkpointed = h.checkpointJson === '' ? -1 : (JSON.parse(h.checkpointJson) as { seq: number }).seq;
    }
    assert.ok(checkpointed >= headSeq, `no checkpoint of ${headSeq} (latest ${checkpointed})`);
  });

  it('audit.checkpoint_interval in the config file: a duration, refused when not positive', () => {
    const file = path.join(files, 'lanyard.yaml');
    fs.writeFileSync(file, 'audit:\n  checkpoint_interval: 2m\n');
    assert.equal(
      loadConfig({ configFile: file, dataDir: files, env: {} }).auditCheckpointIntervalSeconds,
      120,
    );
    fs.writeFileSync(file, 'audit:\n  checkpoint_interval: 0\n');
    assert.throws(
      () => loadConfig({ configFile: file, dataDir: files, env: {} }),
      (e: unknown) =>
        isLanyardError(e) &&
        e.code === ErrorCode.INVALID_CONFIG &&
        /audit\.checkpoint_interval/.test(e.message),
    );
  });
});
