/**
 * Bootstrapping against a server with ca.upstream, as an operator does it: `lanyard bundle show` prints the
 * organisation root alone, which names no trust domain (a real organisation PKI puts no spiffe:// URI SAN in
 * it), so `svid fetch` and `agent run` take the trust domain from --trust-domain, never from the server's
 * answer. Without the flag: exit 2 naming it; with another trust domain: the server's SVID is of the wrong
 * domain and nothing is fetched. The server banner's steps carry the flag and run as pasted.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { X509Bundle } from '../../../src/bundle';
import { EXIT_USAGE } from '../../../src/cli/exit-codes';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { decodePemBlocks } from '../../../src/x509/pem';
import { tempDataDir } from '../../support/test-server';
import { BIN, runCli, runSh, spawnServer, type ServerProcess } from '../../support/server-process';
import { certPem, createOrgPki, ORG_TD, type OrgPki, writeUpstreamConfig } from '../../support/pki';

const td = TrustDomain.parse(ORG_TD);

/** A line the banner printed, run by sh in `cwd` as a person pastes it. */
const sh = runSh;

describe('ca.upstream: workloads and agents bootstrap from the org root with --trust-domain', function () {
  this.timeout(90_000);
  let work: string;
  let org: OrgPki;
  let dataDir: string;
  let server: ServerProcess;
  let address: string;
  const file = (name: string): string => path.join(work, name);

  before(async () => {
    work = tempDataDir();
    org = createOrgPki(work, 'org', { spiffeNamed: false });
    assert.deepEqual(org.root.cert.uriSans, [], 'the org root names no trust domain');
    const configFile = writeUpstreamConfig(work, {
      cert: 'org/int.pem',
      key: 'org/int.key',
      bundle: 'org/root.pem',
    });
    dataDir = file('data');
    server = spawnServer(['--config', configFile, '--data-dir', dataDir]);
    address = await server.ready;
    const shown = await runCli(['bundle', 'show', '--data-dir', dataDir]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(shown.stdout.trim(), certPem(org.root.cert).trim());
    fs.writeFileSync(file('bundle.pem'), shown.stdout);
  });

  after(async () => {
    if (server !== undefined) {
      server.child.kill('SIGTERM');
      await server.exited;
      server.kill();
    }
    fs.rmSync(work, { recursive: true, force: true });
  });

  /** An entry for `id` and a join token for it in a 0600 file; returns the file. */
  async function tokenFor(id: string, name: string): Promise<string> {
    const created = await runCli([
      'entry',
      'create',
      '--data-dir',
      dataDir,
      '--spiffe-id',
      id,
      '--selector',
      `unix:uid:${name}`,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const token = await runCli(['token', 'create', '--data-dir', dataDir, '--spiffe-id', id]);
    assert.equal(token.code, 0, token.stderr);
    fs.writeFileSync(file(name), token.stdout.trim(), { mode: 0o600 });
    return file(name);
  }

  const fetchArgs = (tokenFile: string, out: string, ...extra: string[]): string[] => [
    'svid',
    'fetch',
    '--server',
    address,
    '--bundle',
    file('bundle.pem'),
    '--join-token-file',
    tokenFile,
    '--out',
    file(out),
    ...extra,
  ];

  it('svid fetch --trust-domain gets an SVID that verifies to the org root', async () => {
    const id = `spiffe://${ORG_TD}/workload/fetched`;
    const tokenFile = await tokenFor(id, 'fetch-token');
    const r = await runCli(fetchArgs(tokenFile, 'svid', '--trust-domain', ORG_TD));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^got ${id} `));
    // leaf, Lanyard CA, org intermediate: the org root alone is enough to verify it.
    const chain = decodePemBlocks(fs.readFileSync(file('svid/svid.pem'), 'utf8'), 'CERTIFICATE');
    assert.equal(chain.length, 3);
    assert.equal(verifyX509Svid(chain, X509Bundle.fromPem(td, certPem(org.root.cert))).id.toString(), id);
    const verified = await runCli([
      'svid',
      'verify',
      '--chain',
      file('svid/svid.pem'),
      '--bundle',
      file('bundle.pem'),
      '--trust-domain',
      ORG_TD,
      '--json',
    ]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.equal((JSON.parse(verified.stdout) as { id: string }).id, id);
  });

  it('svid fetch without --trust-domain: exit 2 naming the flag, nothing written, the token unspent', async () => {
    const id = `spiffe://${ORG_TD}/workload/unnamed`;
    const tokenFile = await tokenFor(id, 'unnamed-token');
    const r = await runCli(fetchArgs(tokenFile, 'unnamed'));
    assert.equal(r.code, EXIT_USAGE, r.stderr);
    assert.match(r.stderr, /names no trust domain.*--trust-domain/);
    assert.equal(fs.existsSync(file('unnamed')), false);
    // The refusal came before the server was asked: the token still works.
    const again = await runCli(fetchArgs(tokenFile, 'unnamed', '--trust-domain', ORG_TD));
    assert.equal(again.code, 0, again.stderr);
  });

  it('svid fetch with another --trust-domain is refused: the server is not that domain', async () => {
    const id = `spiffe://${ORG_TD}/workload/wrong-domain`;
    const tokenFile = await tokenFor(id, 'wrong-token');
    const r = await runCli(fetchArgs(tokenFile, 'wrong', '--trust-domain', 'other.example'));
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /ERR_WRONG_TRUST_DOMAIN: the server at .* the --bundle does not vouch for .*spiffe:\/\/lanyard\.local\/lanyard\/server is not of the accepted trust domain "other\.example"/,
    );
    assert.equal(fs.existsSync(file('wrong/svid.pem')), false);
    // Refused by this side before the token was shown: the right domain still gets the SVID with it.
    const right = await runCli(fetchArgs(tokenFile, 'wrong', '--trust-domain', ORG_TD));
    assert.equal(right.code, 0, right.stderr);
    const bad = await runCli(fetchArgs(tokenFile, 'wrong', '--trust-domain', 'Not A Domain'));
    assert.equal(bad.code, EXIT_USAGE, bad.stderr);
    assert.match(bad.stderr, /--trust-domain/);
  });

  it('agent run --trust-domain attests with the org-root bundle; without it, exit 2 naming the flag', async () => {
    const agentId = `spiffe://${ORG_TD}/agents/node-1`;
    const tokenFile = await tokenFor(agentId, 'agent-token');
    const args = (...extra: string[]): string[] => [
      BIN,
      'agent',
      'run',
      '--server',
      address,
      '--bundle',
      file('bundle.pem'),
      '--socket',
      file('agent.sock'),
      '--join-token-file',
      tokenFile,
      ...extra,
    ];
    const unnamed = await runCli(args().slice(1));
    assert.equal(unnamed.code, EXIT_USAGE, unnamed.stderr);
    assert.match(unnamed.stderr, /names no trust domain.*--trust-domain/);

    const agent = spawn(process.execPath, args('--trust-domain', ORG_TD), {
      env: { ...process.env, LANYARD_FROM_SOURCE: '1' },
    });
    let stderr = '';
    try {
      await new Promise<void>((resolve, reject) => {
        agent.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes('node identity:')) resolve();
        });
        agent.on('close', () => reject(new Error(`the agent exited: ${stderr}`)));
      });
      assert.match(stderr, new RegExp(`node identity: ${agentId}\\n`));
    } finally {
      const closed = new Promise((resolve) => agent.on('close', resolve));
      agent.kill('SIGTERM');
      await closed;
    }
  });

  it("the server banner's steps carry --trust-domain and run as pasted", async () => {
    const banner = server.stderr();
    const steps = banner.split('\n').filter((l) => l.startsWith('  ') && l.includes(` ${BIN} `));
    const fetch = steps.find((l) => l.includes(' svid fetch '));
    assert.ok(fetch?.includes(` --bundle bundle.pem --trust-domain ${ORG_TD} `), banner);
    const dir = file('pasted');
    fs.mkdirSync(dir);
    let last = '';
    for (const line of steps) {
      const r = await sh(line, dir);
      assert.equal(r.code, 0, `${line}\n${r.stderr}`);
      last = r.stdout;
    }
    assert.match(last, new RegExp(`spiffe://${ORG_TD.replace('.', '\\.')}/agents/demo`));
    const chain = decodePemBlocks(fs.readFileSync(path.join(dir, 'svid/svid.pem'), 'utf8'), 'CERTIFICATE');
    assert.equal(
      verifyX509Svid(chain, X509Bundle.fromPem(td, certPem(org.root.cert))).id.toString(),
      `spiffe://${ORG_TD}/agents/demo`,
    );
  });
});
