/**
 * A node agent that attests with a Kubernetes projected service-account token, as a DaemonSet pod would:
 * `lanyard agent run --attestor k8s_psat --psat-token-file F`, matched by its cluster and node selectors.
 */
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { issuerKey, jwksOf, psatClaims, signJwt } from '../../support/jwt';
import { startTestServer, type TestServer } from '../../support/test-server';
import { AGENT_ID, TD, X509Stream, tempDir, waitFor, workloadClient } from '../../support/agent';
import { BIN } from '../../support/paths';

describe('node agent: k8s_psat node attestation through the CLI', function () {
  this.timeout(90_000);
  let s: TestServer;
  let child: ChildProcess | undefined;

  after(async () => {
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await s?.stop();
  });

  it('attests as the node its token names and serves the workloads under it', async () => {
    const dir = tempDir();
    const key = issuerKey('ES256');
    fs.writeFileSync(path.join(dir, 'jwks.json'), jwksOf(key));
    fs.writeFileSync(path.join(dir, 'token'), signJwt(psatClaims(Math.floor(Date.now() / 1000)), key), {
      mode: 0o600,
    });
    s = await startTestServer({
      config: {
        attestors: {
          joinToken: {},
          k8sPsat: { clusters: [{ name: 'c1', audience: 'lanyard', jwksFile: path.join(dir, 'jwks.json') }] },
        },
      },
    });
    await s.client.createEntry({
      entry: {
        spiffeId: AGENT_ID,
        selectors: [
          { type: 'k8s', value: 'cluster:c1' },
          { type: 'k8s', value: 'node-name:node-a' },
        ],
      },
    });
    await s.client.createEntry({
      entry: {
        spiffeId: `spiffe://${TD}/workload/on-node-a`,
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
      },
    });
    fs.writeFileSync(path.join(dir, 'bundle.pem'), s.running.ca.bundle().toPem());
    let out = '';
    child = spawn(
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
        'k8s_psat',
        '--psat-token-file',
        path.join(dir, 'token'),
      ],
      { env: { ...process.env, LANYARD_FROM_SOURCE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('Lanyard agent running'), 60_000).catch(() => {
      throw new Error(`the agent did not start:\n${out}`);
    });
    assert.match(out, new RegExp(`node identity: ${AGENT_ID}`));
    const client = workloadClient(path.join(dir, 'agent.sock'));
    const stream = new X509Stream(client);
    try {
      assert.equal((await stream.next()).svids[0]!.spiffeId, `spiffe://${TD}/workload/on-node-a`);
    } finally {
      stream.cancel();
      client.close();
    }
  });
});
