/**
 * The one-pass DER writer (der-writer.ts writeDer, build.ts signCertificate) against the nested whole-element
 * writer it replaced (reference-der-writer.ts, frozen): trees of every length form, certificates of random
 * fields, and what the CA, leaf and CRL builders sign must be the same bytes. Ed25519 and RSA PKCS#1 v1.5 sign
 * deterministically, so with them whole certificates compare; with ECDSA the signed part and the framing do.
 */
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import fc from 'fast-check';
import { signCrl } from '../../src/ca/crl';
import { buildName, signCertificate, type CertificateFields } from '../../src/x509/build';
import {
  contentOf,
  readChildren,
  readIntegerBytes,
  readSingleTlv,
  TAG_SEQUENCE,
  type Tlv,
  tlvBytes,
} from '../../src/x509/der';
import {
  extensionDer,
  extensionNode,
  subjectAltNameExtDer,
  subjectAltNameExtNode,
  subjectKeyIdExtNode,
} from '../../src/x509/der-extensions';
import {
  bytesNode,
  constructedNode,
  type DerNode,
  encodedNode,
  textNode,
  writeDer,
  writeDerInto,
} from '../../src/x509/der-writer';
import { ParsedCertificate } from '../../src/x509/certificate';
import { spkiDer, verifyWithKey } from '../../src/x509/keys';
import { createIntermediateCa, createRootCa, signX509SvidLeaf } from '../../src/x509/profiles';
import { propertyRuns } from '../support/property';
import { testKey } from '../support/x509';
import {
  refCertificate,
  refFrameSigned,
  refSequence,
  refTbsCertificate,
  refTime,
  refTlv,
  refUnsignedInteger,
} from './reference-der-writer';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Content sizes on both sides of each length form: short, 0x81, 0x82 and 0x83. */
const EDGE_SIZES = [0, 1, 127, 128, 255, 256, 65_535, 65_536];

/** A tree and the bytes the nested writer gives for it. */
interface Sample {
  node: DerNode;
  der: Uint8Array;
}

const bytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.constantFrom(...EDGE_SIZES).map((n) => new Uint8Array(n).fill(0xa5)),
);
const primitiveTag = fc.constantFrom(0x02, 0x04, 0x0c, 0x13, 0x16, 0x80, 0x86);
const leafSample: fc.Arbitrary<Sample> = fc.oneof(
  fc
    .tuple(primitiveTag, bytesArb)
    .map(([tag, bytes]) => ({ node: bytesNode(tag, bytes), der: refTlv(tag, bytes) })),
  // Any string, non-ASCII and lone surrogates too, short and past the writer's short-text cut.
  fc
    .tuple(
      primitiveTag,
      fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ maxLength: 20 })),
    )
    .map(([tag, text]) => ({
      node: textNode(tag, text),
      der: refTlv(tag, new Uint8Array(Buffer.from(text, 'utf8'))),
    })),
  bytesArb.map((bytes) => {
    const der = refTlv(0x04, bytes);
    return { node: encodedNode(der), der };
  }),
);
const { tree } = fc.letrec<{ tree: Sample }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafSample,
    fc
      .tuple(fc.constantFrom(0x30, 0x31, 0xa0, 0xa3, 0x04), fc.array(tie('tree'), { maxLength: 4 }))
      .map(([tag, children]) => ({
        node: constructedNode(
          tag,
          children.map((c) => c.node),
        ),
        der: refTlv(tag, Buffer.concat(children.map((c) => c.der))),
      })),
  ),
}));

describe('x509 one-pass DER writer against the nested writer', () => {
  it('writes every tree as nesting whole elements does, every length form (property)', () => {
    fc.assert(
      fc.property(tree, ({ node, der }) => {
        assert.equal(node.length, der.length);
        assert.equal(hex(writeDer(node)), hex(der));
      }),
      { numRuns: propertyRuns(300) },
    );
    for (const size of EDGE_SIZES) {
      const content = new Uint8Array(size).fill(7);
      const nested = constructedNode(0x30, [bytesNode(0x04, content), encodedNode(refTlv(0x04, content))]);
      assert.equal(
        hex(writeDer(nested)),
        hex(refSequence(refTlv(0x04, content), refTlv(0x04, content))),
        `${size}`,
      );
    }
  });

  it('writes into a larger buffer at an offset and touches nothing outside the element', () => {
    const node = constructedNode(0x30, [textNode(0x0c, 'é and ascii'), bytesNode(0x04, Uint8Array.of(1, 2))]);
    const out = new Uint8Array(node.length + 9).fill(0xee);
    assert.equal(writeDerInto(node, out, 4), 4 + node.length);
    assert.equal(hex(out.subarray(4, 4 + node.length)), hex(writeDer(node)));
    assert.ok(out.subarray(0, 4).every((b) => b === 0xee));
    assert.ok(out.subarray(4 + node.length).every((b) => b === 0xee));
  });

  it('signs certificates of random fields as the nested writer did (property)', () => {
    const serial = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 20 }),
      fc.constantFrom(
        Uint8Array.of(0),
        Uint8Array.of(0, 0, 0x80),
        Uint8Array.of(0x7f),
        new Uint8Array(16).fill(0xff),
      ),
    );
    // Both sides of 2050, where UTCTime gives way to GeneralizedTime; whole seconds as the profiles give.
    const date = fc
      .integer({ min: Date.UTC(1950, 0, 1) / 1000, max: Date.UTC(9999, 11, 31, 23, 59, 59) / 1000 })
      .map((s) => new Date(s * 1000));
    const name = fc.string({ minLength: 1, maxLength: 64 });
    const extension = fc.oneof(
      fc
        .tuple(fc.boolean(), fc.uint8Array({ maxLength: 70_000 }))
        .map(([critical, value]) => extensionDer('1.3.6.1.4.1.99999.1', critical, refTlv(0x04, value))),
      fc
        .array(fc.webUrl({ validSchemes: ['spiffe'] }), { minLength: 1, maxLength: 3 })
        .map((uris) => subjectAltNameExtDer({ uris })),
    );
    fc.assert(
      fc.property(
        fc.constantFrom('ed25519', 'rsa-2048', 'ec-p256'),
        fc.constantFrom('ed25519', 'ec-p384', 'rsa-2048'),
        serial,
        date,
        date,
        name,
        name,
        fc.array(extension, { maxLength: 4 }),
        (signer, subjectAlg, serialBytes, notBefore, notAfter, issuerCn, subjectCn, extensions) => {
          const fields: CertificateFields & { extensions: Uint8Array[] } = {
            serial: serialBytes,
            issuer: buildName({ organization: 'Lanyard', commonName: issuerCn }),
            subject: buildName({ commonName: subjectCn }),
            notBefore,
            notAfter,
            spki: spkiDer(testKey(subjectAlg).publicKey),
            extensions,
            signingKey: testKey(signer).privateKey,
          };
          assertSameCertificate(signCertificate(fields), fields);
        },
      ),
      { numRuns: propertyRuns(60) },
    );
  });

  it('extensions given as nodes are written as their encodings are', () => {
    const keyId = Uint8Array.from({ length: 20 }, (_, i) => i);
    const context = refSequence(refTlv(0x0c, new Uint8Array(300).fill(0x61)));
    const nodes = [
      subjectKeyIdExtNode(keyId),
      subjectAltNameExtNode({ uris: ['spiffe://example.org/a'], dnsNames: ['a.example.org'] }),
      extensionNode('1.3.6.1.4.1.99999.1', false, encodedNode(context)),
    ];
    const base = {
      serial: Uint8Array.of(1),
      issuer: buildName({ commonName: 'i' }),
      subject: buildName({ commonName: 's' }),
      notBefore: new Date('2030-01-01T00:00:00Z'),
      notAfter: new Date('2030-01-02T00:00:00Z'),
      spki: spkiDer(testKey('ed25519').publicKey),
      signingKey: testKey('ed25519').privateKey,
    };
    assertSameCertificate(signCertificate({ ...base, extensions: nodes }), {
      ...base,
      extensions: nodes.map(writeDer),
    });
  });

  it('root and intermediate CAs and leaves are what the nested writer signs for their fields', () => {
    const now = new Date('2031-03-04T05:06:07Z');
    for (const alg of ['ed25519', 'rsa-2048', 'ec-p256'] as const) {
      const rootKey = testKey(alg).privateKey;
      const root = createRootCa({
        trustDomain: 'example.org',
        key: rootKey,
        ttlSeconds: 86_400,
        now,
        pathLen: 1,
        nameConstraints: {
          permitted: [{ kind: 'uri', value: 'example.org' }],
          excluded: [{ kind: 'dns', value: 'x.org' }],
        },
      });
      assertSameCertificate(root.der, fieldsOf(root.der, rootKey));
      const interKey = testKey(alg, 1);
      const inter = createIntermediateCa({
        trustDomain: 'example.org',
        publicKey: interKey.publicKey,
        issuer: { cert: root.cert, key: rootKey },
        ttlSeconds: 3600,
        now,
        pathLen: 0,
      });
      assertSameCertificate(inter.der, fieldsOf(inter.der, rootKey));
      for (const workload of ['ec-p256', 'rsa-2048', 'ed25519'] as const) {
        const leaf = signX509SvidLeaf({
          spiffeId: 'spiffe://example.org/agent/a',
          publicKey: testKey(workload, 2).publicKey,
          issuer: { cert: inter.cert, key: interKey.privateKey },
          ttlSeconds: 600,
          now,
          dnsNames: ['a.example.org', 'b.example.org'],
          agentContextDer: refSequence(refTlv(0x0c, new Uint8Array(2000).fill(0x62))),
        });
        assertSameCertificate(leaf.der, fieldsOf(leaf.der, interKey.privateKey));
      }
    }
  });

  it('CRLs are framed and written as the nested writer wrote them, empty and past 64 KiB', () => {
    const key = testKey('ed25519').privateKey;
    const ca = createRootCa({ trustDomain: 'example.org', key, ttlSeconds: 86_400 });
    const thisUpdate = new Date('2049-12-31T23:00:00Z');
    const nextUpdate = new Date('2050-01-01T01:00:00Z');
    for (const count of [0, 3, 1500]) {
      const revoked = Array.from({ length: count }, (_, i) => ({
        serialHex: (i + 1).toString(16).padStart(32, i % 2 === 0 ? '7' : '0'),
        revokedAt: new Date(thisUpdate.getTime() - i * 1000),
      }));
      const crl = signCrl({ cert: ca.cert, key }, { crlNumber: 42n, thisUpdate, nextUpdate, revoked });
      const [tbs, algorithm] = readChildren(crl, readSingleTlv(crl));
      const parts = readChildren(crl, tbs!);
      const entries = parts.filter((p) => p.tag === TAG_SEQUENCE).slice(2);
      assert.equal(entries.length, count === 0 ? 0 : 1, 'an empty list is left out');
      const expectedTbs = refSequence(
        refUnsignedInteger(Uint8Array.of(1)),
        tlvBytes(crl, algorithm!),
        ca.cert.subjectDer,
        refTime(thisUpdate),
        refTime(nextUpdate),
        ...entries.map((e) => tlvBytes(crl, e)),
        tlvBytes(crl, parts[parts.length - 1]!),
      );
      assert.equal(hex(tlvBytes(crl, tbs!)), hex(expectedTbs), `${count} entries`);
      assert.equal(
        hex(crl),
        hex(refFrameSigned(expectedTbs, tlvBytes(crl, algorithm!), key)),
        `${count} entries`,
      );
    }
  });
});

type RefFields = Parameters<typeof refCertificate>[0];

/** A certificate's fields read back from its DER, to be written again by the nested writer. */
function fieldsOf(der: Uint8Array, signingKey: RefFields['signingKey']): RefFields {
  const cert = ParsedCertificate.fromDer(der);
  const [tbs] = readChildren(der, readSingleTlv(der));
  const parts = readChildren(der, tbs!);
  const extensions = readChildren(der, readChildren(der, parts[7]!)[0]!);
  return {
    serial: readIntegerBytes(der, parts[1]!),
    issuer: tlvBytes(der, parts[3]!),
    subject: tlvBytes(der, parts[5]!),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    spki: tlvBytes(der, parts[6]!),
    extensions: extensions.map((e: Tlv) => tlvBytes(der, e)),
    signingKey,
  };
}

/**
 * `der` is what the nested writer writes for `fields`: the whole certificate where the signature is deterministic,
 * else the signed part and the algorithm, with a signature that verifies.
 */
function assertSameCertificate(der: Uint8Array, fields: RefFields): void {
  const type = fields.signingKey.asymmetricKeyType;
  if (type === 'ed25519' || type === 'rsa') {
    assert.equal(hex(der), hex(refCertificate(fields)));
    return;
  }
  const [tbs, algorithm, signature] = readChildren(der, readSingleTlv(der));
  assert.equal(hex(tlvBytes(der, tbs!)), hex(refTbsCertificate(fields)));
  const expected = refCertificate(fields);
  const [, refAlgorithm] = readChildren(expected, readSingleTlv(expected));
  assert.equal(hex(tlvBytes(der, algorithm!)), hex(tlvBytes(expected, refAlgorithm!)));
  const bits = contentOf(der, signature!);
  assert.equal(bits[0], 0, 'no unused bits');
  const signed = tlvBytes(der, tbs!);
  assert.ok(
    verifyWithKey(signed, bits.subarray(1), createPublicKey(fields.signingKey)),
    'the signature verifies',
  );
}
