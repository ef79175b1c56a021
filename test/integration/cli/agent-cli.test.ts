/**
 * The agent's CLI as an operator runs it: `lanyard agent run` with a join-token file (a separate process),
 * `lanyard agent fetch x509 --write` (files, key 0600, verifying with the bundle it wrote) and `--watch`
 * (rewritten on rotation); and the WorkloadApiX509Source that hop helpers use behind an agent.
 */
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { X509Bundle } from '../../../src/bundle';
import { WorkloadApiX509Source } from '../../../src/client/workload-api-source';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { decodePemBlocks } from '../../../src/x509/pem';
import { startTestServer, type TestServer } from '../../support/test-server';
import { AGENT_ID, TD, tempDir, waitFor } from '../../support/agent';
import { BIN } from '../../support/paths';

const WORKLOAD_ID = `spiffe://${TD}/workload/file-reader`;

interface Proc {
  child: ChildProcess;
  out: () => string;
}

function lanyard(args: string[]): Proc {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, LANYARD_FROM_SOURCE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { child, out: () => out };
}

function exited(p: Proc): Promise<number | null> {
  return new Promise((resolve) => {
    if (p.child.exitCode !== null) resolve(p.child.exitCode);
    else p.child.once('exit', (code) => resolve(code));
  });
}

describe('node agent: lanyard agent run / agent fetch x509, and WorkloadApiX509Source', function () {
  this.timeout(90_000);
  let s: TestServer;
  let dir: string;
  let agent: Proc;
  const socket = (): string => path.join(dir, 'agent.sock');

  before(async () => {
    s = await startTestServer();
    dir = tempDir();
    await s.client.createEntry({
      entry: { spiffeId: AGENT_ID, selectors: [{ type: 'node', value: 'name:cli' }] },
    });
    await s.client.createEntry({
      entry: {
        spiffeId: WORKLOAD_ID,
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
        x509SvidTtlSeconds: 6,
      },
    });
    const { token } = await s.client.createJoinToken({ spiffeId: AGENT_ID });
    fs.writeFileSync(path.join(dir, 'token'), token, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'bundle.pem'), s.running.ca.bundle().toPem());
    agent = lanyard([
      'agent',
      'run',
      '--server',
      s.running.publicAddress,
      '--bundle',
      path.join(dir, 'bundle.pem'),
      '--socket',
      socket(),
      '--join-token-file',
      path.join(dir, 'token'),
      '--data-dir',
      path.join(dir, 'agent-data'),
      '--sync-interval',
      '1s',
    ]);
    await waitFor(() => agent.out().includes('Lanyard agent running'), 60_000).catch(() => {
      throw new Error(`the agent did not start:\n${agent.out()}`);
    });
  });

  after(async () => {
    if (agent && agent.child.exitCode === null) {
      agent.child.kill('SIGTERM');
      await exited(agent);
    }
    await s?.stop();
  });

  it('fetch x509 --write: svid.pem, svid_key.pem (0600) and bundle.pem; the SVID verifies with that bundle', async () => {
    const out = path.join(dir, 'once');
    const p = lanyard(['agent', 'fetch', 'x509', '--socket', socket(), '--write', out]);
    assert.equal(await exited(p), 0, p.out());
    assert.equal(fs.statSync(path.join(out, 'svid_key.pem')).mode & 0o777, 0o600);
    const chain = decodePemBlocks(fs.readFileSync(path.join(out, 'svid.pem'), 'utf8'), 'CERTIFICATE');
    const bundle = X509Bundle.fromPem(
      TrustDomain.parse(TD),
      fs.readFileSync(path.join(out, 'bundle.pem'), 'utf8'),
    );
    assert.equal(verifyX509Svid(chain, bundle).id.toString(), WORKLOAD_ID);
    assert.equal(fs.readdirSync(out).filter((f) => f.endsWith('.tmp')).length, 0, 'no staged files left');
    // The agent kept its own SVID (key 0600) in its data dir.
    assert.equal(fs.statSync(path.join(dir, 'agent-data', 'agent_svid_key.pem')).mode & 0o777, 0o600);
  });

  it('fetch x509 --watch rewrites the files when the SVID rotates', async () => {
    const out = path.join(dir, 'watched');
    const p = lanyard(['agent', 'fetch', 'x509', '--socket', socket(), '--write', out, '--watch']);
    try {
      await waitFor(() => fs.existsSync(path.join(out, 'svid.pem')), 30_000);
      const first = fs.readFileSync(path.join(out, 'svid.pem'), 'utf8');
      await waitFor(() => fs.readFileSync(path.join(out, 'svid.pem'), 'utf8') !== first, 20_000);
    } finally {
      p.child.kill('SIGTERM');
      await exited(p);
    }
  });

  it('WorkloadApiX509Source follows rotations and serves the bundle for verification', async () => {
    const source = await WorkloadApiX509Source.connect({ socketPath: socket() });
    try {
      const first = source.getX509Svid();
      assert.equal(first.id.toString(), WORKLOAD_ID);
      const bundle = source.getX509BundleForTrustDomain(TrustDomain.parse(TD))!;
      verifyX509Svid(
        first.chain.map((c) => c.der),
        bundle,
      );
      await new Promise<void>((resolve) => source.on('update', () => resolve()));
      assert.notEqual(source.getX509Svid().chain[0]!.serialHex, first.chain[0]!.serialHex);
    } finally {
      await source.close();
    }
    assert.throws(() => source.getX509Svid(), { code: 'ERR_SOURCE_NOT_READY' });
  });

  it('agent run refuses bad usage with exit 2', async () => {
    const p = lanyard([
      'agent',
      'run',
      '--server',
      '127.0.0.1:1',
      '--bundle',
      path.join(dir, 'bundle.pem'),
      '--socket',
      path.join(dir, 'x.sock'),
    ]);
    assert.equal(await exited(p), 2, p.out());
    assert.match(p.out(), /join_token needs/);
  });
});
