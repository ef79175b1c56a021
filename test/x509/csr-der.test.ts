import assert from 'node:assert/strict';
import { createPublicKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { Extensions } from '@peculiar/asn1-x509';
import { ErrorCode, MalformedInputError } from '../../src/errors';
import { createCsr, parseCsr } from '../../src/x509/csr';
import { OID_EXTENSION_REQUEST, parseCsrDer } from '../../src/x509/csr-der';
import { concatBytes, DerFramingError } from '../../src/x509/der';
import {
  derBitString,
  derContextConstructed,
  derOid,
  derSequence,
  derSetOf,
  derSmallInteger,
  derUtf8String,
} from '../../src/x509/der-writer';
import { spkiDer } from '../../src/x509/keys';
import { canonicalOid } from '../../src/x509/oid';
import { KEY_ALGORITHMS, openssl, testKey, writeTemp } from '../support/x509';
import { mutate, mutation } from './mutations';
import { removeDir, tempDir } from '../support/tmp';

/**
 * The strict CSR reader against the schema decoder it replaced (@peculiar/asn1-csr) on requests made by
 * OpenSSL for every accepted key type, and under mutation: parseCsr throws nothing but its typed error, and
 * whatever the strict reader still accepts, the schema decoder reads the same way.
 */

const OID_CHALLENGE_PASSWORD = '1.2.840.113549.1.9.7';
const CSR_CODES: ReadonlySet<string> = new Set([
  ErrorCode.MALFORMED_CSR,
  ErrorCode.CSR_SIGNATURE_INVALID,
  ErrorCode.UNSUPPORTED_KEY,
  ErrorCode.UNSUPPORTED_ALGORITHM,
]);

const REQ_CONFIG = `
[req]
prompt = no
distinguished_name = dn
attributes = attrs
req_extensions = ext
string_mask = utf8only
utf8 = yes
[dn]
O = Lanyard Tëst
CN = planner
[attrs]
challengePassword = s3cret-pass
[ext]
subjectAltName = URI:spiffe://example.org/agent/planner, DNS:planner.example.org
keyUsage = critical, digitalSignature
basicConstraints = CA:FALSE
`;

interface OpensslCsr {
  name: string;
  der: Uint8Array;
  alg: (typeof KEY_ALGORITHMS)[number];
}

function ser(value: unknown): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(value));
}

/** Asserts that the strict reader and the schema decoder read `der` the same way, field by field. */
function assertAgreesWithSchema(der: Uint8Array): void {
  const ours = parseCsrDer(der);
  const theirs = AsnConvert.parse(der, CertificationRequest);
  const info = theirs.certificationRequestInfo;
  assert.deepEqual(ours.info, ser(info));
  assert.deepEqual(ours.subject, ser(info.subject));
  assert.deepEqual(ours.spki, ser(info.subjectPKInfo));
  assert.equal(ours.spkiAlgorithm.oid, canonicalOid(info.subjectPKInfo.algorithm.algorithm));
  assert.equal(ours.signatureAlgorithm.oid, canonicalOid(theirs.signatureAlgorithm.algorithm));
  assert.deepEqual(ours.signatureAlgorithm.der, ser(theirs.signatureAlgorithm));
  assert.deepEqual(ours.signature, new Uint8Array(theirs.signature));
  const attributes = info.attributes ?? [];
  assert.deepEqual(
    ours.attributes.map((a) => ({ oid: a.oid, values: a.values.map((v) => Buffer.from(v).toString('hex')) })),
    // Array.from: the schema's arrays are subclasses, and deepEqual compares prototypes.
    Array.from(attributes, (a) => ({
      oid: canonicalOid(a.type),
      values: Array.from(a.values, (v) => Buffer.from(v).toString('hex')),
    })),
  );
  const request = attributes.find((a) => canonicalOid(a.type) === OID_EXTENSION_REQUEST);
  const requested = request === undefined ? [] : AsnConvert.parse(request.values[0]!, Extensions);
  assert.deepEqual(
    ours.requestedExtensions.map((e) => ({ ...e, value: Buffer.from(e.value).toString('hex') })),
    Array.from(requested, (e) => ({
      oid: canonicalOid(e.extnID),
      critical: e.critical,
      value: Buffer.from(e.extnValue.buffer).toString('hex'),
    })),
  );
}

describe('x509 CSR: the strict DER reader', () => {
  const made: OpensslCsr[] = [];
  let dir: string;

  before(function () {
    this.timeout(60_000);
    dir = tempDir('csr-der');
    const config = writeTemp(dir, 'req.cnf', REQ_CONFIG);
    for (const alg of KEY_ALGORITHMS) {
      const keyPem = testKey(alg, 3).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
      const keyFile = writeTemp(dir, `${alg}.key`, keyPem);
      // With the full configuration (subject, challengePassword, extensionRequest), and a bare one.
      const variants: [string, string[]][] = [
        ['full', ['-config', config]],
        ['bare', ['-subj', '/CN=bare']],
      ];
      // OpenSSL's default digest, and SHA-512 where the key type takes a digest at all.
      if (alg !== 'ed25519') variants.push(['sha512', ['-config', config, '-sha512']]);
      for (const [variant, args] of variants) {
        const out = join(dir, `${alg}-${variant}.der`);
        const r = openssl(['req', '-new', '-key', keyFile, ...args, '-outform', 'DER', '-out', out]);
        assert.ok(r.ok, r.output);
        made.push({ name: `${alg} ${variant}`, der: new Uint8Array(readFileSync(out)), alg });
      }
    }
  });

  after(() => removeDir(dir));

  it('reads every OpenSSL request (all key types, attributes, extensionRequest) as the schema decoder does', () => {
    assert.equal(made.length, 11);
    for (const csr of made) {
      assertAgreesWithSchema(csr.der);
      const parsed = parseCsr(csr.der);
      assert.ok(parsed.publicKey.equals(testKey(csr.alg, 3).publicKey), csr.name);
      assert.deepEqual(parsed.spki, spkiDer(testKey(csr.alg, 3).publicKey), csr.name);
    }
    const full = parseCsrDer(made.find((c) => c.name === 'ec-p256 full')!.der);
    assert.deepEqual(
      full.attributes.map((a) => a.oid),
      [OID_CHALLENGE_PASSWORD, OID_EXTENSION_REQUEST],
    );
    assert.deepEqual(
      full.requestedExtensions.map((e) => [e.oid, e.critical]),
      [
        ['2.5.29.17', false],
        ['2.5.29.15', true],
        ['2.5.29.19', false],
      ],
    );
    const bare = parseCsrDer(made.find((c) => c.name === 'ec-p256 bare')!.der);
    assert.deepEqual(bare.requestedExtensions, []);
  });

  it("returns the key's SPKI as node:crypto exports it: a compressed EC point stays, RSA gains its NULL", () => {
    const p256 = testKey('ec-p256', 3).privateKey.export({ format: 'pem', type: 'sec1' }).toString();
    const compressedKey = join(dir, 'compressed.key');
    const c = openssl(['ec', '-conv_form', 'compressed', '-out', compressedKey], p256);
    assert.ok(c.ok, c.output);
    const out = join(dir, 'compressed.der');
    const r = openssl([
      'req',
      '-new',
      '-key',
      compressedKey,
      '-subj',
      '/CN=c',
      '-outform',
      'DER',
      '-out',
      out,
    ]);
    assert.ok(r.ok, r.output);
    const compressed = new Uint8Array(readFileSync(out));
    const fields = parseCsrDer(compressed);
    assert.equal(fields.spki.length, 59, 'OpenSSL wrote the compressed point');
    const parsed = parseCsr(compressed);
    assert.deepEqual(parsed.spki, fields.spki);
    // An independent import and export of the same bytes agrees.
    const fresh = createPublicKey({ key: Buffer.from(fields.spki), format: 'der', type: 'spki' });
    assert.deepEqual(parsed.spki, new Uint8Array(fresh.export({ format: 'der', type: 'spki' })));
    assert.ok(parsed.publicKey.equals(testKey('ec-p256', 3).publicKey));

    // RSA with the AlgorithmIdentifier's NULL left out (BER-era encoders do): accepted, returned with it.
    const rsa = testKey('rsa-2048', 1);
    const withNull = spkiDer(rsa.publicKey);
    const nullAlg = '300d06092a864886f70d0101010500';
    const h = Buffer.from(withNull).toString('hex');
    assert.equal(h.indexOf(nullAlg), 8);
    const body = h.slice(8).replace(nullAlg, '300b06092a864886f70d010101');
    const withoutNull = derSequence(Buffer.from(body, 'hex'));
    const info = derSequence(
      derSmallInteger(0),
      derSequence(),
      withoutNull,
      derContextConstructed(0, new Uint8Array(0)),
    );
    const csr = derSequence(
      info,
      derSequence(derOid('1.2.840.113549.1.1.11'), Uint8Array.of(0x05, 0x00)),
      derBitString(new Uint8Array(sign('sha256', info, rsa.privateKey))),
    );
    const parsedRsa = parseCsr(csr);
    assert.deepEqual(parsedRsa.spki, withNull);
    assert.ok(parsedRsa.publicKey.equals(rsa.publicKey));
  });

  it('reads our own createCsr requests as the schema decoder does', () => {
    for (const alg of KEY_ALGORITHMS) assertAgreesWithSchema(createCsr(testKey(alg, 1).privateKey).der);
  });

  it('refuses what DER or RFC 2986 forbid in the parts the schema decoder let through', () => {
    const der = made.find((c) => c.name === 'ec-p256 full')!.der;
    const hex = Buffer.from(der).toString('hex');
    const refused = (h: string, message: RegExp): void => {
      assert.throws(
        () => parseCsrDer(Uint8Array.from(Buffer.from(h, 'hex'))),
        (e: unknown) => {
          assert.ok(e instanceof DerFramingError, String(e));
          assert.match(e.message, message);
          return true;
        },
      );
    };
    // keyUsage is critical in this request: BOOLEAN TRUE. The same with an explicit FALSE is not DER.
    const criticalTrue = '0101ff';
    assert.equal(hex.split(criticalTrue).length, 2);
    refused(hex.replace(criticalTrue, '010100'), /critical FALSE/);
    // Turn the extensionRequest's type into a second challengePassword: X.501 wants distinct types.
    const challengeOid = '06092a864886f70d010907';
    const extensionRequestOid = '06092a864886f70d01090e';
    refused(hex.replace(extensionRequestOid, challengeOid), /duplicate attribute 1\.2\.840\.113549\.1\.9\.7/);

    // Requests written by hand (the signature is not the reader's business): an attribute with an empty value
    // set (SIZE (1..MAX)), version 1, and no signature bytes at all.
    const spki = spkiDer(testKey('ec-p256', 3).publicKey);
    const request = (version: number, attrs: Uint8Array[], signature: Uint8Array): string =>
      Buffer.from(
        derSequence(
          derSequence(
            derSmallInteger(version),
            derSequence(),
            spki,
            derContextConstructed(0, concatBytes(attrs)),
          ),
          derSequence(derOid('1.2.840.10045.4.3.2')),
          derBitString(signature),
        ),
      ).toString('hex');
    const password = derSequence(derOid(OID_CHALLENGE_PASSWORD), derSetOf([derUtf8String('pw')]));
    parseCsrDer(Buffer.from(request(0, [password], Uint8Array.of(1)), 'hex'));
    refused(
      request(0, [derSequence(derOid(OID_CHALLENGE_PASSWORD), derSetOf([]))], Uint8Array.of(1)),
      /no value/,
    );
    refused(request(1, [password], Uint8Array.of(1)), /version/);
    refused(request(0, [password], new Uint8Array(0)), /signature is empty/);
  });

  it('parseCsr throws only its typed errors on mutated requests (property)', () => {
    const seeds = [...made.map((c) => c.der), createCsr(testKey('ec-p256', 1).privateKey).der];
    const codes = new Set<string>();
    fc.assert(
      fc.property(
        fc.nat(seeds.length - 1),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (seed, mutations) => {
          const input = mutations.reduce(mutate, seeds[seed]!);
          try {
            parseCsr(input);
          } catch (e) {
            if (!(e instanceof MalformedInputError) || !CSR_CODES.has(e.code)) throw e;
            codes.add(e.code);
          }
        },
      ),
      { numRuns: 1500 },
    );
    // The mutations reach past the framing into the signature check.
    assert.ok(
      codes.has(ErrorCode.MALFORMED_CSR) && codes.has(ErrorCode.CSR_SIGNATURE_INVALID),
      [...codes].join(),
    );
  });

  it('whatever the strict reader accepts after mutation, the schema decoder reads the same way (property)', () => {
    const seeds = made.map((c) => c.der);
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.nat(seeds.length - 1),
        fc.array(mutation, { minLength: 1, maxLength: 2 }),
        (seed, mutations) => {
          const input = mutations.reduce(mutate, seeds[seed]!);
          try {
            parseCsrDer(input);
          } catch (e) {
            if (e instanceof DerFramingError) return;
            throw e;
          }
          accepted++;
          assertAgreesWithSchema(input);
        },
      ),
      { numRuns: 1500 },
    );
    // Most single-byte changes inside strings, keys and signatures keep the framing intact.
    assert.ok(accepted > 100, `only ${accepted} mutated requests were still well-formed`);
  });
});
