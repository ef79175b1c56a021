/**
 * Clients that know only the standard Workload API proto, in other processes: a Python one (Debian's
 * python3-grpcio, stubs compiled from proto/spiffe/workload/workload.proto at run time) and a plain Node one
 * running as a second local user created by the test, which must get its own identity or PERMISSION_DENIED.
 */
import * as assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { buildSync } from 'esbuild';
import { startTestServer, type TestServer } from '../../support/test-server';
import { AGENT_ID, TD, startAgentFor, waitFor, type AgentFixture } from '../../support/agent';
import { REPO_ROOT } from '../../support/paths';

const ROOT = REPO_ROOT;
const PYTHON = '/usr/bin/python3';
const PY_CLIENT = path.join(ROOT, 'scripts', 'python-client', 'workload_fetch.py');
const INSTALL = path.join(ROOT, 'scripts', 'python-client', 'install-deps.sh');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(
  file: string,
  args: string[],
  opts: { uid?: number; gid?: number; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        timeout: opts.timeoutMs ?? 60_000,
        ...(opts.uid !== undefined && { uid: opts.uid, gid: opts.gid }),
        cwd: '/',
      },
      (err, stdout, stderr) => {
        const status = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ status, stdout, stderr });
      },
    );
  });
}

function lines(r: Run): Record<string, unknown>[] {
  const out = r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(out.length > 0, `no JSON from the client (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return out;
}

/**
 * A plain Node client: @grpc/grpc-js + @grpc/proto-loader on the standard proto, nothing from src/. It is bundled
 * into one file beside a copy of the proto, because the second user may not be able to read the checkout (a
 * clone under a 0700 directory, as `mktemp -d` makes).
 */
const NODE_CLIENT = `
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const def = loader.loadSync('spiffe/workload/workload.proto', { keepCase: true, includeDirs: [require('node:path').join(__dirname, 'proto')] });
const Api = grpc.loadPackageDefinition(def).SpiffeWorkloadAPI;
const client = new Api('unix://' + process.argv[2], grpc.credentials.createInsecure());
const md = new grpc.Metadata();
md.set('workload.spiffe.io', 'true');
const call = client.FetchX509SVID({}, md);
call.on('data', (r) => { console.log(JSON.stringify({ spiffe_id: r.svids[0].spiffe_id, uid: process.getuid() })); call.cancel(); });
call.on('error', (e) => { if (e.code !== grpc.status.CANCELLED) console.log(JSON.stringify({ code: grpc.status[e.code], details: e.details })); client.close(); });
`;

/** Writes the client, bundled, and the proto it loads into `dir`, readable by every user. */
function writeNodeClient(dir: string): string {
  const protoDir = path.join(dir, 'proto', 'spiffe', 'workload');
  fs.mkdirSync(protoDir, { recursive: true, mode: 0o755 });
  fs.copyFileSync(
    path.join(ROOT, 'proto', 'spiffe', 'workload', 'workload.proto'),
    path.join(protoDir, 'workload.proto'),
  );
  const out = path.join(dir, 'client.js');
  buildSync({
    stdin: { contents: NODE_CLIENT, resolveDir: ROOT, loader: 'js' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    outfile: out,
    logLevel: 'error',
  });
  for (const f of [out, path.join(protoDir, 'workload.proto')]) fs.chmodSync(f, 0o644);
  for (const d of [path.join(dir, 'proto'), path.join(dir, 'proto', 'spiffe'), protoDir])
    fs.chmodSync(d, 0o755);
  return out;
}

describe('node agent: standard-proto clients in other processes', function () {
  this.timeout(15 * 60_000);
  let s: TestServer;
  let a: AgentFixture;

  before(async () => {
    s = await startTestServer();
    a = await startAgentFor(s);
  });

  after(async () => {
    await a?.close();
    await s?.stop();
  });

  describe('Python (Debian python3-grpcio)', () => {
    before(async function () {
      const inst = spawn('/bin/sh', [INSTALL], { stdio: 'ignore' });
      const code = await new Promise<number | null>((resolve) => inst.on('close', resolve));
      if (code !== 0) throw new Error(`scripts/python-client/install-deps.sh failed (exit ${code})`);
      const python = fs.realpathSync(PYTHON);
      await s.client.createEntry({
        entry: {
          spiffeId: `spiffe://${TD}/workload/python`,
          parentId: AGENT_ID,
          // Its uid and its interpreter: the path selector comes from /proc/<pid>/exe.
          selectors: [
            { type: 'unix', value: `uid:${process.getuid!()}` },
            { type: 'unix', value: `path:${python}` },
          ],
          x509SvidTtlSeconds: 4,
        },
      });
      await a.agent.sync.syncNow();
    });

    it('fetches, verifies with the bundle it got (OpenSSL), and receives a rotation on the stream', async () => {
      const r = await run(PYTHON, [PY_CLIENT, '--socket', a.socketPath, '--count', '2'], {
        timeoutMs: 60_000,
      });
      const out = lines(r);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.equal(out.length, 2);
      for (const o of out) {
        assert.equal(o.spiffe_id, `spiffe://${TD}/workload/python`);
        assert.equal(o.verified, true);
      }
      assert.notEqual(out[0]!.serial, out[1]!.serial, 'the second message is a rotated SVID');
    });

    it('is refused without the workload.spiffe.io header: INVALID_ARGUMENT', async () => {
      const r = await run(PYTHON, [PY_CLIENT, '--socket', a.socketPath, '--no-header']);
      assert.equal(r.status, 1);
      assert.equal(lines(r)[0]!.code, 'INVALID_ARGUMENT');
    });
  });

  describe('a second local user', () => {
    let user = '';
    let uid = -1;
    let gid = -1;
    let script = '';

    before(function () {
      if (process.getuid!() !== 0) {
        // Creating a user needs root; CI and the dev machines run as root.
        process.stderr.write('      skipped: the second-user test needs root to create a user (useradd)\n');
        this.skip();
      }
      user = `lanyard-t-${randomBytes(3).toString('hex')}`;
      execFileSync('useradd', ['-M', '-r', '-s', '/usr/sbin/nologin', user]);
      uid = Number(execFileSync('id', ['-u', user]).toString().trim());
      gid = Number(execFileSync('id', ['-g', user]).toString().trim());
      script = writeNodeClient(a.dir);
    });

    after(() => {
      if (user !== '') execFileSync('userdel', [user]);
    });

    it("is denied while no entry names its uid, then gets its own identity, not root's", async () => {
      // Root's process has an identity on this agent; the other user must not get it.
      await s.client.createEntry({
        entry: {
          spiffeId: `spiffe://${TD}/workload/root-tool`,
          parentId: AGENT_ID,
          selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
        },
      });
      await a.agent.sync.syncNow();
      const denied = await run(process.execPath, [script, a.socketPath], { uid, gid });
      assert.deepEqual(
        lines(denied).map((o) => o.code),
        ['PERMISSION_DENIED'],
        denied.stdout + denied.stderr,
      );

      await s.client.createEntry({
        entry: {
          spiffeId: `spiffe://${TD}/workload/second-user`,
          parentId: AGENT_ID,
          selectors: [{ type: 'unix', value: `uid:${uid}` }],
        },
      });
      await a.agent.sync.syncNow();
      await waitFor(() => a.agent.cache.entries().some((e) => e.spiffeId.endsWith('/second-user')));
      const got = await run(process.execPath, [script, a.socketPath], { uid, gid });
      const out = lines(got);
      assert.deepEqual(out, [{ spiffe_id: `spiffe://${TD}/workload/second-user`, uid }], got.stderr);
    });
  });
});
