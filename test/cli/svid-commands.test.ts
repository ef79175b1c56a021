import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toSpiffeBundle, X509Bundle } from '../../src/bundle';
import { TrustDomain } from '../../src/spiffe';

const BIN = join(__dirname, '..', '..', 'bin', 'lanyard.js');

function lanyard(cwd: string, ...args: string[]): { status: number; stdout: string; stderr: string } {
  // Run from a directory outside the repository: the CLI must not depend on the caller's working directory.
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, LANYARD_FROM_SOURCE: '1' },
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('lanyard ca / svid commands (dev CA end to end)', function () {
  this.timeout(60000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lanyard-cli-'));
    const ctx = {
      agentId: 'planner-7',
      sessionId: 'sess-1',
      principal: { id: 'alice', issuer: 'https://idp.example.com', provenance: 'verified' },
      intent: 'summarise open tickets',
      scopes: ['tickets:read', 'kb:search'],
    };
    writeFileSync(join(dir, 'ctx.json'), JSON.stringify(ctx));
    assert.equal(lanyard(dir, 'ca', 'init', '--trust-domain', 'example.org', '--out', 'ca').status, 0);
    assert.equal(lanyard(dir, 'ca', 'init', '--trust-domain', 'other.org', '--out', 'other').status, 0);
    const mint = lanyard(
      dir,
      'svid',
      'mint',
      '--ca',
      'ca',
      '--id',
      'spiffe://example.org/agent/planner',
      '--context',
      'ctx.json',
      '--out',
      'w',
    );
    assert.equal(mint.status, 0, mint.stderr);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes private keys with mode 0600', () => {
    assert.equal(statSync(join(dir, 'ca', 'ca_key.pem')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'w', 'svid_key.pem')).mode & 0o777, 0o600);
  });

  it('never prints a private key', () => {
    const key = readFileSync(join(dir, 'w', 'svid_key.pem'), 'utf8').split('\n')[1]!;
    const out = lanyard(dir, 'svid', 'inspect', '--json', 'w/svid.pem');
    assert.ok(!out.stdout.includes(key));
    assert.ok(!out.stdout.includes('PRIVATE KEY'));
  });

  it('refuses to overwrite an existing CA without --force', () => {
    const r = lanyard(dir, 'ca', 'init', '--trust-domain', 'example.org', '--out', 'ca');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /already exists/);
  });

  it('inspect shows the SPIFFE ID and the decoded agent context', () => {
    const r = lanyard(dir, 'svid', 'inspect', 'w/svid.pem');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /SPIFFE ID:\s+spiffe:\/\/example.org\/agent\/planner/);
    assert.match(r.stdout, /Principal:\s+alice \(issuer https:\/\/idp.example.com, verified\)/);
    assert.match(r.stdout, /Scopes:\s+tickets:read kb:search/);
    const j = JSON.parse(lanyard(dir, 'svid', 'inspect', '--json', 'w/svid.pem').stdout) as {
      spiffeId: string;
      context: { agentId: string; rootSessionId: string; delegation: unknown[] };
    };
    assert.equal(j.spiffeId, 'spiffe://example.org/agent/planner');
    assert.equal(j.context.agentId, 'planner-7');
    assert.equal(j.context.rootSessionId, 'sess-1');
    assert.deepEqual(j.context.delegation, []);
  });

  it('verify accepts the SVID against its bundle (PEM and SPIFFE JWKS) with exit 0', () => {
    const r = lanyard(dir, 'svid', 'verify', '--chain', 'w/svid.pem', '--bundle', 'w/bundle.pem', '--json');
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { valid: boolean; id: string; context: { principal: { id: string } } };
    assert.equal(j.valid, true);
    assert.equal(j.id, 'spiffe://example.org/agent/planner');
    assert.equal(j.context.principal.id, 'alice');

    const bundle = X509Bundle.fromPem(
      TrustDomain.parse('example.org'),
      readFileSync(join(dir, 'w', 'bundle.pem'), 'utf8'),
    );
    writeFileSync(join(dir, 'bundle.json'), JSON.stringify(toSpiffeBundle(bundle)));
    const jwks = lanyard(dir, 'svid', 'verify', '--chain', 'w/svid.pem', '--bundle', 'bundle.json');
    assert.equal(jwks.status, 0, jwks.stderr);
    assert.match(jwks.stdout, /^OK: spiffe:\/\/example.org\/agent\/planner/);
  });

  it("verify rejects an SVID checked against another trust domain's CA with exit 1 and the error code", () => {
    const r = lanyard(dir, 'svid', 'verify', '--chain', 'w/svid.pem', '--bundle', 'other/ca.pem', '--json');
    assert.equal(r.status, 1);
    const j = JSON.parse(r.stdout) as { valid: boolean; code: string };
    assert.equal(j.valid, false);
    // Both dev roots share a subject name, so the path is built and the signature check is what fails.
    assert.ok(['ERR_UNKNOWN_AUTHORITY', 'ERR_SIGNATURE_INVALID'].includes(j.code), j.code);
  });

  it('verify rejects the SVID after it expired (--at) with exit 1', () => {
    const at = new Date(Date.now() + 2 * 3600 * 1000).toISOString();
    const r = lanyard(dir, 'svid', 'verify', '--chain', 'w/svid.pem', '--bundle', 'w/bundle.pem', '--at', at);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /REJECTED: ERR_SVID_EXPIRED/);
  });

  it('verify rejects a certificate whose signature was tampered with', () => {
    const pem = readFileSync(join(dir, 'w', 'svid.pem'), 'utf8');
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 5] = der[der.length - 5]! ^ 0x01;
    writeFileSync(
      join(dir, 'tampered.pem'),
      `-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n`,
    );
    const r = lanyard(dir, 'svid', 'verify', '--chain', 'tampered.pem', '--bundle', 'w/bundle.pem', '--json');
    assert.equal(r.status, 1);
    assert.notEqual((JSON.parse(r.stdout) as { code: string }).code, undefined);
  });

  it('usage errors exit 2: missing flags, unreadable files, bad times', () => {
    assert.equal(lanyard(dir, 'svid', 'verify', '--chain', 'w/svid.pem').status, 2);
    assert.equal(lanyard(dir, 'svid', 'verify', '--chain', 'nope.pem', '--bundle', 'w/bundle.pem').status, 2);
    assert.equal(
      lanyard(dir, 'svid', 'verify', '--chain', 'w/svid.pem', '--bundle', 'w/bundle.pem', '--at', 'yesterday')
        .status,
      2,
    );
    assert.equal(
      lanyard(
        dir,
        'svid',
        'mint',
        '--ca',
        'ca',
        '--id',
        'spiffe://example.org/x',
        '--out',
        'x',
        '--ttl',
        'soon',
      ).status,
      2,
    );
  });

  it('mint refuses an ID of another trust domain and an invalid context file', () => {
    const wrongTd = lanyard(
      dir,
      'svid',
      'mint',
      '--ca',
      'ca',
      '--id',
      'spiffe://other.org/agent',
      '--out',
      'x',
    );
    assert.equal(wrongTd.status, 1);
    writeFileSync(
      join(dir, 'bad-ctx.json'),
      JSON.stringify({
        agentId: 'a',
        sessionId: 's',
        principal: { id: 'p', issuer: 'i', provenance: 'trust-me' },
      }),
    );
    const badCtx = lanyard(
      dir,
      'svid',
      'mint',
      '--ca',
      'ca',
      '--id',
      'spiffe://example.org/a',
      '--context',
      'bad-ctx.json',
      '--out',
      'x',
    );
    assert.equal(badCtx.status, 1);
    assert.match(badCtx.stderr, /ERR_MALFORMED_AGENT_CONTEXT/);
  });
});
