/**
 * The CLI end to end: `node bin/lanyard.js ...` as a person types it, against a real server on a temp
 * admin socket. Commands are spawned asynchronously, because the server under test runs in this process.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPublicKey, type JsonWebKey, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseSpiffeBundle, X509Bundle } from '../../../src/bundle';
import { EXIT_REJECTED, EXIT_USAGE } from '../../../src/cli/exit-codes';
import { TrustDomain } from '../../../src/spiffe';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { BIN, runCli, runSh, type CliResult, cliOk } from '../../support/server-process';

const TD = 'spiffe://lanyard.local';

type Result = CliResult;

const lanyard = (args: string[], env: NodeJS.ProcessEnv = {}, cwd = path.dirname(BIN)): Promise<Result> =>
  runCli(args, env, cwd);
const sh = runSh;

const ok = cliOk;

describe('lanyard entry / token against a running server', function () {
  this.timeout(120_000);
  let t: TestServer;
  let conn: string[];
  before(async () => {
    t = await startTestServer();
    conn = ['--socket', t.config.adminSocketPath];
  });
  after(async () => {
    await t.stop();
    fs.rmSync(t.dir, { recursive: true, force: true });
  });

  it('creates, shows, lists, updates and deletes an entry', async () => {
    const created = JSON.parse(
      ok(
        await lanyard([
          'entry',
          'create',
          ...conn,
          '--json',
          '--spiffe-id',
          `${TD}/agents/planner`,
          '--selector',
          'k8s:ns:agents',
          '--selector',
          'k8s:sa:planner',
          '--ttl',
          '30m',
          '--scope',
          'tickets:read',
          '--max-delegation-depth',
          '2',
          '--delegate',
          `${TD}/agents/tool-runner`,
          '--dns-name',
          'planner.internal',
        ]),
      ).stdout,
    ) as Record<string, unknown>;
    assert.equal(created.spiffeId, `${TD}/agents/planner`);
    assert.deepEqual(created.selectors, [
      { type: 'k8s', value: 'ns:agents' },
      { type: 'k8s', value: 'sa:planner' },
    ]);
    assert.equal(created.x509SvidTtlSeconds, 1800);
    assert.equal(created.revision, 1);
    assert.equal(created.parentId, null);
    const id = String(created.id);

    const shown = ok(await lanyard(['entry', 'show', id, ...conn])).stdout;
    assert.match(shown, /SPIFFE ID:\s+spiffe:\/\/lanyard\.local\/agents\/planner/);
    assert.match(shown, /Allowed scopes:\s+tickets:read/);

    const table = ok(await lanyard(['entry', 'list', ...conn])).stdout;
    assert.match(table, /^ID\s+SPIFFE ID\s+PARENT ID\s+SELECTORS\s+TTL\s+REV$/m);
    assert.ok(table.includes(id));

    const updated = JSON.parse(
      ok(
        await lanyard([
          'entry',
          'update',
          id,
          ...conn,
          '--json',
          '--scope',
          'a:b',
          '--scope',
          'c:d',
          '--admin',
        ]),
      ).stdout,
    ) as Record<string, unknown>;
    assert.deepEqual(updated.allowedScopes, ['a:b', 'c:d']);
    assert.equal(updated.admin, true);
    assert.equal(updated.revision, 2);
    assert.equal(updated.x509SvidTtlSeconds, 1800, 'fields without a flag stay');

    const cleared = JSON.parse(
      ok(await lanyard(['entry', 'update', id, ...conn, '--json', '--no-admin', '--clear', 'allowed_scopes']))
        .stdout,
    ) as Record<string, unknown>;
    assert.equal(cleared.admin, false);
    assert.deepEqual(cleared.allowedScopes, []);

    const stale = await lanyard(['entry', 'update', id, ...conn, '--revision', '1', '--admin']);
    assert.equal(stale.code, EXIT_REJECTED);
    assert.match(stale.stderr, /ERR_REVISION_CONFLICT.*ABORTED/);

    ok(await lanyard(['entry', 'delete', id, ...conn]));
    const gone = await lanyard(['entry', 'show', id, ...conn]);
    assert.equal(gone.code, EXIT_REJECTED);
    assert.match(gone.stderr, /ERR_NOT_FOUND/);
  });

  it('filters the list by selector and SPIFFE ID prefix, and pages', async () => {
    for (const name of ['x1', 'x2', 'x3']) {
      ok(
        await lanyard([
          'entry',
          'create',
          ...conn,
          '--spiffe-id',
          `${TD}/list/${name}`,
          '--selector',
          `unix:uid:${name}`,
        ]),
      );
    }
    const bySelector = JSON.parse(
      ok(await lanyard(['entry', 'list', ...conn, '--json', '--selector', 'unix:uid:x2'])).stdout,
    ) as { entries: { spiffeId: string }[] };
    assert.deepEqual(
      bySelector.entries.map((e) => e.spiffeId),
      [`${TD}/list/x2`],
    );
    const page = JSON.parse(
      ok(
        await lanyard([
          'entry',
          'list',
          ...conn,
          '--json',
          '--spiffe-id-prefix',
          `${TD}/list/`,
          '--page-size',
          '2',
        ]),
      ).stdout,
    ) as { entries: unknown[]; nextPageToken: string };
    assert.equal(page.entries.length, 2);
    const rest = JSON.parse(
      ok(
        await lanyard([
          'entry',
          'list',
          ...conn,
          '--json',
          '--spiffe-id-prefix',
          `${TD}/list/`,
          '--page-token',
          page.nextPageToken,
        ]),
      ).stdout,
    ) as { entries: { spiffeId: string }[]; nextPageToken: string };
    assert.deepEqual(
      rest.entries.map((e) => e.spiffeId),
      [`${TD}/list/x3`],
    );
    assert.equal(rest.nextPageToken, '');
  });

  it('creates many entries from a file in one call, and `entry list --json` output feeds back in', async () => {
    const file = path.join(t.dir, 'entries.yaml');
    fs.writeFileSync(
      file,
      `- spiffeId: ${TD}/file/a\n  selectors: ["k8s:ns:a"]\n- spiffeId: ${TD}/file/b\n  selectors: [{ type: k8s, value: "ns:b" }]\n  allowedScopes: [x]\n`,
    );
    const res = ok(await lanyard(['entry', 'create', ...conn, '--file', file]));
    assert.match(res.stdout, /created 2 entries/);

    const exported = ok(
      await lanyard(['entry', 'list', ...conn, '--json', '--spiffe-id-prefix', `${TD}/file/`]),
    ).stdout;
    fs.writeFileSync(file, exported);
    const again = await lanyard(['entry', 'create', ...conn, '--file', file]);
    assert.equal(again.code, EXIT_REJECTED, 'same ids again: refused, nothing created');
    assert.match(again.stderr, /entries\[0\].*ALREADY_EXISTS/);
  });

  it('prints a join token alone on stdout, or as JSON; binds it to one entry, never to an ambiguous SPIFFE ID', async () => {
    const { entry } = await t.client.createEntry({
      entry: { spiffeId: `${TD}/agents/a`, selectors: [{ type: 'unix', value: 'uid:4242' }] },
    });
    const plain = ok(
      await lanyard(['token', 'create', ...conn, '--spiffe-id', `${TD}/agents/a`, '--ttl', '5m']),
    );
    assert.match(plain.stdout, /^lanyard_jt_[A-Za-z0-9_-]{43}\n$/);
    assert.match(plain.stderr, new RegExp(`for entry ${entry!.id} .*single use, expires`));
    const json = JSON.parse(
      ok(await lanyard(['token', 'create', ...conn, '--json', '--spiffe-id', `${TD}/agents/a`])).stdout,
    ) as Record<string, string>;
    assert.match(json.token ?? '', /^lanyard_jt_/);
    assert.match(json.tokenId ?? '', /^jt-/);
    assert.equal(json.entryId, entry!.id);
    assert.ok(!t.logs.join('').includes(json.token ?? '?'));

    // A second entry with the same SPIFFE ID: the SPIFFE ID alone no longer names one entry.
    const { entry: twin } = await t.client.createEntry({
      entry: { spiffeId: `${TD}/agents/a`, selectors: [{ type: 'unix', value: 'uid:4343' }], admin: true },
    });
    const ambiguous = await lanyard(['token', 'create', ...conn, '--spiffe-id', `${TD}/agents/a`]);
    assert.equal(ambiguous.code, EXIT_REJECTED);
    assert.equal(ambiguous.stdout, '', 'no token printed');
    assert.match(ambiguous.stderr, /ERR_ENTRY_AMBIGUOUS/);
    assert.ok(ambiguous.stderr.includes(entry!.id) && ambiguous.stderr.includes(twin!.id), ambiguous.stderr);
    const chosen = JSON.parse(
      ok(await lanyard(['token', 'create', ...conn, '--json', '--entry-id', entry!.id])).stdout,
    ) as Record<string, string>;
    assert.equal(chosen.entryId, entry!.id);
    const none = await lanyard(['token', 'create', ...conn]);
    assert.equal(none.code, EXIT_USAGE);
    assert.match(none.stderr, /--entry-id/);
  });

  it('exits 2 for bad flags and for input the server refuses as invalid, 1 when the server is unreachable', async () => {
    const badSelector = await lanyard([
      'entry',
      'create',
      ...conn,
      '--spiffe-id',
      `${TD}/a`,
      '--selector',
      'nocolon',
    ]);
    assert.equal(badSelector.code, EXIT_USAGE);
    assert.match(badSelector.stderr, /selector must be type:value/);

    const invalid = await lanyard([
      'entry',
      'create',
      ...conn,
      '--spiffe-id',
      'spiffe://other.org/a',
      '--selector',
      'a:b',
    ]);
    assert.equal(invalid.code, EXIT_USAGE);
    assert.match(invalid.stderr, /entry\.spiffe_id: must be in trust domain lanyard\.local/);

    const missing = await lanyard(['entry', 'list', '--socket', path.join(t.dir, 'nobody-here.sock')]);
    assert.equal(missing.code, EXIT_REJECTED);
    assert.match(missing.stderr, /cannot reach the Lanyard server/);
  });

  it('finds the socket from --data-dir and from LANYARD_DATA_DIR', async () => {
    ok(await lanyard(['entry', 'list', '--data-dir', t.dir]));
    ok(await lanyard(['entry', 'list'], { LANYARD_DATA_DIR: t.dir }));
  });
});

describe('lanyard ca rotate / ca show against a running server', function () {
  this.timeout(120_000);
  let t: TestServer;
  let conn: string[];
  before(async () => {
    t = await startTestServer({ start: { rotationTimer: false } });
    conn = ['--socket', t.config.adminSocketPath];
  });
  after(async () => {
    await t.stop();
    fs.rmSync(t.dir, { recursive: true, force: true });
  });

  interface CaJson {
    authorities: { id: string; state: string; notBefore: string; notAfter: string; sha256: string }[];
    bundle: { sequence: number; roots: number };
  }
  const show = async (): Promise<CaJson> =>
    JSON.parse(ok(await lanyard(['ca', 'show', ...conn, '--json'])).stdout) as CaJson;

  it('ca show prints the CAs with state and validity, and the bundle sequence', async () => {
    const text = ok(await lanyard(['ca', 'show', ...conn])).stdout;
    assert.match(text, /^ID\s+STATE\s+NOT BEFORE\s+NOT AFTER/);
    assert.match(text, /\bactive\b/);
    assert.match(text, /bundle of lanyard\.local: sequence 1, 1 root/);
    const json = await show();
    assert.deepEqual(
      json.authorities.map((a) => a.state),
      ['active'],
    );
    assert.ok(Date.parse(json.authorities[0]!.notAfter) > Date.now());
    assert.equal(json.bundle.sequence, 1);
  });

  it('ca rotate --activate with nothing prepared exits 1 with ERR_CA_NOT_PREPARED', async () => {
    const r = await lanyard(['ca', 'rotate', ...conn, '--activate']);
    assert.equal(r.code, EXIT_REJECTED);
    assert.match(r.stderr, /ERR_CA_NOT_PREPARED.*FAILED_PRECONDITION/);
  });

  it('ca rotate prepares, then activates; --prepare and --activate together is a usage error', async () => {
    const prepared = ok(await lanyard(['ca', 'rotate', ...conn])).stdout;
    assert.match(prepared, /^prepared CA \S+: its root is in the bundle/);
    assert.match(prepared, /sequence 2, 2 root/);
    const mid = await show();
    assert.deepEqual(mid.authorities.map((a) => a.state).sort(), ['active', 'prepared']);

    const activated = JSON.parse(ok(await lanyard(['ca', 'rotate', ...conn, '--json'])).stdout) as {
      step: string;
      authority: { id: string; state: string };
    };
    assert.equal(activated.step, 'activate');
    assert.equal(activated.authority.state, 'active');
    assert.equal(activated.authority.id, mid.authorities.find((a) => a.state === 'prepared')!.id);
    assert.deepEqual((await show()).authorities.map((a) => a.state).sort(), ['active', 'old']);

    const both = await lanyard(['ca', 'rotate', ...conn, '--prepare', '--activate']);
    assert.equal(both.code, EXIT_USAGE);
    assert.match(both.stderr, /exclude each other/);
  });

  it('bundle show --format jwks prints a valid SPIFFE bundle whose x509-svid keys are the PEM roots', async () => {
    const pem = ok(await lanyard(['bundle', 'show', ...conn])).stdout;
    const jwksText = ok(await lanyard(['bundle', 'show', ...conn, '--format', 'jwks'])).stdout;
    const td = TrustDomain.parse('lanyard.local');
    const fromPem = X509Bundle.fromPem(td, pem);
    const fromJwks = parseSpiffeBundle(td, jwksText);
    assert.ok(fromPem.x509Authorities.length >= 1);
    assert.deepEqual(
      fromJwks.x509Authorities.map((c) => c.sha256Hex).sort(),
      fromPem.x509Authorities.map((c) => c.sha256Hex).sort(),
    );
    assert.equal(fromJwks.sequence, (await show()).bundle.sequence);

    // Each x509-svid key is the public key of its one x5c certificate (SPIFFE Trust Domain and Bundle §4.2.1).
    const doc = JSON.parse(jwksText) as { keys: (JsonWebKey & { use?: string; x5c?: string[] })[] };
    const x509Keys = doc.keys.filter((k) => k.use === 'x509-svid');
    assert.equal(x509Keys.length, fromPem.x509Authorities.length);
    for (const key of x509Keys) {
      assert.equal(key.x5c?.length, 1);
      const cert = new X509Certificate(Buffer.from(key.x5c![0]!, 'base64'));
      assert.ok(cert.ca);
      const { x5c: _x5c, use: _use, ...jwk } = key;
      assert.deepEqual(
        createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'der' }),
        cert.publicKey.export({ type: 'spki', format: 'der' }),
      );
    }
    assert.ok(!/"d"|PRIVATE/.test(jwksText), 'no private key material');
  });
});

describe('lanyard server run', function () {
  this.timeout(60_000);

  it('starts with no config, prints where it listens and how to register, and exits 0 on SIGTERM', async () => {
    const dir = tempDataDir();
    // Still no config file: the environment moves the listener to a free port, so the test never collides
    // with a dev server (or another run) on the default 127.0.0.1:8081.
    let logsMustNotHold = '?';
    const child = spawn(process.execPath, [BIN, 'server', 'run', '--data-dir', dir], {
      env: { ...process.env, LANYARD_FROM_SOURCE: '1', LANYARD_LISTEN_ADDRESS: '127.0.0.1:0' },
    });
    try {
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      await new Promise<void>((resolve, reject) => {
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes('Stop with')) resolve();
        });
        child.on('close', () => reject(new Error(`server exited early: ${stderr}`)));
      });
      assert.ok(stderr.includes(`admin socket (registration, CA): ${path.join(dir, 'admin.sock')}`), stderr);
      assert.ok(stderr.includes('paste these lines into a shell, in any directory'), stderr);
      // It prints the port it really bound, and the printed svid fetch step connects there.
      const listening = /attestation\/bundle \(TLS\):\s+(127\.0\.0\.1:(\d+))/.exec(stderr);
      assert.ok(listening && Number(listening[2]) > 0, stderr);
      assert.ok(stderr.includes(`svid fetch --server ${listening[1]} `), stderr);

      // Follow the printed steps as a person would: paste each line, verbatim, into sh in a fresh directory.
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-first-steps-'));
      const steps = stderr.split('\n').filter((l) => l.startsWith('  ') && l.includes(` ${BIN} `));
      assert.deepEqual(
        steps.map((l) =>
          l
            .slice(l.indexOf(BIN) + BIN.length)
            .trim()
            .split(' ')
            .slice(0, 2)
            .join(' '),
        ),
        ['entry create', 'token create', 'bundle show', 'svid fetch', 'svid inspect'],
      );
      const caShow = /^The CA: (.*); rotate/m.exec(stderr)?.[1];
      assert.ok(caShow !== undefined, stderr);
      let inspected = '';
      try {
        for (const line of [...steps, caShow]) {
          inspected = ok(await sh(line, work)).stdout;
        }
        assert.match(inspected, /bundle of lanyard\.local: sequence 1/, 'ca show ran');
        const token = fs.readFileSync(path.join(work, 'token'), 'utf8').trim();
        assert.match(token, /^lanyard_jt_/);
        assert.equal(fs.statSync(path.join(work, 'token')).mode & 0o077, 0, 'the token file is private');
        // The SVID the steps got verifies against the bundle they fetched, as the demo workload.
        const verified = ok(
          await lanyard(
            ['svid', 'verify', '--chain', 'svid/svid.pem', '--bundle', 'bundle.pem', '--json'],
            {},
            work,
          ),
        );
        assert.equal((JSON.parse(verified.stdout) as { id: string }).id, `${TD}/agents/demo`);
        logsMustNotHold = token;
      } finally {
        fs.rmSync(work, { recursive: true, force: true });
      }

      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.equal(fs.existsSync(path.join(dir, 'admin.sock')), false);
      // Logs are JSON lines, and the token is in none of them.
      const lines = stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg?: string });
      assert.ok(lines.some((l) => l.msg === 'lanyard server ready'));
      assert.ok(lines.some((l) => l.msg === 'shut down'));
      assert.ok(!stdout.includes(logsMustNotHold));
    } finally {
      // A failed assertion must not leave the server running (and its data dir behind).
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops at start-up on a bad config with a message naming the field', async () => {
    const dir = tempDataDir();
    try {
      const file = path.join(dir, 'server.yaml');
      fs.writeFileSync(file, 'svid:\n  default_ttl: forever\n');
      const r = await lanyard(['server', 'run', '--config', file]);
      assert.equal(r.code, EXIT_USAGE);
      assert.match(r.stderr, /svid\.default_ttl/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('npm start', function () {
  this.timeout(120_000);

  it('hands SIGTERM to the server: signalled through npm, it drains and exits, and nothing is left behind', async () => {
    const dir = tempDataDir();
    const npm = spawn('npm', ['start'], {
      // Its own process group, so clean-up reaches whatever npm started even if the signal did not.
      detached: true,
      cwd: path.join(__dirname, '..', '..', '..'),
      env: {
        ...process.env,
        LANYARD_FROM_SOURCE: '1',
        LANYARD_DATA_DIR: dir,
        LANYARD_LISTEN_ADDRESS: '127.0.0.1:0',
      },
    });
    let serverPid: number | undefined;
    try {
      let stdout = '';
      let stderr = '';
      npm.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const npmExited = new Promise<void>((resolve) => npm.on('exit', () => resolve()));
      // The server writes to the same pipe: it closes only when npm and the server have both let go of it.
      const outputClosed = new Promise<void>((resolve) => npm.stdout.on('close', () => resolve()));
      await new Promise<void>((resolve, reject) => {
        npm.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes('Stop with')) resolve();
        });
        npm.on('exit', () => reject(new Error(`npm start exited early: ${stderr}`)));
      });
      const port = Number(/attestation\/bundle \(TLS\):\s+127\.0\.0\.1:(\d+)/.exec(stderr)?.[1]);
      assert.ok(port > 0, stderr);
      // With `exec`, npm's child is the server itself, not a shell that would die and orphan it.
      const children = fs
        .readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return (
              /^\d+ \(.*\) \S (\d+)/.exec(fs.readFileSync(`/proc/${p}/stat`, 'utf8'))?.[1] === String(npm.pid)
            );
          } catch {
            return false; // gone while listing
          }
        })
        .map(Number);
      assert.equal(children.length, 1, `children of npm: ${children.join(', ')}`);
      serverPid = children[0]!;
      assert.match(fs.readFileSync(`/proc/${serverPid}/cmdline`, 'utf8'), /bin\/lanyard\.js\0server\0run/);

      npm.kill('SIGTERM');
      await npmExited;
      // The server shuts down in its own time; wait for it to be gone (an orphan would hang here), not for a
      // duration. Once the pipe closes it has exited; the pid lingers only until it is reaped.
      await outputClosed;
      while (isRunning(serverPid)) await new Promise((r) => setTimeout(r, 100));
      const lines = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg?: string });
      assert.ok(
        lines.some((l) => l.msg === 'lanyard server ready'),
        stdout + stderr,
      );
      assert.ok(
        lines.some((l) => l.msg === 'shut down'),
        stdout,
      );
      assert.equal(fs.existsSync(path.join(dir, 'admin.sock')), false, 'the admin socket is removed');
      await assert.rejects(connectOnce(port), /ECONNREFUSED/, 'the port is closed');
    } finally {
      try {
        process.kill(-npm.pid!, 'SIGKILL');
      } catch {
        // the group is empty: everything exited
      }
      if (serverPid !== undefined && isRunning(serverPid)) process.kill(serverPid, 'SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Alive and not a zombie: an orphan's exit is reaped by whoever adopted it, which may take its time. */
function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function connectOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve();
    });
    socket.on('error', reject);
  });
}
