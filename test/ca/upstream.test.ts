import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadUpstreamAuthority, rotationTimes } from '../../src/ca';
import { ConfigError, ErrorCode } from '../../src/errors';
import { verifyX509Svid } from '../../src/verify';
import { ParsedCertificate } from '../../src/x509/certificate';
import { generateSigningKeyPair } from '../../src/x509/keys';
import { encodePem } from '../../src/x509/pem';
import { validateCertPath } from '../../src/verify/path-validation';
import { addSeconds, assertNoSecrets, DataDir, errorText, secretFragments, TD } from '../support/ca';
import { removeDir, tempDir } from '../support/tmp';
import { T0 } from '../support/clock';
import { expectRefusalAs } from '../support/refusal';
import { certPem, createCa, createOrgPki, type OrgLevel, type OrgPki } from '../support/pki';

let orgs = 0;

/**
 * An organisation PKI in `parent` for TD at T0: a root and, by default, one intermediate handed to Lanyard as
 * files; `levels` intermediates below the root, top first, otherwise.
 */
function makeOrg(parent: string, opts: { levels?: readonly OrgLevel[]; keyMode?: number } = {}): OrgPki {
  return createOrgPki(parent, `org-${++orgs}`, {
    trustDomain: TD,
    now: T0,
    ...(opts.levels !== undefined ? { levels: opts.levels } : {}),
    ...(opts.keyMode !== undefined ? { keyMode: opts.keyMode } : {}),
  });
}

describe('CaManager with an upstream authority', () => {
  let dir: string;
  let d: DataDir;
  beforeEach(() => {
    dir = tempDir('ca-upstream');
    d = new DataDir(join(dir, 'data'));
  });
  afterEach(async () => {
    await d.stop();
    removeDir(dir);
  });

  it('serves chains leaf -> Lanyard CA -> org intermediate that verify to the org root, the only bundle entry', async () => {
    const org = makeOrg(dir);
    const upstream = loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 });
    const { ca, store } = await d.start({ upstream });

    assert.deepEqual(
      ca.bundle().x509Authorities.map((c) => c.sha256Hex),
      [org.root.cert.sha256Hex],
    );
    assert.equal(ca.bundle().sequence, 1);
    const [a] = ca.authorities();
    assert.equal(a!.selfSigned, false);
    const records = await store.listCaAuthorities();
    assert.deepEqual(
      records[0]!.upstreamChainDer.map((b) => b.toString('hex')),
      [Buffer.from(org.signer.cert.der).toString('hex')],
    );

    const svid = await ca.signX509Svid({
      spiffeId: `spiffe://${TD}/agent`,
      publicKey: generateSigningKeyPair().publicKey,
      ttlSeconds: 300,
      now: T0,
    });
    assert.equal(svid.chain.length, 3);
    const lanyardCa = ParsedCertificate.fromDer(svid.chain[1]!);
    assert.ok(lanyardCa.isSignedBy(org.signer.cert));
    assert.deepEqual(svid.chain[2], org.signer.cert.der);
    const verified = verifyX509Svid(svid.chain, ca.bundle(), { at: T0, cache: null });
    assert.deepEqual(
      verified.chain.map((c) => c.sha256Hex),
      [
        ParsedCertificate.fromDer(svid.chain[0]!).sha256Hex,
        lanyardCa.sha256Hex,
        org.signer.cert.sha256Hex,
        org.root.cert.sha256Hex,
      ],
    );
    // The server's own SVID chains the same way.
    assert.equal(ca.serverSvid().chain.length, 3);
    verifyX509Svid(ca.serverSvid().chain, ca.bundle(), { at: T0, cache: null });
  });

  it('rotates its own CA under the same intermediate without touching the bundle', async () => {
    const org = makeOrg(dir);
    const { ca } = await d.start({
      upstream: loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 }),
    });
    const t = rotationTimes(ca.authorities()[0]!);
    const before = await ca.signX509Svid({
      spiffeId: `spiffe://${TD}/agent`,
      publicKey: generateSigningKeyPair().publicKey,
      ttlSeconds: 3600,
      now: addSeconds(t.activateAt, -1),
    });
    await ca.tick(t.prepareAt);
    await ca.tick(t.activateAt);
    assert.deepEqual(
      ca.authorities().map((a) => a.state),
      ['old', 'active'],
    );
    assert.equal(ca.bundle().sequence, 1, 'the org root did not change');
    verifyX509Svid(before.chain, ca.bundle(), { at: t.activateAt, cache: null });
  });

  it('restarts on the same data dir with the same CA', async () => {
    const org = makeOrg(dir);
    const upstream = loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 });
    const first = (await d.start({ upstream })).ca.authorities();
    await d.stop();
    const { ca } = await d.start({
      upstream: loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 }),
    });
    assert.deepEqual(
      ca.authorities().map((a) => a.id),
      first.map((a) => a.id),
    );
    assert.equal(ca.bundle().sequence, 1);
  });

  it('switching a self-signed data dir to upstream retires the self-signed CA but keeps its root until it expires', async () => {
    const { ca: selfSigned } = await d.start();
    const oldRoot = selfSigned.authorities()[0]!;
    const old = await selfSigned.signX509Svid({
      spiffeId: `spiffe://${TD}/agent`,
      publicKey: generateSigningKeyPair().publicKey,
      ttlSeconds: 300,
      now: T0,
    });
    await d.stop();
    const org = makeOrg(dir);
    const { ca } = await d.start({
      upstream: loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 }),
    });
    assert.deepEqual(
      ca.authorities().map((a) => [a.selfSigned, a.state]),
      [
        [true, 'old'],
        [false, 'active'],
      ],
    );
    assert.deepEqual(
      new Set(ca.bundle().x509Authorities.map((c) => c.sha256Hex)),
      new Set([org.root.cert.sha256Hex, oldRoot.sha256Hex]),
    );
    verifyX509Svid(old.chain, ca.bundle(), { at: T0, cache: null });
    await ca.tick(oldRoot.notAfter);
    assert.deepEqual(
      ca.bundle().x509Authorities.map((c) => c.sha256Hex),
      [org.root.cert.sha256Hex],
    );
  });

  describe('accepts deeper org chains whose every constraint leaves room for Lanyard’s CA', () => {
    for (const [what, levels] of [
      ['regional pathLen 2 above a signer with pathLen 1', [{ pathLen: 2 }, { pathLen: 1 }]],
      ['regional pathLen 2 above a signer with no pathLen', [{ pathLen: 2 }, {}]],
      [
        'name constraints permitting the trust domain',
        [{ nameConstraints: { permitted: [{ kind: 'uri', value: TD }] } }, {}],
      ],
      ['five org intermediates, the most the default depth allows', [{}, {}, {}, {}, {}]],
    ] as [string, OrgLevel[]][]) {
      it(`${what}: SVIDs of the CA it signs verify to the org root`, async () => {
        const org = makeOrg(dir, { levels });
        const { ca } = await d.start({
          upstream: loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 }),
        });
        const svid = await ca.signX509Svid({
          spiffeId: `spiffe://${TD}/agent`,
          publicKey: generateSigningKeyPair().publicKey,
          ttlSeconds: 300,
          now: T0,
        });
        assert.equal(svid.chain.length, 2 + levels.length);
        const verified = verifyX509Svid(svid.chain, ca.bundle(), { at: T0, cache: null });
        assert.equal(verified.chain[verified.chain.length - 1]!.sha256Hex, org.root.cert.sha256Hex);
      });
    }
  });

  describe('loadUpstreamAuthority refuses bad files with ConfigError naming the file', () => {
    it('an intermediate that may not sign a CA (pathLenConstraint 0)', () => {
      const org = makeOrg(dir, { levels: [{ pathLen: 0 }] });
      expectRefusalAs(
        () => loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 }),
        ConfigError,
        ErrorCode.INVALID_CONFIG,
        /int\.pem: the upstream CA has pathLenConstraint 0/,
      );
    });

    it('a key that is not the certificate’s, a key file open to others, a bundle of another root', () => {
      const org = makeOrg(dir);
      const other = generateSigningKeyPair('ec-p256').privateKey;
      writeFileSync(org.files.keyFile, other.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      expectRefusalAs(
        () => loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 }),
        ConfigError,
        ErrorCode.INVALID_CONFIG,
        /int\.key is not the key of the first certificate in .*int\.pem/,
      );

      const open = makeOrg(dir, { keyMode: 0o644 });
      expectRefusalAs(
        () => loadUpstreamAuthority(open.files, { trustDomain: TD, now: T0 }),
        ConfigError,
        ErrorCode.INVALID_CONFIG,
        /int\.key is accessible by group or others \(mode 644\)/,
      );

      const a = makeOrg(dir);
      writeFileSync(a.files.bundleFile, certPem(createCa(TD).cert));
      expectRefusalAs(
        () => loadUpstreamAuthority(a.files, { trustDomain: TD, now: T0 }),
        ConfigError,
        ErrorCode.INVALID_CONFIG,
        /int\.pem does not chain to a root in .*root\.pem: ERR_UNKNOWN_AUTHORITY/,
      );
    });

    it('a CA further up whose pathLenConstraint leaves no room for Lanyard’s CA, naming the field', () => {
      // root -> regional (pathLen 1) -> signer (no pathLen): the chain itself is valid, but Lanyard's CA below
      // the signer would be a second intermediate under the regional CA.
      const org = makeOrg(dir, { levels: [{ pathLen: 1 }, {}] });
      validateCertPath(org.chain, [org.root.cert], { at: T0 });
      const regional = org.chain[1]!;
      expectRefusalAs(
        () =>
          loadUpstreamAuthority(org.files, {
            trustDomain: TD,
            now: T0,
            fields: { certFile: 'ca.upstream.cert_file', keyFile: 'k', bundleFile: 'b' },
          }),
        ConfigError,
        ErrorCode.INVALID_CONFIG,
        new RegExp(
          `^ca\\.upstream\\.cert_file: .*int\\.pem cannot sign Lanyard's CA: .*root\\.pem: ` +
            `ERR_PATH_LEN_EXCEEDED: .*serial ${regional.serialHex}\\) allows 1 intermediate CA\\(s\\) below it, the path has 2`,
        ),
      );
    });

    it('name constraints upstream that exclude the trust domain Lanyard’s CA names', () => {
      const org = makeOrg(dir, {
        levels: [{}, { nameConstraints: { permitted: [{ kind: 'uri', value: 'other.example' }] } }],
      });
      validateCertPath(org.chain, [org.root.cert], { at: T0 });
      expectRefusalAs(
        () => loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 }),
        ConfigError,
        ErrorCode.INVALID_CONFIG,
        /int\.pem cannot sign Lanyard's CA: .*ERR_NAME_CONSTRAINTS_VIOLATED: .*spiffe:\/\/example\.org/,
      );
      // The check is against the configured trust domain: the one the constraints permit passes.
      loadUpstreamAuthority(org.files, { trustDomain: 'other.example', now: T0 });
    });

    it('a chain too deep for an SVID below Lanyard’s CA to fit the verifier’s depth', () => {
      // Default depth 8 = leaf + Lanyard CA + org intermediates + root: 6 org intermediates are one too many.
      const org = makeOrg(dir, { levels: [{}, {}, {}, {}, {}, {}] });
      validateCertPath(org.chain, [org.root.cert], { at: T0 });
      expectRefusalAs(
        () => loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 }),
        ConfigError,
        ErrorCode.INVALID_CONFIG,
        /int\.pem cannot sign Lanyard's CA: .*ERR_CHAIN_TOO_LONG/,
      );
    });

    it('an unreadable key, without quoting it', () => {
      const org = makeOrg(dir);
      const pem = org.signer.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      writeFileSync(org.files.keyFile, pem.slice(0, -60), { mode: 0o600 });
      let caught: unknown;
      try {
        loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 });
      } catch (e) {
        caught = e;
      }
      assert.ok(caught instanceof ConfigError);
      assert.match(caught.message, /int\.key is not an unencrypted PEM private key/);
      assertNoSecrets(errorText(caught), secretFragments([org.signer.key.privateKey]), 'error');
    });

    it('a private key in the certificate file', () => {
      const org = makeOrg(dir);
      writeFileSync(
        org.files.certFile,
        encodePem('CERTIFICATE', org.signer.cert.der) +
          (org.signer.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string),
      );
      let caught: unknown;
      try {
        loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 });
      } catch (e) {
        caught = e;
      }
      assert.ok(caught instanceof ConfigError);
      assert.match(caught.message, /must not contain a private key/);
      assertNoSecrets(
        errorText(caught).replace('PRIVATE KEY', ''),
        secretFragments([org.signer.key.privateKey]).slice(1),
        'error',
      );
    });
  });
});
