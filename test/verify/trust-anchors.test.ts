/**
 * Trust anchors are a name and a key (RFC 5280 §6.1.1 (d)): a bundle root that is an X.509 v1 certificate, or a
 * v3 root without keyUsage, anchors a path, as go-spiffe and Go accept them. Every other certificate of the path
 * keeps every check. The certificates are made by the openssl CLI, as an organisation's older roots were.
 */
import assert from 'node:assert/strict';
import { parseSpiffeBundle, X509Bundle } from '../../src/bundle';
import { ErrorCode } from '../../src/errors';
import { TrustDomain } from '../../src/spiffe';
import { validateCertPath, verifyX509Svid } from '../../src/verify';
import { OpensslCert, OpensslPki } from '../support/pki-openssl';
import { removeDir, tempDir } from '../support/tmp';
import { expectRefusal } from '../support/refusal';

const TD = TrustDomain.parse('example.org');
const WORKLOAD = 'spiffe://example.org/workload';

/** OpenSSL starts validity at the second of issuance: judge a minute later. */
function atOf(leaf: OpensslCert): Date {
  return new Date(leaf.cert.notBefore.getTime() + 60_000);
}

function verify(chain: OpensslCert[], ...roots: OpensslCert[]) {
  return verifyX509Svid(
    chain.map((c) => c.cert),
    X509Bundle.fromPem(TD, roots.map((r) => r.pem).join('')),
    { at: atOf(chain[0]!), cache: null },
  );
}

describe('trust anchors are a name and a key (RFC 5280 §6.1.1 (d))', function () {
  this.timeout(60_000);
  let dir: string;
  let pki: OpensslPki;
  let v1Root: OpensslCert;
  let root: OpensslCert;
  before(() => {
    dir = tempDir('trust-anchors');
    pki = new OpensslPki(dir);
    v1Root = pki.root('v1-root', 'v1', 'ec-p256');
    root = pki.root('root', 'root_ca', 'ec-p256');
  });
  after(() => removeDir(dir));

  describe('accepted as anchors', () => {
    it('an X.509 v1 root: the bundle loads it, and it anchors an SVID it issued', () => {
      assert.equal(v1Root.cert.version, 1);
      assert.equal(v1Root.cert.basicConstraints, undefined);
      assert.deepEqual(v1Root.cert.extensions, []);
      const leaf = pki.issue('svid-under-v1-root', v1Root, 'svid', 'ec-p256');
      // Without an SKI on the root, OpenSSL's default AKI is the root's name and serial, no key identifier.
      assert.equal(leaf.cert.authorityKeyId, undefined);
      const svid = verify([leaf], v1Root);
      assert.equal(svid.id.toString(), WORKLOAD);
      assert.equal(svid.chain[1]?.sha256Hex, v1Root.cert.sha256Hex);
    });

    it('an X.509 v1 root above a v3 intermediate', () => {
      const int = pki.issue('int-under-v1-root', v1Root, 'intermediate_ca_default_aki', 'ec-p256');
      const leaf = pki.issue('svid-under-int-under-v1', int, 'svid', 'ec-p256');
      assert.equal(verify([leaf, int], v1Root).chain.length, 3);
      const { path } = validateCertPath([leaf.cert, int.cert], [v1Root.cert], { at: atOf(leaf) });
      assert.deepEqual(
        path.map((c) => c.version),
        [3, 3, 1],
      );
    });

    it('an X.509 v1 root in a SPIFFE bundle (JWK x5c)', () => {
      const bundle = parseSpiffeBundle(TD, {
        keys: [{ kty: 'EC', use: 'x509-svid', x5c: [Buffer.from(v1Root.cert.der).toString('base64')] }],
      });
      assert.equal(bundle.x509Authorities[0]?.version, 1);
      const leaf = pki.issue('svid-under-v1-root-jwks', v1Root, 'svid', 'ec-p256');
      const svid = verifyX509Svid([leaf.cert], bundle, { at: atOf(leaf), cache: null });
      assert.equal(svid.id.toString(), WORKLOAD);
    });

    it('a v3 root without keyUsage', () => {
      const bare = pki.root('root-without-key-usage', 'root_ca_without_key_usage', 'ec-p256');
      assert.equal(bare.cert.keyUsage, undefined);
      const leaf = pki.issue('svid-under-bare-root', bare, 'svid', 'ec-p256');
      assert.equal(verify([leaf], bare).id.toString(), WORKLOAD);
    });
  });

  describe('refused: what a v3 anchor states is held to', () => {
    it('a v3 root without basicConstraints (RFC 5280 §4.2.1.9: its key must not verify certificates)', () => {
      const noBc = pki.root('root-without-bc', 'root_ca_without_basic_constraints', 'ec-p256');
      const leaf = pki.issue('svid-under-no-bc-root', noBc, 'svid', 'ec-p256');
      expectRefusal(() => verify([leaf], noBc), ErrorCode.NOT_A_CA, /basicConstraints/);
    });
  });

  describe('refused: every certificate below the anchor keeps every check', () => {
    it('a v1 intermediate (it cannot state that it is a CA)', () => {
      const int = pki.issue('v1-int', root, 'v1', 'ec-p256');
      assert.equal(int.cert.version, 1);
      const leaf = pki.issue('svid-under-v1-int', int, 'svid', 'ec-p256');
      expectRefusal(() => verify([leaf, int], root), ErrorCode.NOT_A_CA, /X\.509 v1 certificate/);
      expectRefusal(
        () => validateCertPath([leaf.cert, int.cert], [root.cert], { at: atOf(leaf) }),
        ErrorCode.NOT_A_CA,
      );
    });

    it('a v1 intermediate under a v1 root', () => {
      const int = pki.issue('v1-int-under-v1', v1Root, 'v1', 'ec-p256');
      const leaf = pki.issue('svid-under-v1-v1', int, 'svid', 'ec-p256');
      expectRefusal(() => verify([leaf, int], v1Root), ErrorCode.NOT_A_CA, /X\.509 v1 certificate/);
    });

    it('an intermediate without keyUsage (X509-SVID §4.3: keyCertSign on every signing certificate)', () => {
      const int = pki.issue('int-without-ku', root, 'intermediate_ca_without_key_usage', 'ec-p256');
      assert.equal(int.cert.keyUsage, undefined);
      const leaf = pki.issue('svid-under-int-without-ku', int, 'svid', 'ec-p256');
      expectRefusal(
        () => verify([leaf, int], root),
        ErrorCode.KEY_USAGE_INVALID,
        /without a keyUsage extension/,
      );
      // The same intermediate as the trust anchor itself is a name and a key, and is accepted.
      assert.equal(verify([leaf], int).chain.length, 2);
    });

    it('a v1 leaf', () => {
      const leaf = pki.issue('v1-leaf', root, 'v1', 'ec-p256');
      expectRefusal(
        () => validateCertPath([leaf.cert], [root.cert], { at: atOf(leaf) }),
        ErrorCode.CERT_PROFILE_INVALID,
        /X\.509 v1 certificate; only a trust anchor may be v1/,
      );
    });

    it('a leaf whose EC key spells out its curve parameters (RFC 5480 §2.1.1; CVE-2020-0601)', () => {
      const leaf = pki.issue('svid-explicit-curve', root, 'svid', 'ec-p256-explicit');
      assert.equal(leaf.cert.ecCurveEncoding, 'specified');
      expectRefusal(() => verify([leaf], root), ErrorCode.UNSUPPORTED_KEY, /explicit curve parameters/);
    });

    it('a root whose EC key spells out its curve parameters', () => {
      const explicitRoot = pki.root('root-explicit-curve', 'root_ca', 'ec-p256-explicit');
      const leaf = pki.issue('svid-under-explicit-root', explicitRoot, 'svid', 'ec-p256');
      expectRefusal(
        () => verify([leaf], explicitRoot),
        ErrorCode.UNSUPPORTED_KEY,
        /explicit curve parameters/,
      );
    });
  });
});
