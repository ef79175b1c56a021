/**
 * kill -9 under issuance load: 64 clients renew over mTLS as fast as the server answers, while others attest
 * with join tokens; the server process gets SIGKILL at a random moment after a threshold of answers. After a
 * restart on the same data dir, every SVID a client received is in the audit trail (in the store, with its
 * serial), every Attest record names the token it spent, and the chain verifies under the server's audit key
 * from its SPIFFE bundle. Group commit answers a call only after the commit that holds its record, so
 * nothing acknowledged may be missing; what was in flight may or may not be there.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AuditPublicKey } from '../../../src/audit/audit-key';
import { parseChainText } from '../../../src/audit/jsonl';
import { verifyAuditChain } from '../../../src/audit/verify-chain';
import { AdminClient } from '../../../src/server/admin-client';
import { AuditAdminClient } from '../../../src/server/audit/client';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { tempDataDir } from '../../support/test-server';
import { attest, connectPublic, newKey, renewCall, type PublicClients } from '../../support/public-client';
import { spawnServer, type ServerProcess } from '../../support/server-process';

const TD = 'lanyard.local';
const SERVER_CHAIN = `spiffe://${TD}/lanyard/server`;
const SPIFFE_ID = `spiffe://${TD}/crash/worker`;
const RENEWERS = 64;
const ATTESTERS = 8;
/** Answers received before the kill is armed: enough that batches of many calls are being committed. */
const KILL_AFTER = 200;

function serialOf(chain: readonly Uint8Array[] | undefined): string {
  assert.ok(chain !== undefined && chain.length > 0, 'an answer without a certificate');
  return ParsedCertificate.fromDer(new Uint8Array(chain[0]!)).serialHex;
}

// Once with CSR checks and signing on the server's thread, once in its signing pool (ca.signing_workers): a kill
// while workers hold calls must lose nothing a client received either.
for (const workers of [0, 2]) {
  describe(`crash recovery: kill -9 under 64 concurrent renewing clients, ca.signing_workers ${workers}`, function () {
    this.timeout(300_000);
    const work = tempDataDir();
    const dataDir = path.join(work, 'data');
    const configFile = path.join(work, 'server.yaml');
    fs.writeFileSync(configFile, `ca: { signing_workers: ${workers} }\n`);
    const servers: ServerProcess[] = [];
    const closers: (() => void)[] = [];
    after(() => {
      for (const c of closers) c();
      for (const s of servers) s.kill();
      fs.rmSync(work, { recursive: true, force: true });
    });

    it('loses no SVID a client received, and the audit chain verifies after restart', async () => {
      const first = spawnServer(['--config', configFile, '--data-dir', dataDir]);
      servers.push(first);
      const address = await first.ready;
      // Generous deadlines: the machine running the suite may be busy, and this is no timing test.
      const admin = new AdminClient(path.join(dataDir, 'admin.sock'), { timeoutMs: 120_000 });
      closers.push(() => admin.close());
      await admin.createEntry({
        entry: { spiffeId: SPIFFE_ID, selectors: [{ type: 'crash', value: 'worker' }] },
      });
      const bundlePem = (await admin.getBundle({})).bundle!.x509AuthoritiesPem;
      const token = async (): Promise<string> => (await admin.createJoinToken({ spiffeId: SPIFFE_ID })).token;
      const anonymous = connectPublic(address, bundlePem, TD);
      closers.push(() => anonymous.close());

      // Every renewer attests once, then renews with that SVID over its own mTLS connection.
      const renewers: { clients: PublicClients; csr: Buffer }[] = [];
      for (let i = 0; i < RENEWERS; i++) {
        const { key, csr } = newKey();
        const r = await attest(anonymous.attestation, {
          attestorType: 'join_token',
          evidence: Buffer.from(await token()),
          csr,
        });
        const clients = connectPublic(address, bundlePem, TD, {
          key,
          chain: r.svid!.certChain.map((c) => new Uint8Array(c)),
        });
        closers.push(() => clients.close());
        renewers.push({ clients, csr: newKey().csr });
      }
      const spareTokens = await Promise.all(Array.from({ length: ATTESTERS * 16 }, token));

      const received = new Map<string, 'renew' | 'attest'>();
      let killed = false;
      let errorsBeforeKill = 0;
      let firstError: unknown;
      const onAnswer = (serial: string, how: 'renew' | 'attest'): void => {
        received.set(serial, how);
        if (received.size === KILL_AFTER) {
          // Somewhere inside a later batch: the commit, the answers, or the next batch's statements.
          setTimeout(
            () => {
              killed = true;
              first.child.kill('SIGKILL');
            },
            Math.floor(Math.random() * 30),
          );
        }
      };
      const failed = (e: unknown): void => {
        // A client deadline on a busy machine is no answer and no fault: the call was not acknowledged.
        if (killed || (e as { code?: number }).code === grpc.status.DEADLINE_EXCEEDED) return;
        errorsBeforeKill++;
        firstError ??= e;
      };
      const renewing = renewers.map(async ({ clients, csr }) => {
        while (!killed) {
          try {
            onAnswer(serialOf((await renewCall(clients, csr)).svid?.certChain), 'renew');
          } catch (e) {
            failed(e);
            if (killed) return;
          }
        }
      });
      const attesting = Array.from({ length: ATTESTERS }, async (_, a) => {
        for (let i = a; i < spareTokens.length && !killed; i += ATTESTERS) {
          try {
            const r = await attest(anonymous.attestation, {
              attestorType: 'join_token',
              evidence: Buffer.from(spareTokens[i]!),
              csr: newKey().csr,
            });
            onAnswer(serialOf(r.svid?.certChain), 'attest');
          } catch (e) {
            failed(e);
          }
        }
      });
      await Promise.all([...renewing, ...attesting]);
      assert.equal(await first.exited, null, 'the server was killed, not stopped');
      assert.equal(errorsBeforeKill, 0, `calls failed before the kill: ${String(firstError)}`);
      assert.ok(received.size >= KILL_AFTER);
      assert.ok([...received.values()].includes('attest'), 'some Attest answers arrived before the kill');

      // Restart on the same data dir: it must come up from whatever the kill left.
      const second = spawnServer(['--config', configFile, '--data-dir', dataDir]);
      servers.push(second);
      await second.ready;
      const audit = new AuditAdminClient(path.join(dataDir, 'admin.sock'), { timeoutMs: 120_000 });
      closers.push(() => audit.close());
      const admin2 = new AdminClient(path.join(dataDir, 'admin.sock'), { timeoutMs: 120_000 });
      closers.push(() => admin2.close());
      const lines = await audit.export();
      const parsed = parseChainText(lines.join('\n') + '\n');
      const bundle = await admin2.getBundle({});
      const key = AuditPublicKey.fromSpiffeBundle(JSON.parse(bundle.bundle!.spiffeBundleJson) as unknown);
      assert.ok(key !== undefined, 'the bundle publishes the audit key');
      const v = verifyAuditChain(SERVER_CHAIN, parsed.records, parsed.checkpoints, key);
      assert.equal(v.ok, true, v.break?.message);

      const recorded = new Map<string, string>();
      for (const r of parsed.records) {
        if (r.decision === 'allow' && r.serial !== undefined) recorded.set(r.serial, r.event);
      }
      const missing = [...received].filter(([serial, how]) => recorded.get(serial) !== `svid.${how}`);
      assert.deepEqual(missing, [], `${missing.length} of ${received.size} received SVIDs have no record`);
      // Each Attest record names the token it spent, and no token is named twice.
      const spent = parsed.records
        .filter((r) => r.event === 'svid.attest' && r.decision === 'allow')
        .map((r) => r.reason);
      assert.ok(spent.every((reason) => /^token \S+$/.test(reason ?? '')));
      assert.equal(new Set(spent).size, spent.length);
      second.kill();
    });
  });
}
