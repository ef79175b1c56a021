import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  ExtendedKeyUsage,
  Extension,
  GeneralName,
  GeneralSubtree,
  GeneralSubtrees,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  NameConstraints,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  Time,
} from '@peculiar/asn1-x509';
import { createHash } from 'node:crypto';
import { readIntegerBytes, readOid, readSingleTlv } from '../../src/x509/der';
import {
  authorityKeyIdExtDer,
  basicConstraintsExtDer,
  extensionDer,
  extKeyUsageExtDer,
  keyUsageExtDer,
  KeyUsageName,
  nameConstraintsExtDer,
  subjectAltNameExtDer,
  subjectKeyIdExtDer,
  subjectKeyIdOf,
} from '../../src/x509/der-extensions';
import {
  derIa5String,
  derNamedBits,
  derOid,
  derSetOf,
  derSmallInteger,
  derTime,
  derUnsignedInteger,
  DerWriteError,
} from '../../src/x509/der-writer';
import { spkiDer } from '../../src/x509/keys';
import { OID_ARC_LIMIT } from '../../src/x509/oid';
import { createRootCa, issueX509Svid } from '../../src/x509/profiles';
import { KEY_ALGORITHMS, testKey } from '../support/x509';
import { propertyRuns } from '../support/property';

/**
 * The DER writer and the extension builders against the schema serializer they replaced: the same values
 * must give the same bytes, so certificates issued before and after the change are alike.
 */

function ser(value: unknown): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(value));
}

function schemaExtension(oid: string, critical: boolean, value: unknown): Uint8Array {
  return ser(
    new Extension({ extnID: oid, critical, extnValue: new OctetString(AsnConvert.serialize(value)) }),
  );
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('x509 DER writer', () => {
  it('OBJECT IDENTIFIER: the reader gives back every OID written, every arc up to 2^28 - 1 (property)', () => {
    const arc = fc.oneof(fc.nat({ max: 127 }), fc.integer({ min: 0, max: OID_ARC_LIMIT - 1 }));
    const oid = fc
      .tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 39 }), fc.array(arc, { maxLength: 6 }))
      .map(([a, b, rest]) => [a, b, ...rest].join('.'));
    fc.assert(
      fc.property(oid, (dotted) => {
        const der = derOid(dotted);
        assert.equal(readOid(der, readSingleTlv(der)), dotted);
      }),
      { numRuns: propertyRuns(500) },
    );
    // 2.x takes any second arc; the first sub-identifier then exceeds 80.
    assert.equal(hex(derOid('2.999.3')), '0603883703');
    // The largest arc allowed is four base-128 digits; the default agent-context OID as OpenSSL writes it.
    assert.equal(hex(derOid(`1.3.${OID_ARC_LIMIT - 1}`)), '06052bffffff7f');
    assert.equal(hex(derOid('1.3.6.1.4.1.262144.1.1')), '060a2b060104019080000101');
    for (const bad of ['', '3.1', '1.40', '1', '1..2', '1.02', 'a.b']) {
      assert.throws(() => derOid(bad), DerWriteError, bad);
    }
  });

  it('OBJECT IDENTIFIER: refuses any sub-identifier of 2^28 or more (Go and Python cryptography 38 refuse them)', () => {
    for (const bad of [
      `1.3.${OID_ARC_LIMIT}`,
      `1.3.6.1.4.1.${2 ** 31}.1`,
      '2.25.31710684403515015008777295008216665364',
      `1.3.6.1.4.1.262144.1.${'9'.repeat(40)}`,
      // The first sub-identifier is 40 * 2 + the second arc.
      `2.${OID_ARC_LIMIT - 80}.1`,
    ]) {
      assert.throws(
        () => derOid(bad),
        (e: unknown) => {
          assert.ok(e instanceof DerWriteError, String(e));
          assert.match(e.message, /below 2\^28/);
          return true;
        },
      );
    }
    const highest = derOid(`2.${OID_ARC_LIMIT - 81}.1`);
    assert.equal(readOid(highest, readSingleTlv(highest)), `2.${OID_ARC_LIMIT - 81}.1`);
    // The CRL's extensions are written by extensionDer too, under the same rule.
    assert.throws(() => extensionDer(`1.3.6.1.4.1.${2 ** 28}`, false, Uint8Array.of(5, 0)), DerWriteError);
  });

  it('INTEGER: minimal two’s complement of a magnitude, positive always (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (magnitude) => {
        const der = derUnsignedInteger(magnitude);
        const content = readIntegerBytes(der, readSingleTlv(der)); // throws unless minimal
        assert.ok(content[0]! < 0x80);
        const value = BigInt(`0x${hex(magnitude) || '0'}`);
        assert.equal(BigInt(`0x${hex(content)}`), value);
      }),
      { numRuns: propertyRuns(500) },
    );
    assert.equal(hex(derSmallInteger(0)), '020100');
    assert.equal(hex(derSmallInteger(128)), '02020080');
    assert.throws(() => derSmallInteger(-1), DerWriteError);
  });

  it('times: UTCTime 1950–2049, GeneralizedTime outside, as the schema chooses', () => {
    for (const iso of [
      '1950-01-01T00:00:00Z',
      '1999-12-31T23:59:59Z',
      '2026-11-26T03:04:05Z',
      '2049-12-31T23:59:59Z',
      '2050-01-01T00:00:00Z',
      '9999-12-31T23:59:59Z',
    ]) {
      const d = new Date(iso);
      assert.equal(hex(derTime(d)), hex(ser(new Time(d))), iso);
    }
    // Fractions are cut, never rounded up.
    assert.equal(
      hex(derTime(new Date('2026-01-01T00:00:00.999Z'))),
      hex(derTime(new Date('2026-01-01T00:00:00Z'))),
    );
    assert.throws(() => derTime(new Date(NaN)), DerWriteError);
  });

  it('SET OF sorts its elements by encoding; named bits drop trailing zeros like the schema KeyUsage', () => {
    const a = derIa5String('b');
    const b = derIa5String('a');
    const c = derIa5String('ab');
    // 'a' (16 01 61) < 'b' (16 01 62) < 'ab' (16 02 61 62): the length octet decides before the contents.
    assert.equal(hex(derSetOf([a, c, b])), `310a${hex(b)}${hex(a)}${hex(c)}`);
    const names: KeyUsageName[] = ['digitalSignature', 'keyEncipherment', 'keyCertSign', 'cRLSign'];
    fc.assert(
      fc.property(fc.subarray(names, { minLength: 1 }), (usages) => {
        const flags = usages.reduce((acc, u) => acc | KeyUsageFlags[u], 0);
        assert.equal(
          hex(keyUsageExtDer(usages)),
          hex(schemaExtension('2.5.29.15', true, new KeyUsage(flags))),
        );
      }),
    );
    assert.equal(hex(derNamedBits([])), '030100');
    assert.throws(() => derIa5String('é'), DerWriteError);
  });

  it('each certificate extension is byte for byte what the schema classes wrote', () => {
    const keyId = Uint8Array.from({ length: 20 }, (_, i) => i * 7);
    assert.equal(
      hex(basicConstraintsExtDer(false)),
      hex(schemaExtension('2.5.29.19', true, new BasicConstraints())),
    );
    assert.equal(
      hex(basicConstraintsExtDer(true, 0)),
      hex(schemaExtension('2.5.29.19', true, new BasicConstraints({ cA: true, pathLenConstraint: 0 }))),
    );
    assert.equal(
      hex(basicConstraintsExtDer(true)),
      hex(schemaExtension('2.5.29.19', true, new BasicConstraints({ cA: true }))),
    );
    const ekus = ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'];
    assert.equal(
      hex(extKeyUsageExtDer(ekus)),
      hex(schemaExtension('2.5.29.37', false, new ExtendedKeyUsage(ekus))),
    );
    assert.equal(
      hex(subjectKeyIdExtDer(keyId)),
      hex(schemaExtension('2.5.29.14', false, new SubjectKeyIdentifier(keyId))),
    );
    assert.equal(
      hex(authorityKeyIdExtDer(keyId)),
      hex(
        schemaExtension(
          '2.5.29.35',
          false,
          new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(keyId) }),
        ),
      ),
    );
    const uris = ['spiffe://example.org/agent/a'];
    const dnsNames = ['a.example.org', '*.b.example.org'];
    assert.equal(
      hex(subjectAltNameExtDer({ uris, dnsNames })),
      hex(
        schemaExtension(
          '2.5.29.17',
          false,
          new SubjectAlternativeName([
            ...uris.map((u) => new GeneralName({ uniformResourceIdentifier: u })),
            ...dnsNames.map((d) => new GeneralName({ dNSName: d })),
          ]),
        ),
      ),
    );
    const nc = new NameConstraints();
    nc.permittedSubtrees = new GeneralSubtrees([
      new GeneralSubtree({ base: new GeneralName({ uniformResourceIdentifier: 'example.org' }) }),
      new GeneralSubtree({ base: new GeneralName({ dNSName: '.example.org' }) }),
    ]);
    nc.excludedSubtrees = new GeneralSubtrees([
      new GeneralSubtree({ base: new GeneralName({ dNSName: 'bad.example.org' }) }),
    ]);
    assert.equal(
      hex(
        nameConstraintsExtDer({
          permitted: [
            { kind: 'uri', value: 'example.org' },
            { kind: 'dns', value: '.example.org' },
          ],
          excluded: [{ kind: 'dns', value: 'bad.example.org' }],
        }),
      ),
      hex(schemaExtension('2.5.29.30', true, nc)),
    );
    const only = new NameConstraints();
    only.excludedSubtrees = nc.excludedSubtrees;
    assert.equal(
      hex(nameConstraintsExtDer({ excluded: [{ kind: 'dns', value: 'bad.example.org' }] })),
      hex(schemaExtension('2.5.29.30', true, only)),
    );
    const raw = Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01);
    assert.equal(
      hex(extensionDer('1.2.3.4', false, raw)),
      hex(ser(new Extension({ extnID: '1.2.3.4', critical: false, extnValue: new OctetString(raw) }))),
    );
  });

  it('the subject key identifier is RFC 7093 method 1 over the subjectPublicKey bits, for every key type', () => {
    for (const alg of KEY_ALGORITHMS) {
      const spki = spkiDer(testKey(alg).publicKey);
      const bits = new Uint8Array(AsnConvert.parse(spki, SubjectPublicKeyInfo).subjectPublicKey);
      assert.equal(
        hex(subjectKeyIdOf(spki)),
        hex(createHash('sha256').update(bits).digest().subarray(0, 20)),
      );
    }
  });

  it('issued certificates survive the schema round trip byte for byte (the TBS is DER as the schema writes it)', () => {
    for (const alg of KEY_ALGORITHMS) {
      const key = testKey(alg).privateKey;
      const root = createRootCa({
        trustDomain: 'example.org',
        key,
        ttlSeconds: 3600,
        pathLen: 1,
        nameConstraints: { permitted: [{ kind: 'uri', value: 'example.org' }] },
      });
      const leaf = issueX509Svid({
        spiffeId: 'spiffe://example.org/agent/a',
        publicKey: testKey('ec-p256', 1).publicKey,
        issuer: { cert: root.cert, key },
        ttlSeconds: 600,
        dnsNames: ['a.example.org'],
        // No agent context here: asn1js cannot re-encode its 128-bit OID arc (see oid.ts), whatever wrote it.
      });
      for (const der of [root.der, leaf.der]) {
        assert.equal(hex(ser(AsnConvert.parse(der, Certificate))), hex(der), alg);
      }
    }
  });
});
