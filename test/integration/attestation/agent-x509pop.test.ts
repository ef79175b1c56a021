/**
 * A node agent that attests with x509pop (a provisioning certificate and its key, no single-use token), run
 * with `lanyard agent run --attestor x509pop`: it serves its workloads, and after a restart with no saved
 * state it simply attests again.
 */
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startTestServer, type TestServer } from '../../support/test-server';
import { AGENT_ID, TD, X509Stream, tempDir, waitFor, workloadClient } from '../../support/agent';
import { BIN } from '../../support/paths';
import { provisioningEvidencePem, provisioningPki, writeProvisioningCaFile } from '../../support/pki';

const DEVICE = 'spiffe://provisioning.example/device/node-7';

describe('node agent: x509pop node attestation through the CLI', function () {
  this.timeout(90_000);
  let s: TestServer;
  let dir: string;
  let child: ChildProcess | undefined;
  let out = '';

  before(async () => {
    dir = tempDir();
    const pki = provisioningPki(DEVICE);
    writeProvisioningCaFile(pki, path.join(dir, 'prov-ca.pem'));
    fs.writeFileSync(path.join(dir, 'device.pem'), provisioningEvidencePem(pki));
    fs.writeFileSync(
      path.join(dir, 'device-key.pem'),
      pki.deviceKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      { mode: 0o600 },
    );
    s = await startTestServer({
      config: { attestors: { joinToken: {}, x509pop: { caBundleFile: path.join(dir, 'prov-ca.pem') } } },
    });
    await s.client.createEntry({
      entry: { spiffeId: AGENT_ID, selectors: [{ type: 'x509pop', value: `san:uri:${DEVICE}` }] },
    });
    await s.client.createEntry({
      entry: {
        spiffeId: `spiffe://${TD}/workload/on-node-7`,
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
      },
    });
    fs.writeFileSync(path.join(dir, 'bundle.pem'), s.running.ca.bundle().toPem());
  });

  const run = (): ChildProcess => {
    out = '';
    const c = spawn(
      process.execPath,
      [
        BIN,
        'agent',
        'run',
        '--server',
        s.running.publicAddress,
        '--bundle',
        path.join(dir, 'bundle.pem'),
        '--socket',
        path.join(dir, 'agent.sock'),
        '--attestor',
        'x509pop',
        '--x509pop-cert',
        path.join(dir, 'device.pem'),
        '--x509pop-key',
        path.join(dir, 'device-key.pem'),
        '--sync-interval',
        '1s',
      ],
      { env: { ...process.env, LANYARD_FROM_SOURCE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    return c;
  };
  const stopAgent = async (): Promise<void> => {
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };

  after(async () => {
    await stopAgent();
    await s?.stop();
  });

  it('attests as the node named by its provisioning certificate, serves its workload, and re-attests after a restart', async () => {
    for (let round = 0; round < 2; round++) {
      child = run();
      await waitFor(() => out.includes('Lanyard agent running'), 60_000).catch(() => {
        throw new Error(`the agent did not start:\n${out}`);
      });
      assert.match(out, new RegExp(`node identity: ${AGENT_ID}`));
      const client = workloadClient(path.join(dir, 'agent.sock'));
      const stream = new X509Stream(client);
      try {
        assert.equal((await stream.next()).svids[0]!.spiffeId, `spiffe://${TD}/workload/on-node-7`);
      } finally {
        stream.cancel();
        client.close();
      }
      await stopAgent();
    }
  });
});
