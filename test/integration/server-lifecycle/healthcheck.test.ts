/**
 * `lanyard server healthcheck` as a container probe runs it: against the admin socket of a real server, exit 0
 * when SERVING and 1 otherwise — NOT_SERVING, a server killed without cleanup (socket left, nothing answers),
 * a stopped server (no socket) — and `lanyard --version`.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXIT_OK, EXIT_REJECTED } from '../../../src/cli/exit-codes';
import { CA_DEPENDENT_HEALTH_NAMES } from '../../../src/server/ca-health';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { runCli, spawnServer } from '../../support/server-process';

describe('lanyard server healthcheck', function () {
  this.timeout(120_000);
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.stop();
    if (t) fs.rmSync(t.dir, { recursive: true, force: true });
    t = undefined;
  });

  it('exit 0 while SERVING, 1 with NOT_SERVING, found by --socket or by --data-dir', async () => {
    t = await startTestServer();
    const serving = await runCli(['server', 'healthcheck', '--socket', t.config.adminSocketPath]);
    assert.equal(serving.code, EXIT_OK, serving.stderr);
    assert.match(serving.stdout, /server is healthy \(SERVING at .*admin\.sock\)/);
    const byDir = await runCli(['server', 'healthcheck', '--data-dir', t.dir, '--json']);
    assert.equal(byDir.code, EXIT_OK, byDir.stderr);
    assert.deepEqual(JSON.parse(byDir.stdout), {
      server: t.config.adminSocketPath,
      status: 'SERVING',
      healthy: true,
    });

    // What the CA health monitor does when the CA cannot issue (test/integration/server-lifecycle/health.test.ts drives that).
    t.running.server.setHealth(CA_DEPENDENT_HEALTH_NAMES, 'NOT_SERVING');
    const down = await runCli(['server', 'healthcheck', '--data-dir', t.dir]);
    assert.equal(down.code, EXIT_REJECTED);
    assert.equal(down.stdout, '');
    assert.match(down.stderr, /server is not healthy: NOT_SERVING/);
  });

  it('exit 1 when the server was killed (socket left, nothing answers) and when it is stopped (no socket)', async () => {
    const dir = tempDataDir();
    const server = spawnServer(['--data-dir', dir]);
    try {
      await server.ready;
      assert.equal((await runCli(['server', 'healthcheck', '--data-dir', dir])).code, EXIT_OK);
      server.child.kill('SIGKILL');
      await server.exited;
      assert.ok(fs.existsSync(path.join(dir, 'admin.sock')), 'SIGKILL leaves the socket file behind');
      const killed = await runCli(['server', 'healthcheck', '--data-dir', dir, '--timeout', '3s']);
      assert.equal(killed.code, EXIT_REJECTED);
      assert.match(killed.stderr, /Lanyard server at .*admin\.sock is not healthy: nothing answers/);
      fs.rmSync(path.join(dir, 'admin.sock'));
      const stopped = await runCli(['server', 'healthcheck', '--data-dir', dir]);
      assert.equal(stopped.code, EXIT_REJECTED);
      assert.match(stopped.stderr, /the Lanyard server is not running: no socket at .*admin\.sock/);
    } finally {
      server.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a graceful stop removes the socket: exit 1, not running', async () => {
    t = await startTestServer();
    const dir = t.dir;
    await t.stop();
    t = undefined;
    try {
      const r = await runCli(['server', 'healthcheck', '--data-dir', dir]);
      assert.equal(r.code, EXIT_REJECTED);
      assert.match(r.stderr, /not running: no socket/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lanyard --version', () => {
  it('prints the version of package.json', async () => {
    const pkg = JSON.parse(
      fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8'),
    ) as {
      version: string;
    };
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag]);
      assert.equal(r.code, EXIT_OK, r.stderr);
      assert.equal(r.stdout, `${pkg.version}\n`);
    }
  });
});
