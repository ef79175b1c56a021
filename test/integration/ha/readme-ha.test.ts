/**
 * The README's "High availability" commands, run as written: the fenced block after the `readme-ha` marker goes
 * to bash unchanged, in an empty temp dir, with `lanyard` on PATH (the checkout's bin/lanyard.js) and the
 * environment variables the README tells the user to set pointing at a throwaway PostgreSQL cluster. Then what
 * the README claims is checked from the files the commands left: three servers were healthy, an SVID from each
 * verifies with every server's bundle (and not with a bundle lacking its server's root), and a client given
 * every server got its SVID from another one once the first was stopped.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { X509Bundle } from '../../../src/bundle';
import { ErrorCode } from '../../../src/errors';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { decodePemBlocks } from '../../../src/x509/pem';
import { BIN, REPO_ROOT } from '../../support/paths';
import { usePostgresDatabase } from '../../support/postgres-cluster';
import type { CliResult } from '../../support/server-process';
import { tempDir } from '../../support/tmp';

const MARKER = '<!-- readme-ha:';
const AGENT = 'spiffe://lanyard.local/agents/demo';

/** The fenced sh blocks that follow a readme-ha marker, in README order. */
function markedBlocks(readme: string): string[] {
  const blocks: string[] = [];
  const re = /<!-- readme-ha:[^\n]*-->\n```sh\n([\s\S]*?)\n```/g;
  for (let m = re.exec(readme); m !== null; m = re.exec(readme)) blocks.push(m[1]!);
  return blocks;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A base port whose next three ports are free on 127.0.0.1 (the README's servers listen on base+1..base+3). */
async function freeBasePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const free = await Promise.all([1, 2, 3].map((i) => portFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error('found no three consecutive free ports on 127.0.0.1');
}

function certs(file: string): ParsedCertificate[] {
  return decodePemBlocks(fs.readFileSync(file, 'utf8'), 'CERTIFICATE').map((d) =>
    ParsedCertificate.fromDer(d),
  );
}

function bundleOf(file: string): X509Bundle {
  return X509Bundle.fromPem(TrustDomain.parse('lanyard.local'), fs.readFileSync(file, 'utf8'));
}

/** Whether any process of the group still exists. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('README: High availability', function () {
  // Some twenty CLI processes, each starting from the TypeScript sources, on a shared two-core machine.
  this.timeout(10 * 60_000);
  let pgid: number | undefined;

  /** The servers the script left running are in its process group: SIGTERM them, then SIGKILL what lingers. */
  async function stopScript(): Promise<void> {
    if (pgid === undefined || !groupAlive(pgid)) return;
    process.kill(-pgid, 'SIGTERM');
    const until = Date.now() + 30_000;
    while (groupAlive(pgid) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    if (groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
    pgid = undefined;
  }

  const pg = usePostgresDatabase('readme_ha', { beforeDrop: stopScript });

  it('runs the three-server setup as written: every SVID verifies everywhere, and the client fails over', async () => {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const blocks = markedBlocks(readme);
    assert.equal(
      blocks.length,
      readme.split(MARKER).length - 1,
      'every readme-ha marker precedes an sh block',
    );
    assert.ok(blocks.length > 0, 'README.md has a readme-ha block');
    // The README tells the user to set every variable the commands read; the test sets the same ones.
    for (const v of ['LANYARD_PG_URL', 'LANYARD_POSTGRES_PASSWORD', 'LANYARD_HA_PORT']) {
      assert.match(readme, new RegExp(`^export ${v}=`, 'm'), `README sets ${v}`);
    }

    const dir = tempDir('readme-ha');
    const work = path.join(dir, 'work');
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(work);
    fs.mkdirSync(bin);
    // `lanyard` on PATH is the checkout's bin/lanyard.js, as the README's symlink makes it.
    fs.symlinkSync(BIN, path.join(bin, 'lanyard'));
    const base = await freeBasePort();

    const bash = spawn('bash', ['-euo', 'pipefail', '-c', blocks.join('\n')], {
      cwd: work,
      // Its own process group: the servers the script starts in the background stay in it, for stopScript.
      detached: true,
      env: {
        ...process.env,
        PATH: `${bin}:${process.env.PATH ?? ''}`,
        LANYARD_PG_URL: pg.cluster.url(pg.database),
        LANYARD_POSTGRES_PASSWORD: pg.cluster.password,
        LANYARD_HA_PORT: String(base),
        LANYARD_DATA_DIR: '',
        LANYARD_LISTEN_ADDRESS: '',
      },
    });
    pgid = bash.pid;
    const result = await new Promise<CliResult>((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      bash.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      bash.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      bash.once('error', reject);
      bash.once('exit', (code) => resolve({ code, stdout, stderr }));
    });
    const logs = [1, 2, 3]
      .map((i) => {
        const log = path.join(work, `ha-${i}`, 'log');
        return fs.existsSync(log) ? `--- ha-${i}/log\n${fs.readFileSync(log, 'utf8').slice(-3000)}` : '';
      })
      .join('\n');
    const detail = `stdout:\n${result.stdout}\nstderr:\n${result.stderr}\n${logs}`;
    assert.equal(result.code, 0, detail);

    // Three servers were healthy, each on its own admin socket.
    for (const i of [1, 2, 3]) {
      const socket = path.join(work, `ha-${i}`, 'admin.sock');
      assert.ok(
        result.stdout.includes(`server is healthy (SERVING at ${socket})`),
        `ha-${i} healthy\n${detail}`,
      );
    }

    // One bundle with three roots, one per server: each SVID chains to a different one.
    const roots = certs(path.join(work, 'bundle.pem'));
    assert.equal(new Set(roots.map((r) => r.sha256Hex)).size, 3, detail);
    const issuerOf = (svidDir: string): ParsedCertificate => {
      const [leaf] = certs(path.join(work, svidDir, 'svid.pem'));
      const issuers = roots.filter((r) => leaf!.isSignedBy(r));
      assert.equal(issuers.length, 1, `${svidDir} chains to exactly one root of the bundle`);
      return issuers[0]!;
    };
    const issuers = [1, 2, 3].map((i) => issuerOf(`svid-${i}`));
    assert.equal(new Set(issuers.map((r) => r.sha256Hex)).size, 3, 'each server signed with its own CA');

    // Every SVID verifies with every server's bundle: the CLI said so nine times, and so does the library here.
    const verified = result.stdout.match(
      /^OK: spiffe:\/\/lanyard\.local\/agents\/demo is a valid X\.509-SVID/gm,
    );
    assert.equal(verified?.length, 9, detail);
    for (const i of [1, 2, 3]) {
      const chain = certs(path.join(work, `svid-${i}`, 'svid.pem')).map((c) => c.der);
      for (const j of [1, 2, 3]) {
        const bundle = bundleOf(path.join(work, `svid-${j}`, 'bundle.pem'));
        assert.equal(bundle.x509Authorities.length, 3, `server ${j} handed out every server's root`);
        assert.equal(verifyX509Svid(chain, bundle).id.toString(), AGENT);
      }
    }
    // ...because the bundle holds every root: without server 1's root, server 1's SVID is refused.
    const withoutFirst = X509Bundle.fromDer(
      TrustDomain.parse('lanyard.local'),
      roots.filter((r) => r.sha256Hex !== issuers[0]!.sha256Hex).map((r) => r.der),
    );
    assert.throws(
      () =>
        verifyX509Svid(
          certs(path.join(work, 'svid-1', 'svid.pem')).map((c) => c.der),
          withoutFirst,
        ),
      (e: { code?: string }) => e.code === ErrorCode.UNKNOWN_AUTHORITY,
    );

    // Server 1 was stopped (it drained and removed its admin socket); the client given all three servers got
    // its SVID from server 2, the next in its list, and it verifies with the bundle.
    assert.equal(fs.existsSync(path.join(work, 'ha-1', 'admin.sock')), false, 'server 1 has shut down');
    assert.ok(fs.readFileSync(path.join(work, 'ha-1', 'log'), 'utf8').includes('"msg":"shut down"'));
    assert.equal(issuerOf('svid').sha256Hex, issuers[1]!.sha256Hex, 'failed over to server 2');
    assert.equal(
      verifyX509Svid(
        certs(path.join(work, 'svid', 'svid.pem')).map((c) => c.der),
        bundleOf(path.join(work, 'bundle.pem')),
      ).id.toString(),
      AGENT,
    );
    // Servers 2 and 3 are still serving.
    assert.ok(groupAlive(bash.pid!), 'servers 2 and 3 are still running');
  });
});
