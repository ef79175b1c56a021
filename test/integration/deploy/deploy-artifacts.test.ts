/**
 * The deployment artifacts under deploy/ stay deployable: the systemd units pass `systemd-analyze verify`
 * (where the machine has systemd), and the Dockerfile builds with the README's quick-start commands. No docker
 * daemon runs here, so the image itself is not built: its steps are compared with the README's.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, REPO_ROOT } from '../../support/paths';
import { tempDir } from '../../support/tmp';

const DEPLOY = join(REPO_ROOT, 'deploy');

describe('deploy/: systemd units and the Dockerfile', function () {
  this.timeout(60_000);

  it('each systemd unit passes systemd-analyze verify, hardened and with its state directory', function () {
    const which = spawnSync('systemd-analyze', ['--version']);
    if (which.error !== undefined) {
      console.log('    (skipped: no systemd-analyze on this machine)');
      this.skip();
    }
    const units = readdirSync(join(DEPLOY, 'systemd')).filter((f) => f.endsWith('.service'));
    assert.deepEqual(units.sort(), ['lanyard-agent.service', 'lanyard-server.service']);
    const dir = tempDir('systemd');
    for (const unit of units) {
      const text = readFileSync(join(DEPLOY, 'systemd', unit), 'utf8');
      for (const key of [
        'NoNewPrivileges=yes',
        'ProtectSystem=strict',
        'StateDirectory=',
        'PrivateTmp=yes',
      ]) {
        assert.ok(text.includes(key), `${unit} sets ${key}`);
      }
      // verify insists that ExecStart's program exists: point it at this checkout's CLI.
      writeFileSync(join(dir, unit), text.replaceAll('/usr/bin/lanyard', BIN));
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(dir, unit)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${unit}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr.trim(), '', `${unit}: ${r.stderr}`);
    }
    const server = readFileSync(join(DEPLOY, 'systemd', 'lanyard-server.service'), 'utf8');
    assert.match(server, /^DynamicUser=yes$/m);
  });

  it("the Dockerfile's build steps are the README's quick start", () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const quick = /## Quick start[\s\S]*?```sh\n([^\n]*)/.exec(readme);
    assert.ok(quick !== null, 'README has a quick start');
    const steps = quick[1]!
      .replace(/#.*$/, '')
      .trim()
      .split('&&')
      .map((s) => s.trim());
    const dockerfile = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
    const run = [...dockerfile.matchAll(/^RUN (.+)$/gm)].map((m) => m[1]!.trim());
    const cmd = /^CMD (\[.+\])$/m.exec(dockerfile);
    assert.ok(cmd !== null, 'the Dockerfile has a CMD');
    assert.deepEqual([...run, (JSON.parse(cmd[1]!) as string[]).join(' ')], steps);
  });

  it('the package does not ship deploy/', () => {
    const files = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { files: string[] })
      .files;
    assert.ok(
      !files.some((f) => f.startsWith('deploy')),
      'deploy/ is for operators of a checkout, not the package',
    );
  });
});
