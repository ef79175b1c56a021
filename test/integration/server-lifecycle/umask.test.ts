/**
 * Key material stays private whatever the caller's umask: every command that writes keys, run by a shell
 * after `umask 000` (nothing masked) or `umask 0277` (owner-write masked), creates its directories 0700
 * (parents included) and its key files 0600.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AGENT_ID, TD, startAgentFor, tempDir, waitFor, type AgentFixture } from '../../support/agent';
import { startTestServer, type TestServer } from '../../support/test-server';
import { BIN, runCli, spawnServer, underUmask } from '../../support/server-process';

const modeOf = (file: string): number => fs.statSync(file).mode & 0o777;
const octal = (mode: number): string => `0${mode.toString(8)}`;

/** Every directory from `dir` up to (not including) `base` is 0700. */
function assertPrivateDirs(base: string, dir: string): void {
  for (let d = dir; d !== base; d = path.dirname(d)) {
    assert.equal(octal(modeOf(d)), '0700', `${path.relative(base, d)} is ${octal(modeOf(d))}`);
  }
}

/**
 * Nothing under `dir` (itself included) is open to group or others, except the files named in `publicFiles`
 * (and their staged copies, `.<name>.<hex>.tmp`, which a running process may be writing).
 */
function assertNothingOpen(dir: string, publicFiles: string[] = []): void {
  const isPublic = (name: string): boolean =>
    publicFiles.some((f) => name === f || name.startsWith(`.${f}.`));
  const walk = (p: string): void => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return; // a staged file renamed into place meanwhile
    }
    if (!isPublic(path.basename(p))) {
      assert.equal(st.mode & 0o077, 0, `${p} is ${octal(st.mode & 0o777)}`);
    }
    if (st.isDirectory()) for (const f of fs.readdirSync(p)) walk(path.join(p, f));
  };
  walk(dir);
}

describe('key material under any umask', function () {
  this.timeout(120_000);

  for (const umask of ['000', '0277']) {
    it(`ca init and svid mint under umask ${umask}: directories 0700, keys 0600`, async () => {
      const cwd = tempDir();
      const init = await runCli(
        ['ca', 'init', '--trust-domain', 'example.org', '--out', 'a/b/ca'],
        {},
        cwd,
        umask,
      );
      assert.equal(init.code, 0, init.stderr);
      assertPrivateDirs(cwd, path.join(cwd, 'a', 'b', 'ca'));
      assert.equal(octal(modeOf(path.join(cwd, 'a/b/ca/ca_key.pem'))), '0600');
      assert.equal(octal(modeOf(path.join(cwd, 'a/b/ca/ca.pem'))), '0644');

      const mint = await runCli(
        ['svid', 'mint', '--ca', 'a/b/ca', '--id', 'spiffe://example.org/w', '--out', 'm/n/w'],
        {},
        cwd,
        umask,
      );
      assert.equal(mint.code, 0, mint.stderr);
      assertPrivateDirs(cwd, path.join(cwd, 'm', 'n', 'w'));
      assert.equal(octal(modeOf(path.join(cwd, 'm/n/w/svid_key.pem'))), '0600');
      assert.equal(octal(modeOf(path.join(cwd, 'm/n/w/svid.pem'))), '0644');
    });
  }

  it('an existing output directory is used as it is', async () => {
    const cwd = tempDir();
    fs.mkdirSync(path.join(cwd, 'shared'), { mode: 0o750 });
    fs.chmodSync(path.join(cwd, 'shared'), 0o750);
    assert.equal(
      (await runCli(['ca', 'init', '--trust-domain', 'example.org', '--out', 'ca'], {}, cwd)).code,
      0,
    );
    const mint = await runCli(
      ['svid', 'mint', '--ca', 'ca', '--id', 'spiffe://example.org/w', '--out', 'shared'],
      {},
      cwd,
      '000',
    );
    assert.equal(mint.code, 0, mint.stderr);
    assert.equal(octal(modeOf(path.join(cwd, 'shared'))), '0750');
    assert.equal(octal(modeOf(path.join(cwd, 'shared/svid_key.pem'))), '0600');
  });

  describe('against a server and a node agent', () => {
    let s: TestServer;
    let a: AgentFixture;
    let dir: string;

    before(async () => {
      s = await startTestServer();
      dir = tempDir();
      fs.writeFileSync(path.join(dir, 'bundle.pem'), s.running.ca.bundle().toPem());
      await s.client.createEntry({
        entry: {
          spiffeId: `spiffe://${TD}/workload/files`,
          parentId: AGENT_ID,
          selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
        },
      });
      a = await startAgentFor(s);
    });

    after(async () => {
      await a?.close();
      await s?.stop();
    });

    it('svid fetch --out under umask 000: directories 0700, key 0600', async () => {
      await s.client.createEntry({
        entry: {
          spiffeId: `spiffe://${TD}/direct/fetcher`,
          selectors: [{ type: 'node', value: 'name:fetcher' }],
        },
      });
      const { token } = await s.client.createJoinToken({ spiffeId: `spiffe://${TD}/direct/fetcher` });
      fs.writeFileSync(path.join(dir, 'token'), token, { mode: 0o600 });
      const r = await runCli(
        [
          'svid',
          'fetch',
          '--server',
          s.running.publicAddress,
          '--bundle',
          'bundle.pem',
          '--join-token-file',
          'token',
          '--out',
          'fetched/svid',
        ],
        {},
        dir,
        '000',
      );
      assert.equal(r.code, 0, r.stderr);
      assertPrivateDirs(dir, path.join(dir, 'fetched', 'svid'));
      assert.equal(octal(modeOf(path.join(dir, 'fetched/svid/svid_key.pem'))), '0600');
    });

    it('agent fetch x509 --write under umask 000: directories 0700, key 0600', async () => {
      const r = await runCli(
        ['agent', 'fetch', 'x509', '--socket', a.socketPath, '--write', 'written/svid'],
        {},
        dir,
        '000',
      );
      assert.equal(r.code, 0, r.stderr);
      assertPrivateDirs(dir, path.join(dir, 'written', 'svid'));
      assert.equal(octal(modeOf(path.join(dir, 'written/svid/svid_key.pem'))), '0600');
    });

    it("agent run under umask 000: the agent's data dir 0700, its key 0600", async () => {
      await s.client.createEntry({
        entry: { spiffeId: `spiffe://${TD}/agent/umask`, selectors: [{ type: 'node', value: 'name:umask' }] },
      });
      const { token } = await s.client.createJoinToken({ spiffeId: `spiffe://${TD}/agent/umask` });
      fs.writeFileSync(path.join(dir, 'agent-token'), token, { mode: 0o600 });
      const dataDir = path.join(dir, 'agent', 'data');
      const socket = path.join(dir, 'agent.sock');
      const [command, args] = underUmask('000', process.execPath, [
        BIN,
        'agent',
        'run',
        '--server',
        s.running.publicAddress,
        '--bundle',
        path.join(dir, 'bundle.pem'),
        '--socket',
        socket,
        '--join-token-file',
        path.join(dir, 'agent-token'),
        '--data-dir',
        dataDir,
      ]);
      const child = spawn(command, args, {
        env: { ...process.env, LANYARD_FROM_SOURCE: '1' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise((r) => child.once('exit', r));
      try {
        await waitFor(
          () => fs.existsSync(socket) && fs.existsSync(path.join(dataDir, 'agent_svid_key.pem')),
          30_000,
        ).catch(() => assert.fail(`the agent did not start: ${err}`));
        assert.equal(octal(modeOf(path.join(dataDir, 'agent_svid_key.pem'))), '0600');
        assertPrivateDirs(dir, dataDir);
        assertNothingOpen(dataDir, ['agent_svid.pem']);
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
    });
  });

  it('server run under umask 000: nothing in the data dir is open to others', async () => {
    const dataDir = path.join(tempDir(), 'srv', 'data');
    const server = spawnServer(['--data-dir', dataDir], {}, { umask: '000' });
    try {
      await server.ready;
      // What must be there: the store, the CA's keys, the admin socket.
      for (const f of ['lanyard.db', 'keys', 'admin.sock'])
        assert.ok(fs.existsSync(path.join(dataDir, f)), f);
      assertPrivateDirs(path.dirname(path.dirname(dataDir)), dataDir);
      assertNothingOpen(dataDir);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
