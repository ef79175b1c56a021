import assert from 'node:assert/strict';
import { KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadUpstreamAuthority, rotationTimes, UpstreamAuthorityFiles } from '../../src/ca';
import { ConfigError, ErrorCode } from '../../src/errors';
import { verifyX509Svid } from '../../src/verify';
import { ParsedCertificate } from '../../src/x509/certificate';
import { generateSigningKeyPair } from '../../src/x509/keys';
import { encodePem } from '../../src/x509/pem';
import { validateCertPath } from '../../src/verify/path-validation';
import { createIntermediateCa, createRootCa, type NameConstraintsSpec } from '../../src/x509/profiles';
import { addSeconds, assertNoSecrets, DataDir, errorText, secretFragments, TD } from '../support/ca';
import { removeDir, tempDir } from '../support/tmp';
import { T0 } from '../support/clock';
import { expectRefusalAs } from '../support/refusal';

interface Org {
  root: ParsedCertificate;
  intermediate: ParsedCertificate;
  intermediateKey: KeyObject;
  files: UpstreamAuthorityFiles;
}

/** An organisation PKI: a root (10 years) and an intermediate (1 year) handed to Lanyard as files. */
function makeOrg(parent: string, opts: { intermediatePathLen?: number; keyMode?: number } = {}): Org {
  const dir = mkdtempSync(join(parent, 'org-'));
  const rootKey = generateSigningKeyPair('ec-p384').privateKey;
  const root = createRootCa({
    trustDomain: TD,
    key: rootKey,
    ttlSeconds: 10 * 365 * 86400,
    now: addSeconds(T0, -86400),
    subject: { organization: 'Example Org', commonName: 'Example Org Root' },
  });
  const { privateKey: intermediateKey } = generateSigningKeyPair('ec-p256');
  const intermediate = createIntermediateCa({
    trustDomain: TD,
    publicKey: intermediateKey,
    issuer: { cert: root.cert, key: rootKey },
    ttlSeconds: 365 * 86400,
    now: addSeconds(T0, -3600),
    subject: { organization: 'Example Org', commonName: 'Example Org Workload CA' },
    ...(opts.intermediatePathLen !== undefined ? { pathLen: opts.intermediatePathLen } : {}),
  });
  const files = {
    certFile: join(dir, 'upstream.pem'),
    keyFile: join(dir, 'upstream_key.pem'),
    bundleFile: join(dir, 'org_root.pem'),
  };
  writeFileSync(files.certFile, encodePem('CERTIFICATE', intermediate.der));
  writeFileSync(files.keyFile, intermediateKey.export({ type: 'pkcs8', format: 'pem' }), {
    mode: opts.keyMode ?? 0o600,
  });
  writeFileSync(files.bundleFile, encodePem('CERTIFICATE', root.der));
  return { root: root.cert, intermediate: intermediate.cert, intermediateKey, files };
}

interface OrgLevel {
  pathLen?: number;
  nameConstraints?: NameConstraintsSpec;
}

/**
 * An organisation PKI with `levels.length` intermediates below its root, top first; the last one (the signer)
 * is handed to Lanyard, and cert_file holds the signer first, then the ones above it, as docs/operator/ca.md asks.
 */
function makeChainOrg(
  parent: string,
  levels: readonly OrgLevel[],
): { root: ParsedCertificate; chain: ParsedCertificate[]; files: UpstreamAuthorityFiles } {
  const dir = mkdtempSync(join(parent, 'org-'));
  const rootKey = generateSigningKeyPair('ec-p256').privateKey;
  const root = createRootCa({
    trustDomain: TD,
    key: rootKey,
    ttlSeconds: 10 * 365 * 86400,
    now: addSeconds(T0, -86400),
    subject: { organization: 'Example Org', commonName: 'Example Org Root' },
  }).cert;
  let issuer = { cert: root, key: rootKey };
  const topDown: ParsedCertificate[] = [];
  levels.forEach((level, i) => {
    const { privateKey } = generateSigningKeyPair('ec-p256');
    const cert = createIntermediateCa({
      trustDomain: TD,
      publicKey: privateKey,
      issuer,
      ttlSeconds: 365 * 86400,
      now: addSeconds(T0, -3600),
      subject: { organization: 'Example Org', commonName: `Example Org CA level ${i + 1}` },
      ...(level.pathLen !== undefined ? { pathLen: level.pathLen } : {}),
      ...(level.nameConstraints !== undefined ? { nameConstraints: level.nameConstraints } : {}),
    }).cert;
    topDown.push(cert);
    issuer = { cert, key: privateKey };
  });
  const chain = topDown.reverse();
  const files = {
    certFile: join(dir, 'upstream.pem'),
    keyFile: join(dir, 'upstream_key.pem'),
    bundleFile: join(dir, 'org_root.pem'),
  };
  writeFileSync(files.certFile, chain.map((c) => encodePem('CERTIFICATE', c.der)).join(''));
  writeFileSync(files.keyFile, issuer.key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(files.bundleFile, encodePem('CERTIFICATE', root.der));
  return { root, chain, files };
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
      [org.root.sha256Hex],
    );
    assert.equal(ca.bundle().sequence, 1);
    const [a] = ca.authorities();
    assert.equal(a!.selfSigned, false);
    const records = await store.listCaAuthorities();
    assert.deepEqual(
      records[0]!.upstreamChainDer.map((b) => b.toString('hex')),
      [Buffer.from(org.intermediate.der).toString('hex')],
    );

    const svid = await ca.signX509Svid({
      spiffeId: `spiffe://${TD}/agent`,
      publicKey: generateSigningKeyPair().publicKey,
      ttlSeconds: 300,
      now: T0,
    });
    assert.equal(svid.chain.length, 3);
    const lanyardCa = ParsedCertificate.fromDer(svid.chain[1]!);
    assert.ok(lanyardCa.isSignedBy(org.intermediate));
    assert.deepEqual(svid.chain[2], org.intermediate.der);
    const verified = verifyX509Svid(svid.chain, ca.bundle(), { at: T0, cache: null });
    assert.deepEqual(
      verified.chain.map((c) => c.sha256Hex),
      [svid.cert.sha256Hex, lanyardCa.sha256Hex, org.intermediate.sha256Hex, org.root.sha256Hex],
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
      new Set([org.root.sha256Hex, oldRoot.sha256Hex]),
    );
    verifyX509Svid(old.chain, ca.bundle(), { at: T0, cache: null });
    await ca.tick(oldRoot.notAfter);
    assert.deepEqual(
      ca.bundle().x509Authorities.map((c) => c.sha256Hex),
      [org.root.sha256Hex],
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
        const org = makeChainOrg(dir, levels);
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
        assert.equal(verified.chain[verified.chain.length - 1]!.sha256Hex, org.root.sha256Hex);
      });
    }
  });

  describe('loadUpstreamAuthority refuses bad files with ConfigError naming the file', () => {
    it('an intermediate that may not sign a CA (pathLenConstraint 0)', () => {
      const org = makeOrg(dir, { intermediatePathLen: 0 });
      expectRefusalAs(
        () => loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 }),
        ConfigError,
        ErrorCode.INVALID_CONFIG,
        /upstream\.pem: the upstream CA has pathLenConstraint 0/,
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
        /upstream_key\.pem is not the key of the first certificate in .*upstream\.pem/,
      );

      const open = makeOrg(dir, { keyMode: 0o644 });
      expectRefusalAs(
        () => loadUpstreamAuthority(open.files, { trustDomain: TD, now: T0 }),
        ConfigError,
        ErrorCode.INVALID_CONFIG,
        /upstream_key\.pem is accessible by group or others \(mode 644\)/,
      );

      const a = makeOrg(dir);
      const foreignRoot = createRootCa({
        trustDomain: TD,
        key: generateSigningKeyPair().privateKey,
        ttlSeconds: 86400,
      });
      writeFileSync(a.files.bundleFile, encodePem('CERTIFICATE', foreignRoot.der));
      expectRefusalAs(
        () => loadUpstreamAuthority(a.files, { trustDomain: TD, now: T0 }),
        ConfigError,
        ErrorCode.INVALID_CONFIG,
        /upstream\.pem does not chain to a root in .*org_root\.pem: ERR_UNKNOWN_AUTHORITY/,
      );
    });

    it('a CA further up whose pathLenConstraint leaves no room for Lanyard’s CA, naming the field', () => {
      // root -> regional (pathLen 1) -> signer (no pathLen): the chain itself is valid, but Lanyard's CA below
      // the signer would be a second intermediate under the regional CA.
      const org = makeChainOrg(dir, [{ pathLen: 1 }, {}]);
      validateCertPath(org.chain, [org.root], { at: T0 });
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
          `^ca\\.upstream\\.cert_file: .*upstream\\.pem cannot sign Lanyard's CA: .*org_root\\.pem: ` +
            `ERR_PATH_LEN_EXCEEDED: .*serial ${regional.serialHex}\\) allows 1 intermediate CA\\(s\\) below it, the path has 2`,
        ),
      );
    });

    it('name constraints upstream that exclude the trust domain Lanyard’s CA names', () => {
      const org = makeChainOrg(dir, [
        {},
        { nameConstraints: { permitted: [{ kind: 'uri', value: 'other.example' }] } },
      ]);
      validateCertPath(org.chain, [org.root], { at: T0 });
      expectRefusalAs(
        () => loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 }),
        ConfigError,
        ErrorCode.INVALID_CONFIG,
        /upstream\.pem cannot sign Lanyard's CA: .*ERR_NAME_CONSTRAINTS_VIOLATED: .*spiffe:\/\/example\.org/,
      );
      // The check is against the configured trust domain: the one the constraints permit passes.
      loadUpstreamAuthority(org.files, { trustDomain: 'other.example', now: T0 });
    });

    it('a chain too deep for an SVID below Lanyard’s CA to fit the verifier’s depth', () => {
      // Default depth 8 = leaf + Lanyard CA + org intermediates + root: 6 org intermediates are one too many.
      const org = makeChainOrg(dir, [{}, {}, {}, {}, {}, {}]);
      validateCertPath(org.chain, [org.root], { at: T0 });
      expectRefusalAs(
        () => loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 }),
        ConfigError,
        ErrorCode.INVALID_CONFIG,
        /upstream\.pem cannot sign Lanyard's CA: .*ERR_CHAIN_TOO_LONG/,
      );
    });

    it('an unreadable key, without quoting it', () => {
      const org = makeOrg(dir);
      const pem = org.intermediateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      writeFileSync(org.files.keyFile, pem.slice(0, -60), { mode: 0o600 });
      let caught: unknown;
      try {
        loadUpstreamAuthority(org.files, { trustDomain: TD, now: T0 });
      } catch (e) {
        caught = e;
      }
      assert.ok(caught instanceof ConfigError);
      assert.match(caught.message, /upstream_key\.pem is not an unencrypted PEM private key/);
      assertNoSecrets(errorText(caught), secretFragments([org.intermediateKey]), 'error');
    });

    it('a private key in the certificate file', () => {
      const org = makeOrg(dir);
      writeFileSync(
        org.files.certFile,
        encodePem('CERTIFICATE', org.intermediate.der) +
          (org.intermediateKey.export({ type: 'pkcs8', format: 'pem' }) as string),
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
        secretFragments([org.intermediateKey]).slice(1),
        'error',
      );
    });
  });
});
