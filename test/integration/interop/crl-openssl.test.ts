/**
 * signCrl against OpenSSL: the CRL parses, carries cRLNumber / AKI / times, verifies with the CA key, and
 * `openssl verify -crl_check` rejects exactly the listed serials. A CRL signed by another key is refused.
 */
import assert from 'node:assert/strict';
import { verify as cryptoVerify } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList } from '@peculiar/asn1-x509';
import { signCrl } from '../../../src/ca/crl';
import { devCaBundle, initDevCa, mintSvid } from '../../../src/ca/dev-ca';
import { signatureSchemeFor } from '../../../src/x509/keys';
import { encodePem } from '../../../src/x509/pem';
import { openssl, writeTemp } from '../../support/x509';
import { removeDir, tempDir } from '../../support/tmp';

describe('signCrl against OpenSSL', function () {
  this.timeout(30_000);
  const dir = tempDir('crl');
  after(() => removeDir(dir));
  const now = new Date();
  const hourLater = new Date(now.getTime() + 3600_000);

  for (const keyAlgorithm of ['ec-p256', 'rsa-2048', 'ed25519'] as const) {
    it(`${keyAlgorithm}: OpenSSL parses it and rejects only the revoked serial`, () => {
      const ca = initDevCa({ trustDomain: 'crl.test', dir: `${dir}/${keyAlgorithm}`, keyAlgorithm });
      const revoked = mintSvid(ca, { spiffeId: 'spiffe://crl.test/a' });
      const kept = mintSvid(ca, { spiffeId: 'spiffe://crl.test/b' });
      const der = signCrl(ca, {
        crlNumber: 1_700_000_000_123n,
        thisUpdate: now,
        nextUpdate: hourLater,
        revoked: [{ serialHex: revoked.chain[0]!.serialHex, revokedAt: now }],
      });
      const crlPem = writeTemp(dir, `${keyAlgorithm}.crl.pem`, encodePem('X509 CRL', der));
      const caPem = writeTemp(dir, `${keyAlgorithm}.ca.pem`, devCaBundle(ca).toPem());

      const text = openssl(['crl', '-in', crlPem, '-noout', '-text']);
      assert.ok(text.ok, text.output);
      assert.match(text.output, /Version 2/);
      assert.match(text.output, /X509v3 CRL Number:\s+1700000000123/);
      assert.match(text.output, /X509v3 Authority Key Identifier/);
      assert.match(text.output, new RegExp(revoked.chain[0]!.serialHex.toUpperCase()));
      assert.ok(openssl(['crl', '-in', crlPem, '-noout', '-CAfile', caPem]).output.includes('verify OK'));

      const check = (certPem: string) =>
        openssl([
          'verify',
          '-crl_check',
          '-CRLfile',
          crlPem,
          '-CAfile',
          caPem,
          writeTemp(dir, 'leaf.pem', certPem),
        ]);
      const bad = check(revoked.marshal().certificates);
      assert.equal(bad.ok, false);
      assert.match(bad.output, /certificate revoked/);
      assert.ok(check(kept.marshal().certificates).ok);

      // The signature verifies with the CA's public key by node:crypto alone.
      const list = AsnConvert.parse(der, CertificateList);
      const tbs = new Uint8Array(AsnConvert.serialize(list.tbsCertList));
      const scheme = signatureSchemeFor(ca.key);
      assert.ok(cryptoVerify(scheme.hash, tbs, ca.cert.publicKey, new Uint8Array(list.signature)));
    });
  }

  it('an empty CRL omits the revoked list; a CRL signed by another key is refused', () => {
    const ca = initDevCa({ trustDomain: 'crl.test', dir: `${dir}/empty` });
    const other = initDevCa({ trustDomain: 'crl.test', dir: `${dir}/other` });
    const leaf = mintSvid(ca, { spiffeId: 'spiffe://crl.test/a' });
    const empty = signCrl(ca, { crlNumber: 0n, thisUpdate: now, nextUpdate: hourLater, revoked: [] });
    assert.equal(AsnConvert.parse(empty, CertificateList).tbsCertList.revokedCertificates, undefined);
    const caPem = writeTemp(dir, 'e.ca.pem', devCaBundle(ca).toPem());
    const leafPem = writeTemp(dir, 'e.leaf.pem', leaf.marshal().certificates);
    const emptyPem = writeTemp(dir, 'e.crl.pem', encodePem('X509 CRL', empty));
    assert.ok(openssl(['verify', '-crl_check', '-CRLfile', emptyPem, '-CAfile', caPem, leafPem]).ok);

    // Same subject name, other key: OpenSSL must not take it as the CA's CRL.
    const forged = signCrl(
      { cert: ca.cert, key: other.key },
      {
        crlNumber: 2n,
        thisUpdate: now,
        nextUpdate: hourLater,
        revoked: [{ serialHex: leaf.chain[0]!.serialHex, revokedAt: now }],
      },
    );
    const forgedPem = writeTemp(dir, 'f.crl.pem', encodePem('X509 CRL', forged));
    const r = openssl(['verify', '-crl_check', '-CRLfile', forgedPem, '-CAfile', caPem, leafPem]);
    assert.equal(r.ok, false);
    assert.doesNotMatch(r.output, /certificate revoked/);
    assert.match(r.output, /CRL signature failure|unable to get certificate CRL/);
  });
});
