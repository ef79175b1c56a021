import assert from 'node:assert/strict';
import { generateKeyPairSync, KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { ErrorCode, LanyardError, MalformedInputError } from '../../src/errors';
import { createCsr, MAX_CSR_BYTES, parseCsr } from '../../src/x509/csr';
import { readChildren, readSingleTlv } from '../../src/x509/der';
import { spkiDer } from '../../src/x509/keys';
import { encodePem } from '../../src/x509/pem';
import { KEY_ALGORITHMS, testKey } from '../support/x509';
import { propertyRuns } from '../support/property';
import { expectRefusalAs } from '../support/refusal';
import { rawCsr, type RawCsrOptions } from '../support/raw-csr';

const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const OID_ECDSA_SHA384 = '1.2.840.10045.4.3.3';
const OID_RSA_SHA256 = '1.2.840.113549.1.1.11';
const OID_RSA_PSS = '1.2.840.113549.1.1.10';
const OID_ED25519 = '1.3.101.112';
const OID_DSA_SHA256 = '2.16.840.1.101.3.4.3.2';

function assertMalformed(input: Uint8Array | string, code: string = ErrorCode.MALFORMED_CSR): void {
  expectRefusalAs(() => parseCsr(input), MalformedInputError, code);
}

describe('x509 CSR', () => {
  describe('createCsr -> parseCsr', () => {
    for (const alg of KEY_ALGORITHMS) {
      it(`round-trips a ${alg} key, as DER and as PEM`, () => {
        const { privateKey, publicKey } = testKey(alg, 1);
        const { der, pem } = createCsr(privateKey);
        for (const input of [der, pem]) {
          const parsed = parseCsr(input);
          assert.ok(parsed.publicKey.equals(publicKey));
          assert.deepEqual(parsed.spki, spkiDer(publicKey));
        }
      });
    }

    it('writes an empty subject and an empty attribute set', () => {
      const { der } = createCsr(testKey('ec-p256', 1).privateKey);
      const csr = AsnConvert.parse(der, CertificationRequest);
      assert.equal(csr.certificationRequestInfo.subject.length, 0);
      assert.equal(csr.certificationRequestInfo.attributes?.length ?? 0, 0);
      assert.equal(csr.signatureAlgorithm.algorithm, OID_ECDSA_SHA256);
    });

    it('refuses a public key, and keys outside the accepted set', () => {
      expectRefusalAs(
        () => createCsr(testKey('ec-p256').publicKey),
        MalformedInputError,
        ErrorCode.UNSUPPORTED_KEY,
      );
      expectRefusalAs(
        () => createCsr(generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey),
        MalformedInputError,
        ErrorCode.UNSUPPORTED_KEY,
      );
    });
  });

  describe('parseCsr proof of possession', () => {
    it('accepts any SHA-2 hash of the right key family (OpenSSL signs P-384 requests with SHA-256)', () => {
      const p384 = testKey('ec-p384', 1);
      const parsed = parseCsr(rawCsr(p384.privateKey, { oid: OID_ECDSA_SHA256, hash: 'sha256' }));
      assert.ok(parsed.publicKey.equals(p384.publicKey));
      const rsa = testKey('rsa-2048', 1);
      // RSA parameters: NULL per RFC 4055, but absent is tolerated as many encoders omit it.
      parseCsr(rawCsr(rsa.privateKey, { oid: '1.2.840.113549.1.1.13', hash: 'sha512', params: null }));
      parseCsr(rawCsr(rsa.privateKey, { oid: OID_RSA_SHA256, hash: 'sha256' }));
    });

    it('refuses an EC point off its curve with ERR_UNSUPPORTED_KEY, as OpenSSL does (P-256 and P-384)', () => {
      for (const alg of ['ec-p256', 'ec-p384'] as const) {
        const { privateKey } = testKey(alg, 1);
        const spki = spkiDer(privateKey);
        const der = createCsr(privateKey).der;
        const at = Buffer.from(der).indexOf(Buffer.from(spki));
        assert.ok(at > 0);
        for (const offset of [spki.length - 1, spki.length - 40]) {
          // Y (and then X) changed: the point leaves the curve, whatever path imports the key.
          const bad = new Uint8Array(der);
          bad[at + offset]! ^= 0x01;
          expectRefusalAs(() => parseCsr(bad), MalformedInputError, ErrorCode.UNSUPPORTED_KEY);
        }
      }
    });

    it('imports a key from its point or from its SPKI alike: same key, same SPKI, same proof checked', () => {
      for (const alg of ['ec-p256', 'ec-p384'] as const) {
        const { privateKey, publicKey } = testKey(alg, 2);
        const parsed = parseCsr(createCsr(privateKey).der);
        assert.equal(parsed.publicKey.asymmetricKeyType, 'ec');
        assert.deepEqual(parsed.publicKey.export({ format: 'jwk' }), publicKey.export({ format: 'jwk' }));
        assert.deepEqual(
          new Uint8Array(parsed.publicKey.export({ format: 'der', type: 'spki' })),
          spkiDer(publicKey),
        );
        // A request signed by another key of the same curve fails its proof of possession.
        const other = testKey(alg, 3).privateKey;
        const forged = rawCsr(other, {
          oid: alg === 'ec-p256' ? OID_ECDSA_SHA256 : OID_ECDSA_SHA384,
          hash: 'sha256',
        });
        const mine = Buffer.from(forged);
        const theirs = Buffer.from(spkiDer(other));
        Buffer.from(spkiDer(publicKey)).copy(mine, mine.indexOf(theirs));
        assertMalformed(mine, ErrorCode.CSR_SIGNATURE_INVALID);
      }
    });

    it('refuses a tampered signature or tampered request info', () => {
      const { der } = createCsr(testKey('ec-p256', 1).privateKey);
      const sigFlipped = new Uint8Array(der);
      sigFlipped[sigFlipped.length - 5]! ^= 0x01;
      assertMalformed(sigFlipped, ErrorCode.CSR_SIGNATURE_INVALID);

      const signedByOther = rawCsr(testKey('ec-p256', 2).privateKey, {
        oid: OID_ECDSA_SHA256,
        hash: 'sha256',
      });
      const mine = AsnConvert.parse(
        rawCsr(testKey('ec-p256', 1).privateKey, { oid: OID_ECDSA_SHA256, hash: 'sha256' }),
        CertificationRequest,
      );
      const other = AsnConvert.parse(signedByOther, CertificationRequest);
      // My key, someone else's signature: no proof of possession.
      const spliced = new CertificationRequest({
        certificationRequestInfo: mine.certificationRequestInfo,
        signatureAlgorithm: other.signatureAlgorithm,
        signature: other.signature,
      });
      assertMalformed(new Uint8Array(AsnConvert.serialize(spliced)), ErrorCode.CSR_SIGNATURE_INVALID);

      for (const alg of KEY_ALGORITHMS) {
        const csr = createCsr(testKey(alg, 1).privateKey).der;
        // Flip a bit inside the public key: the info no longer matches what was signed, or the key is broken.
        const flipped = new Uint8Array(csr);
        flipped[40]! ^= 0x01;
        assert.throws(() => parseCsr(flipped), MalformedInputError, alg);
      }
    });

    it("refuses a signature algorithm that does not match the key's type", () => {
      const ec = testKey('ec-p256', 1).privateKey;
      // An RSA OID over an EC key (the signature itself is a valid ECDSA one).
      assertMalformed(
        rawCsr(ec, { oid: OID_RSA_SHA256, hash: 'sha256', params: null }),
        ErrorCode.CSR_SIGNATURE_INVALID,
      );
      assertMalformed(rawCsr(ec, { oid: OID_ED25519, hash: 'sha256' }), ErrorCode.CSR_SIGNATURE_INVALID);
      const ed = testKey('ed25519', 1).privateKey;
      assertMalformed(rawCsr(ed, { oid: OID_ECDSA_SHA256, hash: null }), ErrorCode.CSR_SIGNATURE_INVALID);
      const rsa = testKey('rsa-2048', 1).privateKey;
      assertMalformed(
        rawCsr(rsa, { oid: OID_ECDSA_SHA384, hash: 'sha384' }),
        ErrorCode.CSR_SIGNATURE_INVALID,
      );
      assertMalformed(rawCsr(rsa, { oid: OID_RSA_PSS, hash: 'sha256' }), ErrorCode.UNSUPPORTED_ALGORITHM);
      assertMalformed(
        rawCsr(rsa, { oid: '1.2.840.113549.1.1.5', hash: 'sha1' }),
        ErrorCode.UNSUPPORTED_ALGORITHM,
      );
    });

    it('refuses parameters where the algorithm forbids them', () => {
      const ec = testKey('ec-p256', 1).privateKey;
      assertMalformed(rawCsr(ec, { oid: OID_ECDSA_SHA256, hash: 'sha256', params: null }));
    });

    it('refuses RSA-1024, P-521, secp256k1 and Ed448 keys with ERR_UNSUPPORTED_KEY', () => {
      const cases: [KeyObject, RawCsrOptions][] = [
        [
          generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey,
          { oid: OID_RSA_SHA256, hash: 'sha256', params: null },
        ],
        [
          generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey,
          { oid: '1.2.840.10045.4.3.4', hash: 'sha512' },
        ],
        [
          generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey,
          { oid: OID_ECDSA_SHA256, hash: 'sha256' },
        ],
        [generateKeyPairSync('ed448').privateKey, { oid: '1.3.101.113', hash: null }],
      ];
      for (const [key, opts] of cases) assertMalformed(rawCsr(key, opts), ErrorCode.UNSUPPORTED_KEY);
    });

    it('refuses DSA and RSA-PSS keys with ERR_UNSUPPORTED_KEY (requests signed by node:crypto)', () => {
      // Both are well-formed requests with a valid proof of possession: only the key type is refused.
      const dsa = generateKeyPairSync('dsa', { modulusLength: 2048, divisorLength: 256 }).privateKey;
      const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha256' }).privateKey;
      const cases: [KeyObject, RawCsrOptions, RegExp][] = [
        [dsa, { oid: OID_DSA_SHA256, hash: 'sha256' }, /dsa/],
        [pss, { oid: OID_RSA_PSS, hash: 'sha256' }, /rsa-pss/],
      ];
      for (const [key, opts, named] of cases) {
        expectRefusalAs(
          () => parseCsr(rawCsr(key, opts)),
          MalformedInputError,
          ErrorCode.UNSUPPORTED_KEY,
          named,
        );
      }
    });

    it("ignores the CSR's subject: only the key is returned", () => {
      const { privateKey, publicKey } = testKey('ec-p256', 1);
      const parsed = parseCsr(
        rawCsr(privateKey, { oid: OID_ECDSA_SHA256, hash: 'sha256', subjectCn: 'admin' }),
      );
      assert.deepEqual(Object.keys(parsed).sort(), ['publicKey', 'spki']);
      assert.ok(parsed.publicKey.equals(publicKey));
    });
  });

  describe('parseCsr on malformed input', () => {
    const valid = (): Uint8Array => createCsr(testKey('ec-p256', 1).privateKey).der;

    it('refuses empty input, garbage, wrong types and PEM of the wrong kind', () => {
      assertMalformed(new Uint8Array());
      assertMalformed(new Uint8Array([0x30]));
      assertMalformed(new Uint8Array([0x30, 0x00]));
      assertMalformed(new Uint8Array([0x30, 0x80, 0x00, 0x00]), ErrorCode.MALFORMED_CSR);
      assertMalformed('');
      assertMalformed('not pem at all');
      assertMalformed(encodePem('CERTIFICATE', valid()));
      assertMalformed('-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n');
      const one = encodePem('CERTIFICATE REQUEST', valid());
      assertMalformed(one + one);
      assertMalformed(null as unknown as string);
      assertMalformed(42 as unknown as string);
    });

    it('refuses trailing bytes after the request', () => {
      const der = valid();
      const trailing = new Uint8Array(der.length + 1);
      trailing.set(der);
      assertMalformed(trailing);
    });

    it('refuses every truncation of a valid request', () => {
      for (const alg of KEY_ALGORITHMS) {
        const der = createCsr(testKey(alg, 1).privateKey).der;
        for (let n = 0; n < der.length; n++) assertMalformed(der.subarray(0, n));
      }
    });

    it('refuses input over 16 KiB before parsing it', () => {
      const big = new Uint8Array(MAX_CSR_BYTES + 1);
      big.set([0x30, 0x82, 0x40, 0x00]);
      expectRefusalAs(() => parseCsr(big), MalformedInputError, ErrorCode.MALFORMED_CSR, /limit/);
      assertMalformed('x'.repeat(40 * 1024));
    });

    it('refuses a v2 request, a BER indefinite length and a signature with unused bits', () => {
      const der = valid();
      const [info, , sig] = readChildren(der, readSingleTlv(der));
      const version = readChildren(der, info!)[0]!;
      const v2 = new Uint8Array(der);
      v2[version.contentStart] = 0x01;
      assertMalformed(v2);

      const unusedBits = new Uint8Array(der);
      unusedBits[sig!.contentStart] = 0x01;
      assertMalformed(unusedBits);

      // The same request with the outer length in BER's indefinite form plus end-of-contents.
      const body = der.subarray(readSingleTlv(der).contentStart);
      assertMalformed(Uint8Array.from([0x30, 0x80, ...body, 0x00, 0x00]));
    });

    it('throws only MalformedInputError for random bytes and random corruptions (property)', () => {
      const der = valid();
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
          assertOnlyMalformed(() => parseCsr(bytes));
          assertOnlyMalformed(() => parseCsr(Uint8Array.from([0x30, ...bytes])));
        }),
        { numRuns: propertyRuns(500) },
      );
      fc.assert(
        fc.property(fc.nat(der.length - 1), fc.integer({ min: 1, max: 255 }), (at, xor) => {
          const corrupt = new Uint8Array(der);
          corrupt[at]! ^= xor;
          assertOnlyMalformed(() => parseCsr(corrupt));
        }),
        { numRuns: propertyRuns(1000) },
      );
    });
  });
});

/** Either the corrupted request still parses (it cannot, but the property does not need that) or the error is typed. */
function assertOnlyMalformed(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(
      e instanceof MalformedInputError,
      `unexpected ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
    );
    assert.ok(
      [
        ErrorCode.MALFORMED_CSR,
        ErrorCode.CSR_SIGNATURE_INVALID,
        ErrorCode.UNSUPPORTED_KEY,
        ErrorCode.UNSUPPORTED_ALGORITHM,
      ].includes((e as LanyardError).code as never),
    );
  }
}
