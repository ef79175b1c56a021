/**
 * Lanyard's verifier judges certificates that only OpenSSL made: X509-SVIDs written the way an OpenSSL user
 * writes them (config-file extensions, `openssl req -x509` roots, `openssl x509 -req` leaves) verify, and every
 * SVID rule is enforced on them with a stable error code. Where it helps to read the rule, OpenSSL's own
 * verdict (`openssl verify -x509_strict -purpose sslclient`) is asserted next to ours: the SPIFFE rules refuse
 * certificates that plain X.509 validation accepts, and the X.509 rules agree with OpenSSL's strict mode.
 */
import assert from 'node:assert/strict';
import { X509Bundle } from '../../../src/bundle';
import { ErrorCode, ErrorCodeValue } from '../../../src/errors';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid, VerifyX509SvidResult } from '../../../src/verify';
import { openssl } from '../../support/x509';
import { OpensslCert, OpensslKeyType, OpensslPki } from '../../support/pki-openssl';
import { removeDir, tempDir } from '../../support/tmp';
import { expectRefusal } from '../../support/refusal';

const TD = TrustDomain.parse('example.org');
const WORKLOAD = 'spiffe://example.org/workload';

/** OpenSSL starts validity at the second of issuance: judge a minute after the leaf was made. */
function shortlyAfterIssuance(leaf: OpensslCert): Date {
  return new Date(leaf.cert.notBefore.getTime() + 60_000);
}

function bundleOf(...roots: OpensslCert[]): X509Bundle {
  // Read from OpenSSL's PEM files, as an operator's bundle file would be.
  return X509Bundle.fromPem(TD, roots.map((r) => r.pem).join(''));
}

function verify(chain: OpensslCert[], bundle: X509Bundle, at?: Date): VerifyX509SvidResult {
  return verifyX509Svid(
    chain.map((c) => c.cert),
    bundle,
    { at: at ?? shortlyAfterIssuance(chain[0]!), cache: null },
  );
}

function opensslVerdict(leaf: OpensslCert, root: OpensslCert, intermediate?: OpensslCert): string {
  return openssl([
    'verify',
    '-x509_strict',
    '-purpose',
    'sslclient',
    '-attime',
    String(Math.floor(shortlyAfterIssuance(leaf).getTime() / 1000)),
    '-CAfile',
    root.certPath,
    ...(intermediate !== undefined ? ['-untrusted', intermediate.certPath] : []),
    leaf.certPath,
  ]).output;
}

describe('interop: Lanyard verifies X509-SVIDs minted by openssl req / openssl x509', () => {
  let dir: string;
  let pki: OpensslPki;
  let root: OpensslCert;
  before(() => {
    dir = tempDir('interop-ours-verifies-openssl');
    pki = new OpensslPki(dir);
    root = pki.root('root', 'root_ca', 'ec-p256');
  });
  after(() => removeDir(dir));

  describe('accepts', () => {
    const keyTypes: OpensslKeyType[] = ['ec-p256', 'ec-p384', 'rsa-2048', 'ed25519'];
    for (const keyType of keyTypes) {
      it(`an ${keyType} SVID signed by an ${keyType} root, both made by openssl`, () => {
        const typedRoot = pki.root(`root-${keyType}`, 'root_ca', keyType);
        const leaf = pki.issue(`svid-${keyType}`, typedRoot, 'svid', keyType);
        assert.match(opensslVerdict(leaf, typedRoot), /: OK\n/, 'OpenSSL accepts its own certificate');

        const svid = verify([leaf], bundleOf(typedRoot));
        assert.equal(svid.id.toString(), WORKLOAD);
        assert.equal(svid.context, undefined);
        assert.deepEqual(
          svid.chain.map((c) => c.sha256Hex),
          [leaf.cert.sha256Hex, typedRoot.cert.sha256Hex],
        );
      });
    }

    it('root -> intermediate (pathlen:0) -> SVID, the intermediate presented after the leaf', () => {
      const intermediate = pki.issue('intermediate', root, 'intermediate_ca', 'ec-p384');
      const leaf = pki.issue('svid-under-intermediate', intermediate, 'svid', 'ec-p256');
      assert.match(opensslVerdict(leaf, root, intermediate), /: OK\n/);
      const svid = verify([leaf, intermediate], bundleOf(root));
      assert.equal(svid.id.toString(), WORKLOAD);
      assert.equal(svid.chain.length, 3);
      assert.equal(svid.chain[2]?.sha256Hex, root.cert.sha256Hex);
    });

    it('an SVID under a root without keyUsage: a trust anchor is a name and a key (RFC 5280 §6.1.1 (d))', () => {
      const bareRoot = pki.root('root-without-key-usage', 'root_ca_without_key_usage', 'ec-p256');
      assert.equal(bareRoot.cert.keyUsage, undefined);
      const leaf = pki.issue('svid-under-bare-root', bareRoot, 'svid', 'ec-p256');
      // OpenSSL's strict mode wants keyUsage on every CA, the anchor included; Go and go-spiffe do not.
      assert.match(opensslVerdict(leaf, bareRoot), /CA cert does not include key usage extension/);
      assert.equal(verify([leaf], bundleOf(bareRoot)).id.toString(), WORKLOAD);
    });

    it('the root among several roots of the bundle', () => {
      const other = pki.root('unrelated-root', 'root_ca', 'ec-p256', '/O=Elsewhere/CN=unrelated');
      const leaf = pki.issue('svid-several-roots', root, 'svid', 'ec-p256');
      const svid = verify([leaf], bundleOf(other, root));
      assert.equal(svid.chain[1]?.sha256Hex, root.cert.sha256Hex);
    });
  });

  describe('refuses, with the code of the broken rule', () => {
    interface Case {
      scenario: string;
      /** Extension section of the leaf (openssl-pki.ts). */
      section: string;
      code: ErrorCodeValue;
      message: RegExp;
      /** What `openssl verify -x509_strict -purpose sslclient` says about the same leaf. */
      openssl: RegExp;
    }
    const cases: Case[] = [
      {
        scenario: 'a leaf with two URI SANs (X509-SVID §2: exactly one; X.509 allows many)',
        section: 'svid_two_uri_sans',
        code: ErrorCode.SVID_INVALID,
        message: /exactly one URI SAN, it has 2/,
        openssl: /: OK\n/,
      },
      {
        scenario: 'a leaf with basicConstraints CA:TRUE (X509-SVID §4.1)',
        section: 'svid_ca_true',
        code: ErrorCode.SVID_INVALID,
        message: /cA=true/,
        openssl: /: OK\n/,
      },
      {
        // RFC 5280 §4.2.1.9 (keyCertSign only with cA) refuses it in path validation, before X509-SVID §4.3.
        scenario: 'a leaf with keyUsage keyCertSign (RFC 5280 §4.2.1.9, X509-SVID §4.3)',
        section: 'svid_key_cert_sign',
        code: ErrorCode.KEY_USAGE_INVALID,
        message: /keyCertSign but is not a CA/,
        openssl: /Key usage keyCertSign invalid for non-CA cert/,
      },
      {
        scenario: 'a leaf whose only URI SAN is not a SPIFFE ID (https://...)',
        section: 'svid_not_spiffe_uri',
        code: ErrorCode.SVID_INVALID,
        message: /not a valid SPIFFE ID/,
        openssl: /: OK\n/,
      },
      {
        scenario: 'a leaf with an unknown critical extension (1.2.3.4=critical,ASN1:UTF8String:x)',
        section: 'svid_unknown_critical_extension',
        code: ErrorCode.UNKNOWN_CRITICAL_EXTENSION,
        message: /critical extension 1\.2\.3\.4/,
        openssl: /unhandled critical extension/,
      },
    ];
    for (const c of cases) {
      it(c.scenario, () => {
        const leaf = pki.issue(`leaf-${c.section}`, root, c.section, 'ec-p256');
        assert.match(opensslVerdict(leaf, root), c.openssl);
        expectRefusal(() => verify([leaf], bundleOf(root)), c.code, c.message);
      });
    }

    it('an SVID without key identifiers under a root that has one: ERR_CERT_PROFILE_INVALID (RFC 5280 §4.2.1.1)', () => {
      const leaf = pki.issue('svid-no-key-ids', root, 'svid_without_key_identifiers', 'ec-p256');
      assert.equal(leaf.cert.authorityKeyId, undefined);
      assert.match(opensslVerdict(leaf, root), /Missing Authority Key Identifier/);
      expectRefusal(
        () => verify([leaf], bundleOf(root)),
        ErrorCode.CERT_PROFILE_INVALID,
        /no authority key identifier while its issuer has a subject key identifier/,
      );
    });

    it('an SVID signed by a root that is not in the bundle: ERR_UNKNOWN_AUTHORITY', () => {
      const foreign = pki.root('foreign-root', 'root_ca', 'ec-p256', '/O=Foreign/CN=foreign root');
      const leaf = pki.issue('svid-of-foreign-root', foreign, 'svid', 'ec-p256');
      assert.match(opensslVerdict(leaf, root), /unable to get local issuer certificate/);
      expectRefusal(() => verify([leaf], bundleOf(root)), ErrorCode.UNKNOWN_AUTHORITY);
      // Presenting the foreign root alongside changes nothing: trust comes from the bundle only.
      expectRefusal(() => verify([leaf, foreign], bundleOf(root)), ErrorCode.UNKNOWN_AUTHORITY);
    });

    it("an SVID signed by an impostor root with the bundle root's exact name: ERR_SIGNATURE_INVALID", () => {
      const impostor = pki.root('impostor-root', 'root_ca', 'ec-p256', '/O=Example/CN=root');
      assert.deepEqual(impostor.cert.subjectDer, root.cert.subjectDer);
      const leaf = pki.issue('svid-of-impostor', impostor, 'svid', 'ec-p256');
      assert.doesNotMatch(opensslVerdict(leaf, root), /: OK\n/);
      expectRefusal(() => verify([leaf], bundleOf(root)), ErrorCode.SIGNATURE_INVALID);
    });

    it('an openssl SVID judged after its notAfter: ERR_SVID_EXPIRED', () => {
      const leaf = pki.issue('svid-expiring', root, 'svid', 'ec-p256');
      const afterExpiry = new Date(leaf.cert.notAfter.getTime() + 1000);
      expectRefusal(() => verify([leaf], bundleOf(root), afterExpiry), ErrorCode.SVID_EXPIRED);
    });

    it('a bundle of another trust domain holding the very root that signed it: ERR_BUNDLE_NOT_FOUND', () => {
      // The leaf's SPIFFE ID picks the bundle; a root filed under other.org never vouches for example.org IDs.
      const leaf = pki.issue('svid-wrong-bundle', root, 'svid', 'ec-p256');
      const elsewhere = new X509Bundle(TrustDomain.parse('other.org'), {
        x509Authorities: [root.cert],
      });
      expectRefusal(() => verify([leaf], elsewhere), ErrorCode.BUNDLE_NOT_FOUND);
    });
  });
});
