import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, createPublicKey } from 'node:crypto';
import { toSpiffeBundle, X509Bundle } from '../../../src/bundle';
import { loadDevCa } from '../../../src/ca/dev-ca';
import { TrustDomain } from '../../../src/spiffe';
import { encodePem } from '../../../src/x509/pem';
import { createPki, delegatedPair, HOUR, makeLeaf, makeRoot } from '../../support/pki';
import { BIN } from '../../support/paths';

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

  it('inspect shows, per hop, the key its parent bound for the next one (text and JSON)', () => {
    const pki = createPki('example.org');
    const { child } = delegatedPair(
      pki,
      { name: 'planner', scopes: ['docs:read'], ttlSeconds: 600 },
      { name: 'tool-runner', scopes: ['docs:read'], ttlSeconds: 300 },
    );
    writeFileSync(
      join(dir, 'delegated.pem'),
      child.chain.map((c) => encodePem('CERTIFICATE', c.der)).join(''),
    );
    const leafKey = createHash('sha256').update(child.cert.spkiDer).digest('hex');
    const r = lanyard(dir, 'svid', 'inspect', 'delegated.pem');
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `-> delegated to spiffe://example.org/agent/tool-runner .*\\n\\s+for the key sha256 ${leafKey}\\n`,
      ),
    );
    assert.match(r.stdout, new RegExp(`\\(this certificate\\)\\n\\s+key sha256 ${leafKey}\\n`));
    const j = JSON.parse(lanyard(dir, 'svid', 'inspect', '--json', 'delegated.pem').stdout) as {
      context: { delegation: { binding: { childKeySha256: string } }[] };
    };
    assert.equal(j.context.delegation[0]!.binding.childKeySha256, leafKey);
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
    // The bundle names other.org, so the example.org SVID is refused for its trust domain first.
    assert.equal(j.code, 'ERR_WRONG_TRUST_DOMAIN');
    // Told to treat other.org's CA as example.org's, the path is built (both dev roots share a subject
    // name) and the signature check is what fails.
    const forced = lanyard(
      dir,
      'svid',
      'verify',
      '--chain',
      'w/svid.pem',
      '--bundle',
      'other/ca.pem',
      '--trust-domain',
      'example.org',
      '--json',
    );
    assert.equal(forced.status, 1);
    const code = (JSON.parse(forced.stdout) as { code: string }).code;
    assert.ok(['ERR_UNKNOWN_AUTHORITY', 'ERR_SIGNATURE_INVALID'].includes(code), code);
  });

  describe('the trust domain comes from the bundle, never from the SVID', () => {
    before(() => {
      // A leaf claiming other.org, signed by example.org's CA: the dev mint refuses it, so forge it directly.
      const ca = loadDevCa(join(dir, 'ca'));
      const now = Date.now();
      const evil = makeLeaf(
        'spiffe://other.org/agent/evil',
        {
          cert: ca.cert,
          key: { privateKey: ca.key, publicKey: createPublicKey(ca.key) },
        },
        { notBefore: new Date(now - 60_000), notAfter: new Date(now + HOUR) },
      );
      writeFileSync(join(dir, 'evil.pem'), encodePem('CERTIFICATE', evil.cert.der));
      const exampleOrg = X509Bundle.fromPem(
        TrustDomain.parse('example.org'),
        readFileSync(join(dir, 'ca', 'ca.pem'), 'utf8'),
      );
      writeFileSync(join(dir, 'example.jwks'), JSON.stringify(toSpiffeBundle(exampleOrg)));
      writeFileSync(
        join(dir, 'two-domains.pem'),
        readFileSync(join(dir, 'ca', 'ca.pem'), 'utf8') + readFileSync(join(dir, 'other', 'ca.pem'), 'utf8'),
      );
      writeFileSync(join(dir, 'unnamed.pem'), encodePem('CERTIFICATE', makeRoot('x', { uris: [] }).cert.der));
      writeFileSync(join(dir, 'empty.jwks'), '{"keys":[]}');
    });

    for (const bundle of ['ca/ca.pem', 'example.jwks']) {
      it(`refuses a leaf claiming another trust domain, signed by example.org's CA (${bundle})`, () => {
        const r = lanyard(dir, 'svid', 'verify', '--chain', 'evil.pem', '--bundle', bundle, '--json');
        assert.equal(r.status, 1, r.stdout + r.stderr);
        const j = JSON.parse(r.stdout) as { valid: boolean; code: string; message: string };
        assert.equal(j.valid, false);
        assert.equal(j.code, 'ERR_WRONG_TRUST_DOMAIN');
        const text = lanyard(dir, 'svid', 'verify', '--chain', 'evil.pem', '--bundle', bundle);
        assert.equal(text.status, 1);
        assert.match(text.stdout, /^REJECTED: ERR_WRONG_TRUST_DOMAIN/);
        assert.doesNotMatch(text.stdout, /OK/);
      });

      it(`still accepts the genuine example.org SVID with ${bundle} and no --trust-domain`, () => {
        const r = lanyard(dir, 'svid', 'verify', '--chain', 'w/svid.pem', '--bundle', bundle);
        assert.equal(r.status, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /^OK: spiffe:\/\/example.org\/agent\/planner/);
      });
    }

    it('asks for --trust-domain (exit 2) when the bundle names several trust domains or none', () => {
      const two = lanyard(dir, 'svid', 'verify', '--chain', 'w/svid.pem', '--bundle', 'two-domains.pem');
      assert.equal(two.status, 2);
      assert.match(two.stderr, /several trust domains \(example.org, other.org\): pass --trust-domain/);
      const none = lanyard(dir, 'svid', 'verify', '--chain', 'w/svid.pem', '--bundle', 'unnamed.pem');
      assert.equal(none.status, 2);
      assert.match(none.stderr, /names no trust domain.*--trust-domain/);
      const empty = lanyard(dir, 'svid', 'verify', '--chain', 'w/svid.pem', '--bundle', 'empty.jwks');
      assert.equal(empty.status, 2);
      assert.match(empty.stderr, /--trust-domain/);
    });

    it('with --trust-domain, only CAs of that domain count: a mixed bundle passes, foreign CAs and an empty JWKS refuse', () => {
      const args = ['svid', 'verify', '--chain', 'w/svid.pem', '--trust-domain', 'example.org', '--bundle'];
      assert.equal(lanyard(dir, ...args, 'two-domains.pem').status, 0);
      const empty = lanyard(dir, ...args, 'empty.jwks', '--json');
      assert.equal(empty.status, 1);
      assert.equal((JSON.parse(empty.stdout) as { code: string }).code, 'ERR_UNKNOWN_AUTHORITY');
      const evil = lanyard(
        dir,
        'svid',
        'verify',
        '--chain',
        'evil.pem',
        '--trust-domain',
        'other.org',
        '--bundle',
        'ca/ca.pem',
      );
      assert.equal(evil.status, 1, "example.org's CA never vouches for other.org");
      assert.match(evil.stdout, /REJECTED: ERR_UNKNOWN_AUTHORITY/);
    });
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

  it('verify --json reports a CERTIFICATE block that is not a certificate as JSON, exit 1', () => {
    writeFileSync(
      join(dir, 'badcert.pem'),
      `-----BEGIN CERTIFICATE-----\n${Buffer.from('not a certificate').toString('base64')}\n-----END CERTIFICATE-----\n`,
    );
    const r = lanyard(dir, 'svid', 'verify', '--chain', 'badcert.pem', '--bundle', 'w/bundle.pem', '--json');
    assert.equal(r.status, 1, r.stderr);
    const j = JSON.parse(r.stdout) as { valid: boolean; code: string; message: string };
    assert.equal(j.valid, false);
    assert.match(j.code, /^ERR_/);
    assert.ok(j.message.length > 0);
  });

  it('--at refuses impossible dates, a missing zone and non-ISO text (exit 2), and honours offsets', function () {
    // Fourteen CLI processes in a row: on a loaded 2-core machine each start alone can take seconds.
    this.timeout(240_000);
    const verifyAt = (at: string) =>
      lanyard(dir, 'svid', 'verify', '--chain', 'w/svid.pem', '--bundle', 'w/bundle.pem', '--at', at);
    for (const bad of [
      '2026-11-31T04:30:00Z',
      '2026-02-30T00:00:00Z',
      '2026-02-29T00:00:00Z',
      '2026-11-30T24:00:00Z',
      '2026-11-30T04:60:00Z',
      '2026-11-30T04:30:00',
      '2026-11-30',
      '2026-11-30 04:30:00Z',
      'Mon, 30 Nov 2026 04:30:00 GMT',
      '1700000000',
      '2026-11-30T04:30:00+25:00',
    ]) {
      const r = verifyAt(bad);
      assert.equal(r.status, 2, `${bad}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /--at must be an ISO 8601 time/);
    }
    // The SVID lives an hour from mint; one hour and one minute later, written with a +02:00 offset, it has
    // expired, and 30 minutes later in -05:00 it has not.
    const zoned = (ms: number, offsetHours: number) => {
      const local = new Date(ms + offsetHours * HOUR).toISOString().slice(0, 19);
      const sign = offsetHours < 0 ? '-' : '+';
      return `${local}${sign}${String(Math.abs(offsetHours)).padStart(2, '0')}:00`;
    };
    assert.equal(verifyAt(zoned(Date.now() + 30 * 60_000, -5)).status, 0);
    assert.equal(verifyAt(zoned(Date.now() + 61 * 60_000, 2)).status, 1);
    assert.equal(
      verifyAt('2028-02-29T12:00:00.5Z').status,
      1,
      'a real leap day parses (and is after expiry)',
    );
  });

  it('malformed flag values are usage errors (exit 2) naming the flag', () => {
    const cases: [string[], RegExp][] = [
      [['ca', 'init', '--trust-domain', 'Example.org', '--out', 'bad-ca'], /--trust-domain/],
      [['svid', 'mint', '--ca', 'ca', '--id', 'SPIFFE://example.org/a', '--out', 'x'], /--id/],
      [['svid', 'mint', '--ca', 'nope', '--id', 'spiffe://example.org/a', '--out', 'x'], /--ca nope/],
      [['svid', 'mint', '--ca', 'w', '--id', 'spiffe://example.org/a', '--out', 'x'], /no ca\.pem/],
      [['svid', 'mint', '--ca', 'ca', '--id', 'spiffe://example.org/a', '--out', 'x', '--ttl', '0'], /--ttl/],
      [['ca', 'init', '--trust-domain', 'example.org', '--out', 'bad-ca', '--ttl', '-1d'], /--ttl/],
      [
        ['svid', 'verify', '--chain', 'w/svid.pem', '--bundle', 'w/bundle.pem', '--trust-domain', 'BAD'],
        /--trust-domain/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = lanyard(dir, ...args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stdout, /REJECTED/);
    }
    assert.throws(() => statSync(join(dir, 'bad-ca')), 'nothing written for a refused ca init');
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
