/**
 * Policy reloads in the server's audit trail, on a real server (127.0.0.1:0, SQLite, policy.files): an edit on
 * disk becomes a `policy.reload` allow record naming both versions and the file, a broken edit a deny record
 * with the reason while the old version stays in force, read back over the admin socket; the chain with the new
 * records still verifies with the server's audit key.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AuditPublicKey } from '../../../src/audit/audit-key';
import { parseChainText } from '../../../src/audit/jsonl';
import type { AuditRecord } from '../../../src/audit/record';
import { verifyAuditChain } from '../../../src/audit/verify-chain';
import { AuditAdminClient } from '../../../src/server/audit/client';
import { writeAtomically } from '../../policy/helpers';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';

const SERVER_CHAIN = 'spiffe://lanyard.local/lanyard/server';

const READ_DOCS = `
@id("workloads-read-docs")
permit (principal, action == Lanyard::Action::"issue", resource == Lanyard::Scope::"docs:read")
when { context.kind == "workload" };
`;
const WRITE_DOCS = `
@id("workloads-write-docs")
permit (principal, action == Lanyard::Action::"issue", resource == Lanyard::Scope::"docs:write")
when { context.kind == "workload" };
`;

describe('audit: policy reloads on a real server', function () {
  this.timeout(60_000);
  const policyDir = tempDataDir();
  const policyFile = path.join(policyDir, 'issuance.cedar');
  let s: TestServer;
  let audit: AuditAdminClient;

  const reloadRecords = async (): Promise<AuditRecord[]> => {
    const parsed = parseChainText((await audit.export()).join('\n') + '\n');
    return parsed.records.filter((r) => r.event === 'policy.reload');
  };
  /** Polls the trail over the admin socket until `want` records a reload. */
  const nextReloadRecord = async (seen: number): Promise<AuditRecord> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const records = await reloadRecords();
      if (records.length > seen) return records[seen]!;
      if (Date.now() > deadline) throw new Error('no policy.reload record appeared');
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  before(async () => {
    fs.writeFileSync(policyFile, READ_DOCS);
    s = await startTestServer({ config: { policyFiles: [policyDir] } });
    audit = new AuditAdminClient(s.config.adminSocketPath);
  });
  after(async () => {
    audit?.close();
    await s?.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
    fs.rmSync(policyDir, { recursive: true, force: true });
  });

  it('nothing is recorded while the policy is unchanged', async () => {
    assert.deepEqual(await reloadRecords(), []);
  });

  it('an edit becomes an allow record with the old and the new version, the file, and the server as actor', async () => {
    const before = s.running.policy!.version;
    writeAtomically(policyFile, READ_DOCS + WRITE_DOCS);
    const r = await nextReloadRecord(0);
    const after = s.running.policy!.version;
    assert.notEqual(after, before);
    assert.equal(r.decision, 'allow');
    assert.equal(r.actor, SERVER_CHAIN);
    assert.equal(r.action, 'reload');
    assert.equal(r.reason, `${before} -> ${after}`);
    assert.equal(r.policyVersion, after);
    assert.ok(r.subject?.split(',').includes(policyFile), r.subject);
  });

  it('a broken edit becomes a deny record with the reason; the version in force stays and is named', async () => {
    const current = s.running.policy!.version;
    writeAtomically(
      policyFile,
      `${READ_DOCS}\npermit (principal, action, resource) when { principal.nope( };`,
    );
    const r = await nextReloadRecord(1);
    assert.equal(r.decision, 'deny');
    assert.equal(r.actor, SERVER_CHAIN);
    assert.equal(r.policyVersion, current);
    assert.equal(s.running.policy!.version, current);
    assert.ok(r.reason?.includes(policyFile), r.reason);
    assert.ok(r.subject?.split(',').includes(policyDir), r.subject);
  });

  it('the chain with the reload records verifies with the server audit key', async () => {
    await s.running.audit.checkpoint();
    const parsed = parseChainText((await audit.export()).join('\n') + '\n');
    const head = await audit.head();
    const v = verifyAuditChain(
      SERVER_CHAIN,
      parsed.records,
      parsed.checkpoints,
      AuditPublicKey.fromJwk(JSON.parse(head.publicKeyJwk) as unknown),
    );
    assert.equal(v.ok, true, v.break?.message);
    assert.equal(parsed.records.filter((r) => r.event === 'policy.reload').length, 2);
  });
});
