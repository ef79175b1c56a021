import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BUNDLE_FILE,
  CA_CERT_FILE,
  CA_KEY_FILE,
  devCaBundle,
  initDevCa,
  loadDevCa,
  mintSvid,
  SVID_FILE,
  SVID_KEY_FILE,
  writeSvidFiles,
} from '../../src/ca/dev-ca';
import { AlreadyExistsError, ErrorCode, InvalidSpiffeIdError, LanyardError } from '../../src/errors';
import { ParsedCertificate } from '../../src/x509/certificate';
import { loadX509Svid } from '../../src/svid';
import { encodeAgentContext } from '../../src/x509/agent-context';
import { decodePemBlocks, encodePem } from '../../src/x509/pem';
import { baseContext } from '../support/pki';
import { openssl } from '../support/x509';
import { removeDir, tempDir } from '../support/tmp';
import { expectRefusalAs } from '../support/refusal';

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

describe('dev CA', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('dev-ca');
  });
  afterEach(() => removeDir(dir));

  describe('init', () => {
    it('writes ca.pem (0644) and a PKCS#8 ca_key.pem (0600), and nothing else', () => {
      const caDir = join(dir, 'ca');
      const ca = initDevCa({ trustDomain: 'example.org', dir: caDir });
      assert.deepEqual(readdirSync(caDir).sort(), [CA_CERT_FILE, CA_KEY_FILE].sort(), 'no temp files left');
      assert.equal(mode(join(caDir, CA_CERT_FILE)), 0o644);
      assert.equal(mode(join(caDir, CA_KEY_FILE)), 0o600);
      assert.equal(mode(caDir), 0o700);
      const keyPem = readFileSync(join(caDir, CA_KEY_FILE), 'utf8');
      assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
      const cert = ParsedCertificate.fromDer(
        decodePemBlocks(readFileSync(join(caDir, CA_CERT_FILE), 'utf8'), 'CERTIFICATE')[0]!,
      );
      assert.ok(cert.isCa);
      assert.deepEqual([...cert.uriSans], ['spiffe://example.org']);
      assert.equal(ca.trustDomain, 'example.org');
      assert.ok(cert.publicKey.equals(ca.cert.publicKey));
    });

    it('honours keyAlgorithm and ttlSeconds', () => {
      const now = new Date('2031-01-01T00:00:00Z');
      const ca = initDevCa({
        trustDomain: 'example.org',
        dir,
        keyAlgorithm: 'ed25519',
        ttlSeconds: 3600,
        now,
      });
      assert.equal(ca.key.asymmetricKeyType, 'ed25519');
      assert.equal(ca.cert.notAfter.getTime(), now.getTime() + 3600_000);
    });

    it('refuses to overwrite an existing CA unless forced', () => {
      const first = initDevCa({ trustDomain: 'example.org', dir });
      const before = readFileSync(join(dir, CA_KEY_FILE), 'utf8');
      expectRefusalAs(
        () => initDevCa({ trustDomain: 'example.org', dir }),
        AlreadyExistsError,
        ErrorCode.ALREADY_EXISTS,
        /already exists/,
      );
      assert.equal(readFileSync(join(dir, CA_KEY_FILE), 'utf8'), before, 'the old key is untouched');

      const second = initDevCa({ trustDomain: 'example.org', dir, force: true });
      assert.notEqual(readFileSync(join(dir, CA_KEY_FILE), 'utf8'), before);
      assert.ok(!second.cert.publicKey.equals(first.cert.publicKey));
      assert.equal(mode(join(dir, CA_KEY_FILE)), 0o600);
      assert.ok(loadDevCa(dir).cert.publicKey.equals(second.cert.publicKey));
    });

    it('refuses when only a key file is present', () => {
      writeFileSync(join(dir, CA_KEY_FILE), 'stale', { mode: 0o600 });
      expectRefusalAs(
        () => initDevCa({ trustDomain: 'example.org', dir }),
        AlreadyExistsError,
        ErrorCode.ALREADY_EXISTS,
      );
    });

    it('refuses a bad trust domain before writing anything', () => {
      assert.throws(() => initDevCa({ trustDomain: 'Bad_Domain!', dir }), LanyardError);
      assert.deepEqual(readdirSync(dir), []);
    });
  });

  describe('load', () => {
    it('reloads what init wrote', () => {
      const ca = initDevCa({ trustDomain: 'example.org', dir, keyAlgorithm: 'ec-p384' });
      const loaded = loadDevCa(dir);
      assert.deepEqual(loaded.cert.der, ca.cert.der);
      assert.equal(loaded.trustDomain, 'example.org');
      assert.equal(loaded.keyFileInsecure, false);
      assert.ok(loaded.key.equals(ca.key));
    });

    it('refuses a key file readable by group or others unless allowed, and then flags it', () => {
      initDevCa({ trustDomain: 'example.org', dir });
      chmodSync(join(dir, CA_KEY_FILE), 0o640);
      expectRefusalAs(() => loadDevCa(dir), LanyardError, ErrorCode.INVALID_ARGUMENT, /chmod 600/);
      const loaded = loadDevCa(dir, { allowInsecureKeyFile: true });
      assert.equal(loaded.keyFileInsecure, true);
    });

    it('refuses a key that does not belong to the certificate', () => {
      initDevCa({ trustDomain: 'example.org', dir });
      const other = tempDir('dev-ca-other');
      try {
        initDevCa({ trustDomain: 'example.org', dir: other });
        writeFileSync(join(dir, CA_KEY_FILE), readFileSync(join(other, CA_KEY_FILE)), { mode: 0o600 });
        expectRefusalAs(() => loadDevCa(dir), LanyardError, ErrorCode.INVALID_ARGUMENT, /does not belong/);
      } finally {
        removeDir(other);
      }
    });

    it('never puts key material into an error', () => {
      initDevCa({ trustDomain: 'example.org', dir });
      const secret = 'MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg' + 'A'.repeat(40);
      writeFileSync(
        join(dir, CA_KEY_FILE),
        `-----BEGIN PRIVATE KEY-----\n${secret}\n-----END PRIVATE KEY-----\n`,
        {
          mode: 0o600,
        },
      );
      assert.throws(
        () => loadDevCa(dir),
        (e: unknown) => {
          assert.ok(e instanceof LanyardError);
          assert.equal(e.code, ErrorCode.INVALID_ARGUMENT);
          assert.ok(!e.message.includes(secret.slice(0, 20)));
          assert.equal(e.cause, undefined, 'no parser error carrying key bytes');
          return true;
        },
      );
    });

    it('reports missing files as ERR_IO', () => {
      expectRefusalAs(() => loadDevCa(join(dir, 'nope')), LanyardError, ErrorCode.IO);
    });
  });

  describe('mint', () => {
    it('mints an SVID chaining to the CA, with a fresh 0600 key, and writes svid.pem / svid_key.pem / bundle.pem', () => {
      const ca = initDevCa({ trustDomain: 'example.org', dir: join(dir, 'ca') });
      const context = baseContext({ sessionId: 'sess-1', scopes: ['docs:read'] });
      const svid = mintSvid(ca, {
        spiffeId: 'spiffe://example.org/agent/planner',
        agentContextDer: encodeAgentContext(context),
      });
      const leaf = svid.chain[0]!;
      assert.ok(leaf.isSignedBy(ca.cert));
      assert.equal(svid.id.toString(), 'spiffe://example.org/agent/planner');
      assert.deepEqual([...leaf.uriSans], ['spiffe://example.org/agent/planner']);
      assert.equal(svid.context?.sessionId, 'sess-1');
      const lifetime = leaf.notAfter.getTime() - leaf.notBefore.getTime();
      assert.ok(
        Math.abs(lifetime - 3610_000) <= 1000,
        `default TTL one hour plus the backdate, got ${lifetime}`,
      );
      const { certificates, key } = svid.marshal();
      assert.ok(createPrivateKey(key).asymmetricKeyType === 'ec');
      assert.ok(!key.includes(ca.key.export({ type: 'pkcs8', format: 'pem' }) as string));

      const out = join(dir, 'out');
      const files = writeSvidFiles(out, svid, devCaBundle(ca));
      assert.deepEqual(readdirSync(out).sort(), [BUNDLE_FILE, SVID_FILE, SVID_KEY_FILE].sort());
      assert.equal(mode(files.key), 0o600);
      assert.equal(mode(files.svid), 0o644);
      assert.equal(readFileSync(files.svid, 'utf8'), certificates);
      assert.equal(readFileSync(files.bundle, 'utf8'), encodePem('CERTIFICATE', ca.cert.der));
      // What was written reads back as the same SVID.
      const loaded = loadX509Svid(files.svid, files.key);
      assert.equal(loaded.chain[0]!.sha256Hex, leaf.sha256Hex);
      assert.deepEqual(loaded.context, svid.context);

      for (const purpose of ['sslclient', 'sslserver']) {
        const r = openssl([
          'verify',
          '-x509_strict',
          '-purpose',
          purpose,
          '-CAfile',
          files.bundle,
          files.svid,
        ]);
        assert.ok(r.ok, r.output);
      }
      // The key file holds the private half of the certified key.
      const pub = openssl(['pkey', '-in', files.key, '-pubout']);
      assert.equal(pub.output, leaf.publicKey.export({ type: 'spki', format: 'pem' }));

      // Minting again into the same directory replaces the files (rotation), keeping the key 0600.
      const again = mintSvid(ca, {
        spiffeId: 'spiffe://example.org/agent/planner',
        keyAlgorithm: 'rsa-2048',
      });
      writeSvidFiles(out, again, devCaBundle(ca));
      assert.equal(readFileSync(files.svid, 'utf8'), again.marshal().certificates);
      assert.equal(mode(files.key), 0o600);
      assert.deepEqual(readdirSync(out).sort(), [BUNDLE_FILE, SVID_FILE, SVID_KEY_FILE].sort());
    });

    it('mints an X509Svid: the context read under the OID it was written under, a broken one refused', () => {
      const ca = initDevCa({ trustDomain: 'example.org', dir: join(dir, 'ca-oid') });
      const agentContextDer = encodeAgentContext(baseContext({ sessionId: 'sess-2', scopes: [] }));
      const custom = '1.3.6.1.4.1.99999.8.1';
      const svid = mintSvid(ca, {
        spiffeId: 'spiffe://example.org/a',
        agentContextDer,
        agentContextOid: custom,
      });
      assert.equal(svid.context?.sessionId, 'sess-2');
      assert.ok(svid.chain[0]!.extension(custom) !== undefined);
      // A context that does not decode never becomes an SVID: the dev CA fails closed like any issuer.
      expectRefusalAs(
        () =>
          mintSvid(ca, {
            spiffeId: 'spiffe://example.org/a',
            agentContextDer: new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]),
          }),
        LanyardError,
        ErrorCode.MALFORMED_AGENT_CONTEXT,
      );
    });

    it('caps the TTL at the CA and refuses IDs of another trust domain or without a path', () => {
      const ca = initDevCa({ trustDomain: 'example.org', dir, ttlSeconds: 120 });
      const svid = mintSvid(ca, { spiffeId: 'spiffe://example.org/a', ttlSeconds: 3600 });
      assert.equal(svid.notAfter.getTime(), ca.cert.notAfter.getTime());
      expectRefusalAs(
        () => mintSvid(ca, { spiffeId: 'spiffe://other.org/a' }),
        LanyardError,
        ErrorCode.WRONG_TRUST_DOMAIN,
      );
      expectRefusalAs(
        () => mintSvid(ca, { spiffeId: 'spiffe://example.org' }),
        InvalidSpiffeIdError,
        ErrorCode.INVALID_SPIFFE_ID,
      );
    });
  });
});
