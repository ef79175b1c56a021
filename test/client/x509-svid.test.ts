/**
 * Loading an X509-SVID (toX509Svid, parseX509Svid, parseX509SvidRaw, loadX509Svid, StaticX509Source.fromFiles)
 * holds it to the X509-SVID profile as go-spiffe's x509svid.Parse does, with the verifier's error codes; and
 * marshal()/marshalRaw() write what go-spiffe's Marshal/MarshalRaw write. Run against go-spiffe's own test
 * files (skipped when the shared conformance folder is absent) and against certificates built here.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { id_kp_serverAuth } from '@peculiar/asn1-x509';
import { StaticX509Source } from '../../src/client/static-x509-source';
import { loadX509Svid, parseX509Svid, parseX509SvidRaw, toX509Svid } from '../../src/svid/x509-svid';
import { encodePem } from '../../src/x509/pem';
import { goSpiffeTestdata } from '../support/go-spiffe-testdata';
import { type CertSpec, type Issued, makeIntermediate, makeLeaf, makeRoot } from '../support/pki';
import { removeDir, tempDir } from '../support/tmp';
import { expectRefusal } from '../support/refusal';

const ID = 'spiffe://example.org/workload-1';

describe('X509-SVID loading: go-spiffe x509svid test data', function () {
  const dir = goSpiffeTestdata('svid/x509svid');
  before(function () {
    if (dir === undefined) this.skip();
  });
  const file = (name: string): string => path.join(dir!, name);

  // [certificate file, key file, certificates expected] for what go-spiffe's TestParse accepts.
  const accepted: [string, string, number][] = [
    ['good-leaf-only.pem', 'key-pkcs8-rsa.pem', 1],
    ['good-leaf-and-intermediate.pem', 'key-pkcs8-ecdsa.pem', 2],
    ['good-key-and-cert.pem', 'good-key-and-cert.pem', 1],
    ['good-cert-and-key.pem', 'good-cert-and-key.pem', 1],
  ];
  for (const [certs, key, count] of accepted) {
    it(`accepts ${certs} with ${key}, as go-spiffe does`, () => {
      const svid = loadX509Svid(file(certs), file(key));
      assert.equal(svid.id.toString(), ID);
      assert.equal(svid.chain.length, count);
    });
  }

  // [certificate file, key file, our code, go-spiffe's refusal]: each one go-spiffe refuses, we refuse.
  const refused: [string, string, string, string][] = [
    ['key-pkcs8-rsa.pem', 'key-pkcs8-rsa.pem', 'ERR_CHAIN_EMPTY', 'no certificates found'],
    ['good-leaf-only.pem', 'good-leaf-only.pem', 'ERR_MALFORMED_PEM', 'no private key found'],
    ['good-leaf-only.pem', 'corrupt-key.pem', 'ERR_MALFORMED_PEM', 'cannot parse PEM encoded private key'],
    ['corrupt-cert.pem', 'key-pkcs8-rsa.pem', 'ERR_MALFORMED_CERTIFICATE', 'cannot parse certificate'],
    ['not-pem', 'key-pkcs8-rsa.pem', 'ERR_CHAIN_EMPTY', 'no certificates found'],
    ['good-leaf-only.pem', 'not-pem', 'ERR_MALFORMED_PEM', 'no private key found'],
    [
      'good-leaf-and-intermediate.pem',
      'key-pkcs8-rsa.pem',
      'ERR_UNSUPPORTED_KEY',
      'does not match private key',
    ],
    ['wrong-leaf-empty-id.pem', 'key-pkcs8-rsa.pem', 'ERR_SVID_INVALID', 'no URI SAN'],
    ['wrong-leaf-ca-true.pem', 'key-pkcs8-rsa.pem', 'ERR_SVID_INVALID', 'CA flag set to true'],
    ['wrong-leaf-no-digital-signature.pem', 'key-pkcs8-rsa.pem', 'ERR_SVID_INVALID', 'digitalSignature'],
    ['wrong-leaf-cert-sign.pem', 'key-pkcs8-rsa.pem', 'ERR_SVID_INVALID', 'keyCertSign'],
    ['wrong-leaf-crl-sign.pem', 'key-pkcs8-rsa.pem', 'ERR_SVID_INVALID', 'cRLSign'],
    ['wrong-intermediate-no-ca.pem', 'key-pkcs8-rsa.pem', 'ERR_NOT_A_CA', 'signing certificate CA flag'],
    ['wrong-intermediate-no-key-cert-sign.pem', 'key-pkcs8-rsa.pem', 'ERR_KEY_USAGE_INVALID', 'keyCertSign'],
  ];
  for (const [certs, key, code, theirs] of refused) {
    it(`refuses ${certs} with ${key}: ${code} (go-spiffe: ${theirs})`, () => {
      expectRefusal(() => loadX509Svid(file(certs), file(key)), code);
    });
  }

  it('a CA:true leaf does not load into a StaticX509Source either', () => {
    const bundle = file('good-leaf-and-intermediate.pem');
    expectRefusal(
      () =>
        StaticX509Source.fromFiles({
          certFile: file('wrong-leaf-ca-true.pem'),
          keyFile: file('key-pkcs8-rsa.pem'),
          bundleFile: bundle,
        }),
      'ERR_SVID_INVALID',
      /is a CA certificate/,
    );
  });

  for (const [certs, key] of [
    ['good-leaf-only.pem', 'key-pkcs8-rsa.pem'],
    ['good-leaf-and-intermediate.pem', 'key-pkcs8-ecdsa.pem'],
  ] as const) {
    it(`marshal() of ${certs} gives back go-spiffe's files byte for byte; marshalRaw() parses back`, () => {
      const svid = loadX509Svid(file(certs), file(key));
      const pem = svid.marshal();
      assert.equal(pem.certificates, fs.readFileSync(file(certs), 'utf8'));
      assert.equal(pem.key, fs.readFileSync(file(key), 'utf8'));
      const raw = svid.marshalRaw();
      assert.deepEqual(Buffer.from(raw.certificates), Buffer.concat(svid.chain.map((c) => c.der)));
      const again = parseX509SvidRaw(raw.certificates, raw.key);
      assert.equal(again.id.toString(), ID);
      assert.deepEqual(
        again.chain.map((c) => c.sha256Hex),
        svid.chain.map((c) => c.sha256Hex),
      );
    });
  }
});

describe('X509-SVID loading: the profile, with certificates built here', () => {
  const TD = 'example.org';
  const root = makeRoot(TD);
  const intermediate = makeIntermediate(TD, root);
  const pemOf = (...certs: Issued[]): string =>
    certs.map((c) => encodePem('CERTIFICATE', c.cert.der)).join('');
  const keyPem = (i: Issued): string => i.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

  it('a well-formed SVID with its intermediate loads, from PEM and from DER', () => {
    const leaf = makeLeaf(ID, intermediate);
    const svid = parseX509Svid(pemOf(leaf, intermediate), keyPem(leaf));
    assert.equal(svid.id.toString(), ID);
    assert.equal(svid.chain.length, 2);
    const raw = svid.marshalRaw();
    assert.equal(parseX509SvidRaw(raw.certificates, raw.key).chain.length, 2);
    // SEC1 keys, as openssl ecparam writes them, are read too.
    const sec1 = leaf.key.privateKey.export({ type: 'sec1', format: 'pem' }) as string;
    assert.equal(parseX509Svid(pemOf(leaf), sec1).id.toString(), ID);
  });

  it('toX509Svid refuses a leaf with cA=true (it used to load as a workload SVID)', () => {
    const leaf = makeLeaf(ID, root, { basicConstraints: { ca: true } });
    expectRefusal(
      () => toX509Svid([leaf.cert.der], leaf.key.privateKey),
      'ERR_SVID_INVALID',
      /CA certificate/,
    );
  });

  it('refuses a leaf without keyUsage, or whose keyUsage lacks digitalSignature', () => {
    const none = makeLeaf(ID, root, { keyUsage: null });
    expectRefusal(() => toX509Svid([none.cert.der], none.key.privateKey), 'ERR_SVID_INVALID', /no keyUsage/);
    const agreement = makeLeaf(ID, root, { keyUsage: ['keyAgreement'] });
    expectRefusal(
      () => toX509Svid([agreement.cert.der], agreement.key.privateKey),
      'ERR_SVID_INVALID',
      /lacks digitalSignature/,
    );
  });

  it('refuses a leaf with more than one URI SAN, or a trust domain ID', () => {
    const two = makeLeaf(ID, root, { uris: [ID, 'spiffe://example.org/other'] });
    expectRefusal(
      () => toX509Svid([two.cert.der], two.key.privateKey),
      'ERR_SVID_INVALID',
      /exactly one URI SAN/,
    );
    const tdId = makeLeaf('spiffe://example.org', root);
    expectRefusal(() => toX509Svid([tdId.cert.der], tdId.key.privateKey), 'ERR_SVID_INVALID', /no path/);
  });

  // Deliberately stricter than go-spiffe's Parse (which reads no extKeyUsage): the verifier refuses such a
  // leaf at every peer, so a workload holding one would fail every handshake; it is refused where it loads.
  it('refuses a leaf whose extKeyUsage lacks clientAuth (go-spiffe loads it; our verifier would refuse it)', () => {
    const leaf = makeLeaf(ID, root, { eku: [id_kp_serverAuth] });
    expectRefusal(() => toX509Svid([leaf.cert.der], leaf.key.privateKey), 'ERR_SVID_INVALID', /clientAuth/);
  });

  it('refuses a signing certificate that is not a CA, or lacks keyCertSign, or has no keyUsage', () => {
    const cases: [Partial<CertSpec>, string][] = [
      [{ basicConstraints: { ca: false } }, 'ERR_NOT_A_CA'],
      [{ basicConstraints: null }, 'ERR_NOT_A_CA'],
      [{ keyUsage: ['cRLSign'] }, 'ERR_KEY_USAGE_INVALID'],
      [{ keyUsage: null }, 'ERR_KEY_USAGE_INVALID'],
    ];
    for (const [spec, code] of cases) {
      const bad = makeIntermediate(TD, root, spec);
      const leaf = makeLeaf(ID, bad);
      expectRefusal(() => toX509Svid([leaf.cert.der, bad.cert.der], leaf.key.privateKey), code);
    }
  });

  it('refuses a chain whose last block was cut off before its END line, rather than load a shorter chain', () => {
    const leaf = makeLeaf(ID, intermediate);
    const cut = pemOf(leaf, intermediate).replace(/-----END CERTIFICATE-----\n$/, '');
    expectRefusal(() => parseX509Svid(cut, keyPem(leaf)), 'ERR_MALFORMED_PEM', /not terminated/);
  });

  it('refuses an encrypted key, and raw input that is not DER', () => {
    const leaf = makeLeaf(ID, root);
    const encrypted = leaf.key.privateKey.export({
      type: 'pkcs8',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: 'secret',
    }) as string;
    expectRefusal(() => parseX509Svid(pemOf(leaf), encrypted), 'ERR_MALFORMED_PEM', /encrypted/);
    const keyDer = new Uint8Array(leaf.key.privateKey.export({ type: 'pkcs8', format: 'der' }));
    expectRefusal(
      () => parseX509SvidRaw(new TextEncoder().encode('not-DER-encoded'), keyDer),
      'ERR_MALFORMED_CERTIFICATE',
    );
    expectRefusal(() => parseX509SvidRaw(leaf.cert.der, new Uint8Array([1, 2, 3])), 'ERR_MALFORMED_PEM');
  });

  it('loadX509Svid names a file it cannot read, with ERR_IO', () => {
    const dir = tempDir('svid-load');
    try {
      const leaf = makeLeaf(ID, root);
      const cert = path.join(dir, 'svid.pem');
      fs.writeFileSync(cert, pemOf(leaf));
      expectRefusal(
        () => loadX509Svid(cert, path.join(dir, 'missing.key')),
        'ERR_IO',
        /key file .*missing\.key/,
      );
      expectRefusal(() => loadX509Svid(path.join(dir, 'missing.pem'), cert), 'ERR_IO', /certificate file/);
    } finally {
      removeDir(dir);
    }
  });
});
