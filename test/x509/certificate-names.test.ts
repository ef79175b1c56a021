/**
 * ParsedCertificate.subjectCommonNames reads the subject's commonName attributes from `subjectDer` with the
 * strict DER reader (no schema decoder): every string type a certificate may use, compared with what OpenSSL
 * wrote and reads, and with the independent @peculiar/asn1-x509 decoder.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import { nameAttributeStrings } from '../../src/x509/certificate-der';
import { OID_COMMON_NAME, ParsedCertificate } from '../../src/x509/certificate';
import { concatBytes, encodeTlv, TAG_OID, TAG_SEQUENCE, TAG_SET } from '../../src/x509/der';
import { issuerNameOf } from '../../src/x509/issuer';
import { decodePemBlocks } from '../../src/x509/pem';
import { openssl, writeTemp } from '../support/x509';
import { removeDir, tempDir } from '../support/tmp';

const OID_CN_DER = Uint8Array.of(0x55, 0x04, 0x03);
const OID_O_DER = Uint8Array.of(0x55, 0x04, 0x0a);

/** A Name with one attribute per RDN: [type OID contents, value tag, value contents]. */
function name(...atvs: [Uint8Array, number, Uint8Array][]): Uint8Array {
  return encodeTlv(
    TAG_SEQUENCE,
    concatBytes(
      atvs.map(([oid, tag, value]) =>
        encodeTlv(
          TAG_SET,
          encodeTlv(TAG_SEQUENCE, concatBytes([encodeTlv(TAG_OID, oid), encodeTlv(tag, value)])),
        ),
      ),
    ),
  );
}

describe('subject commonNames from the fast parser', function () {
  this.timeout(30_000);
  let dir: string;
  before(() => (dir = tempDir('names')));
  after(() => removeDir(dir));

  /** A self-signed certificate made by `openssl req` with the given subject and string mask. */
  const opensslCert = (subject: string, stringMask: string): ParsedCertificate => {
    const cnf = writeTemp(
      dir,
      'req.cnf',
      `[req]\ndistinguished_name = dn\nstring_mask = ${stringMask}\nx509_extensions = v3\n[dn]\n[v3]\nbasicConstraints = critical,CA:FALSE\n`,
    );
    const out = join(dir, 'cert.pem');
    const r = openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      out,
      '-days',
      '1',
      '-config',
      cnf,
      '-utf8',
      '-subj',
      subject,
    ]);
    assert.ok(r.ok, r.output);
    return ParsedCertificate.fromDer(decodePemBlocks(readFileSync(out, 'utf8'), 'CERTIFICATE')[0]!);
  };
  /** The same attribute read by the schema decoder, the parser that x509pop used before. */
  const bySchema = (cert: ParsedCertificate): string[] =>
    [...AsnConvert.parse(cert.der, asn.Certificate).tbsCertificate.subject]
      .flatMap((rdn) => [...rdn])
      .filter((atv) => atv.type === OID_COMMON_NAME)
      .map((atv) => atv.value.toString());

  for (const [label, mask, subject, expected] of [
    ['UTF8String', 'utf8only', '/O=Org/CN=first/CN=naïve ✓', ['first', 'naïve ✓']],
    ['BMPString', 'MASK:0x800', '/O=Org/CN=Grüße Ω', ['Grüße Ω']],
    ['PrintableString', 'default', '/CN=plain-name/O=Org/CN=second', ['plain-name', 'second']],
    ['no commonName', 'utf8only', '/O=Only an organisation', []],
  ] as const) {
    it(`${label}: as OpenSSL wrote it and as the schema decoder reads it`, () => {
      const cert = opensslCert(subject, mask);
      assert.deepEqual(cert.subjectCommonNames, expected);
      assert.deepEqual([...cert.subjectCommonNames], bySchema(cert));
      // OpenSSL's own reading of the subject, one attribute per line.
      const fromOpenssl = cert.node.subject
        .split('\n')
        .filter((l) => l.startsWith('CN='))
        .map((l) => l.slice(3));
      assert.deepEqual([...cert.subjectCommonNames], fromOpenssl);
      // Computed once and frozen: callers cannot change what the next caller reads.
      assert.equal(cert.subjectCommonNames, cert.subjectCommonNames);
      assert.ok(Object.isFrozen(cert.subjectCommonNames));
    });
  }

  it('decodes every string type, skips values that are not strings and attributes of other types', () => {
    const n = name(
      [OID_O_DER, 0x0c, Buffer.from('not a CN')],
      [OID_CN_DER, 0x0c, Buffer.from('utf8 ✓')],
      [OID_CN_DER, 0x13, Buffer.from('printable')],
      [OID_CN_DER, 0x16, Buffer.from('ia5@x')],
      [OID_CN_DER, 0x12, Buffer.from('0123')],
      [OID_CN_DER, 0x14, Buffer.from('caf\xe9', 'latin1')],
      [OID_CN_DER, 0x1e, Buffer.from('00470072', 'hex')], // BMPString "Gr"
      [OID_CN_DER, 0x1c, Buffer.from('0001f600', 'hex')], // UniversalString U+1F600
      [OID_CN_DER, 0x30, Uint8Array.of()], // a SEQUENCE: no text
    );
    assert.deepEqual(nameAttributeStrings(n, OID_COMMON_NAME), [
      'utf8 ✓',
      'printable',
      'ia5@x',
      '0123',
      'café',
      'Gr',
      '\u{1f600}',
    ]);
    assert.deepEqual(nameAttributeStrings(n, '2.5.4.10'), ['not a CN']);
    assert.deepEqual(nameAttributeStrings(name(), OID_COMMON_NAME), []);
  });

  it('issuerNameOf: the subject decoded from subjectDer alone, byte for byte, once per certificate', () => {
    const cert = opensslCert('/O=Org/CN=Grüße Ω/CN=second', 'MASK:0x800');
    const n = issuerNameOf(cert);
    assert.deepEqual(Buffer.from(AsnConvert.serialize(n)), Buffer.from(cert.subjectDer));
    assert.equal(issuerNameOf(cert), n);
    // Another object for the same bytes decodes on its own (the cache is per certificate object).
    assert.notEqual(issuerNameOf(ParsedCertificate.fromDer(cert.der)), n);
  });
});
