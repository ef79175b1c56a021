import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import {
  AgentContextError,
  ErrorCode,
  InvalidSpiffeIdError,
  InvalidTrustDomainError,
  LanyardError,
  MalformedInputError,
} from '../../src/errors';
import { DEFAULT_AGENT_CONTEXT_OID } from '../../src/x509/agent-context/oid';
import { AGENT_CONTEXT_LIMITS } from '../../src/x509/agent-context/types';
import { randomSerial } from '../../src/x509/build';
import { EKU_CLIENT_AUTH, EKU_SERVER_AUTH, ParsedCertificate } from '../../src/x509/certificate';
import { SIG_ECDSA_SHA256, SIG_ECDSA_SHA384, SIG_ED25519, SIG_RSA_SHA256 } from '../../src/x509/keys';
import {
  createIntermediateCa,
  createRootCa,
  IssuedCertificate,
  Issuer,
  issueX509Svid,
  SvidOptions,
} from '../../src/x509/profiles';
import { KEY_ALGORITHMS, testKey, TestKeyAlgorithm } from '../support/x509';
import { expectRefusalAs } from '../support/refusal';

const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  nameConstraints: '2.5.29.30',
};

const TD = 'example.org';
const NOW = new Date('2030-06-01T12:00:00.750Z');
const NOW_S = Date.parse('2030-06-01T12:00:00Z');
const DAY = 24 * 60 * 60;

function root(alg: TestKeyAlgorithm = 'ec-p256', ttlSeconds = 365 * DAY): IssuedCertificate {
  return createRootCa({ trustDomain: TD, key: testKey(alg).privateKey, ttlSeconds, now: NOW });
}

function issuerOf(issued: IssuedCertificate, key: KeyObject): Issuer {
  return { cert: issued.cert, key };
}

function svid(overrides: Partial<SvidOptions> = {}): IssuedCertificate {
  return issueX509Svid({
    spiffeId: 'spiffe://example.org/agent/planner',
    publicKey: testKey('ec-p256', 1).publicKey,
    issuer: issuerOf(root(), testKey('ec-p256').privateKey),
    ttlSeconds: 3600,
    now: NOW,
    ...overrides,
  });
}

function extOids(cert: ParsedCertificate): string[] {
  return cert.extensions.map((e) => e.oid).sort();
}

function criticality(cert: ParsedCertificate): Record<string, boolean> {
  return Object.fromEntries(cert.extensions.map((e) => [e.oid, e.critical]));
}

/** RFC 7093 §2 method 1, computed independently of the code under test. */
function expectedKeyId(cert: ParsedCertificate): Uint8Array {
  const spki = AsnConvert.parse(cert.spkiDer, SubjectPublicKeyInfo);
  return new Uint8Array(
    createHash('sha256').update(new Uint8Array(spki.subjectPublicKey)).digest().subarray(0, 20),
  );
}

/** ParsedCertificate returns the schema library's array subclasses; compare as plain arrays. */
function plainConstraints(cert: ParsedCertificate): unknown {
  const nc = cert.nameConstraints;
  return nc && { permitted: [...nc.permitted], excluded: [...nc.excluded] };
}

/**
 * The agent-context extension, found by the DER of its OID rather than by ParsedCertificate's OID string:
 * asn1js renders arcs longer than 8 bytes (the UUID arc is 17) as hex, not decimal.
 */
function agentContextExtension(
  cert: ParsedCertificate,
): { critical: boolean; value: Uint8Array } | undefined {
  const known = new Set(Object.values(OID));
  const unknown = cert.extensions.filter((e) => !known.has(e.oid));
  assert.ok(unknown.length <= 1, 'at most one private extension');
  if (unknown.length === 0) return undefined;
  assert.ok(
    Buffer.from(cert.der).includes(oidDer(DEFAULT_AGENT_CONTEXT_OID)),
    'the DER carries the agent-context OID',
  );
  return unknown[0];
}

/** OBJECT IDENTIFIER DER, encoded here independently with BigInt base-128 arcs. */
function oidDer(oid: string): Buffer {
  const arcs = oid.split('.').map((a) => BigInt(a));
  const body: number[] = [];
  for (const arc of [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)]) {
    const bytes: number[] = [];
    for (let v = arc; ; v >>= 7n) {
      bytes.unshift(Number(v & 0x7fn) | (bytes.length > 0 ? 0x80 : 0));
      if (v < 0x80n) break;
    }
    body.push(...bytes);
  }
  return Buffer.from([0x06, body.length, ...body]);
}

function serialBytes(cert: ParsedCertificate): Uint8Array {
  return new Uint8Array(cert.asn.tbsCertificate.serialNumber);
}

const SIG_OID_BY_KEY = {
  'ec-p256': SIG_ECDSA_SHA256,
  'ec-p384': SIG_ECDSA_SHA384,
  'rsa-2048': SIG_RSA_SHA256,
  ed25519: SIG_ED25519,
} as const;

describe('x509 profiles', () => {
  describe('self-signed root CA', () => {
    it('has exactly the root profile fields', () => {
      const { cert } = root();
      assert.equal(cert.asn.tbsCertificate.version, 2, 'v3');
      assert.equal(cert.node.subject, 'O=Lanyard\nCN=Lanyard root CA');
      assert.equal(cert.node.issuer, cert.node.subject);
      assert.ok(cert.selfIssued);
      assert.ok(cert.isSignedBy(cert));
      assert.deepEqual(
        extOids(cert),
        [OID.subjectKeyId, OID.keyUsage, OID.subjectAltName, OID.basicConstraints].sort(),
      );
      assert.deepEqual(criticality(cert), {
        [OID.basicConstraints]: true,
        [OID.keyUsage]: true,
        [OID.subjectKeyId]: false,
        [OID.subjectAltName]: false,
      });
      assert.deepEqual(cert.basicConstraints, { ca: true });
      assert.deepEqual(cert.keyUsage, {
        digitalSignature: false,
        keyEncipherment: false,
        keyAgreement: false,
        keyCertSign: true,
        cRLSign: true,
      });
      assert.deepEqual([...cert.uriSans], ['spiffe://example.org']);
      assert.equal(cert.sanCount, 1);
      assert.deepEqual(cert.subjectKeyId, expectedKeyId(cert));
      assert.equal(cert.authorityKeyId, undefined, 'self-signed: no AKI');
      assert.equal(cert.extKeyUsage, undefined);
      assert.equal(cert.notBefore.getTime(), NOW_S - 10_000, 'backdated 10 s, whole seconds');
      assert.equal(cert.notAfter.getTime(), NOW_S + 365 * DAY * 1000);
    });

    it('takes pathLen, subject and URI/DNS name constraints', () => {
      const { cert } = createRootCa({
        trustDomain: TD,
        key: testKey('ec-p256').privateKey,
        ttlSeconds: DAY,
        now: NOW,
        pathLen: 1,
        subject: { organization: 'Acme', commonName: 'Acme agents root' },
        nameConstraints: {
          permitted: [
            { kind: 'uri', value: TD },
            { kind: 'dns', value: 'svc.example.org' },
          ],
          excluded: [{ kind: 'dns', value: 'bad.example.org' }],
        },
      });
      assert.deepEqual(cert.basicConstraints, { ca: true, pathLen: 1 });
      assert.equal(cert.node.subject, 'O=Acme\nCN=Acme agents root');
      assert.equal(cert.extension(OID.nameConstraints)?.critical, true);
      assert.deepEqual(plainConstraints(cert), {
        permitted: [
          { kind: 'uri', value: TD },
          { kind: 'dns', value: 'svc.example.org' },
        ],
        excluded: [{ kind: 'dns', value: 'bad.example.org' }],
      });
    });

    it('uses GeneralizedTime from 2050 on and UTCTime before (RFC 5280 §4.1.2.5)', () => {
      const { cert } = root('ec-p256', 30 * 365 * DAY);
      const validity = cert.asn.tbsCertificate.validity;
      assert.ok(validity.notBefore.utcTime, 'notBefore 2030: UTCTime');
      assert.ok(validity.notAfter.generalTime, 'notAfter 2060: GeneralizedTime');
      assert.equal(cert.notAfter.getUTCFullYear(), 2060);
    });

    for (const alg of KEY_ALGORITHMS) {
      it(`signs itself with a ${alg} key using that key's one signature algorithm`, () => {
        const { cert } = root(alg);
        assert.ok(cert.isSignedBy(cert));
        assert.equal(cert.asn.signatureAlgorithm.algorithm, SIG_OID_BY_KEY[alg]);
        assert.equal(cert.asn.tbsCertificate.signature.algorithm, SIG_OID_BY_KEY[alg]);
        // RSA carries an explicit NULL (RFC 4055); ECDSA and Ed25519 carry no parameters (RFC 5758, RFC 8410).
        assert.equal(cert.asn.signatureAlgorithm.parameters, alg === 'rsa-2048' ? null : undefined);
      });
    }

    it('refuses bad input', () => {
      const key = testKey('ec-p256').privateKey;
      expectRefusalAs(
        () => createRootCa({ trustDomain: 'Example.org', key, ttlSeconds: DAY }),
        InvalidTrustDomainError,
        ErrorCode.INVALID_TRUST_DOMAIN,
      );
      expectRefusalAs(
        () => createRootCa({ trustDomain: 'spiffe://example.org/workload', key, ttlSeconds: DAY }),
        InvalidTrustDomainError,
        ErrorCode.INVALID_TRUST_DOMAIN,
      );
      expectRefusalAs(
        () => createRootCa({ trustDomain: TD, key: testKey('ec-p256').publicKey, ttlSeconds: DAY }),
        LanyardError,
        ErrorCode.INVALID_ARGUMENT,
        /private key/,
      );
      for (const ttlSeconds of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
        expectRefusalAs(
          () => createRootCa({ trustDomain: TD, key, ttlSeconds }),
          LanyardError,
          ErrorCode.INVALID_ARGUMENT,
        );
      }
      expectRefusalAs(
        () => createRootCa({ trustDomain: TD, key, ttlSeconds: DAY, pathLen: -1 }),
        LanyardError,
        ErrorCode.INVALID_ARGUMENT,
      );
      expectRefusalAs(
        () =>
          createRootCa({ trustDomain: TD, key, ttlSeconds: DAY, subject: { commonName: 'x'.repeat(65) } }),
        LanyardError,
        ErrorCode.INVALID_ARGUMENT,
      );
      expectRefusalAs(
        () =>
          createRootCa({
            trustDomain: TD,
            key,
            ttlSeconds: DAY,
            nameConstraints: { permitted: [{ kind: 'uri', value: 'spiffe://example.org' }] },
          }),
        LanyardError,
        ErrorCode.INVALID_ARGUMENT,
      );
      for (const value of ['.svc.example.org', '*.example.org', 'under_score.example.org']) {
        // RFC 5280 gives a dNSName constraint no leading-"." or wildcard form: verifiers refuse such a CA.
        expectRefusalAs(
          () =>
            createRootCa({
              trustDomain: TD,
              key,
              ttlSeconds: DAY,
              nameConstraints: { excluded: [{ kind: 'dns', value }] },
            }),
          LanyardError,
          ErrorCode.INVALID_ARGUMENT,
        );
      }
      const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
      expectRefusalAs(
        () => createRootCa({ trustDomain: TD, key: p521, ttlSeconds: DAY }),
        MalformedInputError,
        ErrorCode.UNSUPPORTED_KEY,
      );
    });
  });

  describe('intermediate CA', () => {
    it('has the CA profile plus AKI = issuer SKI, and the issuer name byte for byte', () => {
      const r = root();
      const { cert } = createIntermediateCa({
        trustDomain: TD,
        publicKey: testKey('ec-p256', 2).publicKey,
        issuer: issuerOf(r, testKey('ec-p256').privateKey),
        ttlSeconds: 30 * DAY,
        now: NOW,
      });
      assert.equal(cert.node.subject, 'O=Lanyard\nCN=Lanyard intermediate CA');
      assert.deepEqual(cert.issuerDer, r.cert.subjectDer);
      assert.ok(!cert.selfIssued);
      assert.ok(cert.isSignedBy(r.cert));
      assert.deepEqual(
        extOids(cert),
        [OID.basicConstraints, OID.keyUsage, OID.subjectKeyId, OID.subjectAltName, OID.authorityKeyId].sort(),
      );
      assert.deepEqual(criticality(cert), {
        [OID.basicConstraints]: true,
        [OID.keyUsage]: true,
        [OID.subjectKeyId]: false,
        [OID.subjectAltName]: false,
        [OID.authorityKeyId]: false,
      });
      assert.deepEqual(cert.basicConstraints, { ca: true });
      assert.equal(cert.keyUsage?.keyCertSign, true);
      assert.equal(cert.keyUsage?.cRLSign, true);
      assert.equal(cert.keyUsage?.digitalSignature, false);
      assert.deepEqual([...cert.uriSans], ['spiffe://example.org']);
      assert.deepEqual(cert.subjectKeyId, expectedKeyId(cert));
      assert.deepEqual(cert.authorityKeyId, r.cert.subjectKeyId);
      assert.equal(cert.notBefore.getTime(), NOW_S - 10_000);
      assert.equal(cert.notAfter.getTime(), NOW_S + 30 * DAY * 1000);
    });

    it("caps notAfter at the issuer's notAfter", () => {
      const r = root('ec-p256', DAY);
      const { cert } = createIntermediateCa({
        trustDomain: TD,
        publicKey: testKey('ec-p256', 2).publicKey,
        issuer: issuerOf(r, testKey('ec-p256').privateKey),
        ttlSeconds: 30 * DAY,
        now: NOW,
      });
      assert.equal(cert.notAfter.getTime(), r.cert.notAfter.getTime());
    });

    for (const parentAlg of KEY_ALGORITHMS) {
      for (const childAlg of KEY_ALGORITHMS) {
        it(`a ${parentAlg} root signs a ${childAlg} intermediate`, () => {
          const r = root(parentAlg);
          const { cert } = createIntermediateCa({
            trustDomain: TD,
            publicKey: testKey(childAlg, 1).publicKey,
            issuer: issuerOf(r, testKey(parentAlg).privateKey),
            ttlSeconds: DAY,
            now: NOW,
          });
          assert.ok(cert.isSignedBy(r.cert));
          assert.equal(cert.asn.signatureAlgorithm.algorithm, SIG_OID_BY_KEY[parentAlg]);
          assert.ok(cert.publicKey.equals(testKey(childAlg, 1).publicKey));
        });
      }
    }

    it('honours the issuer pathLenConstraint', () => {
      const key = testKey('ec-p256').privateKey;
      const r0 = createRootCa({ trustDomain: TD, key, ttlSeconds: DAY, now: NOW, pathLen: 0 });
      const r1 = createRootCa({ trustDomain: TD, key, ttlSeconds: DAY, now: NOW, pathLen: 1 });
      const base = { trustDomain: TD, publicKey: testKey('ec-p256', 2).publicKey, ttlSeconds: DAY, now: NOW };
      expectRefusalAs(
        () => createIntermediateCa({ ...base, issuer: issuerOf(r0, key) }),
        LanyardError,
        ErrorCode.PATH_LEN_EXCEEDED,
      );
      expectRefusalAs(
        () => createIntermediateCa({ ...base, issuer: issuerOf(r1, key), pathLen: 1 }),
        LanyardError,
        ErrorCode.PATH_LEN_EXCEEDED,
      );
      const ok = createIntermediateCa({ ...base, issuer: issuerOf(r1, key), pathLen: 0 });
      assert.deepEqual(ok.cert.basicConstraints, { ca: true, pathLen: 0 });
    });
  });

  describe('X.509-SVID leaf', () => {
    it('has exactly the X509-SVID profile fields', () => {
      const r = root();
      const { cert } = svid({ issuer: issuerOf(r, testKey('ec-p256').privateKey) });
      assert.equal(cert.asn.tbsCertificate.version, 2);
      assert.equal(cert.node.subject, 'O=SPIFFE');
      assert.deepEqual(cert.issuerDer, r.cert.subjectDer);
      assert.ok(cert.isSignedBy(r.cert));
      assert.deepEqual(
        extOids(cert),
        [
          OID.basicConstraints,
          OID.keyUsage,
          OID.extKeyUsage,
          OID.subjectKeyId,
          OID.authorityKeyId,
          OID.subjectAltName,
        ].sort(),
      );
      assert.deepEqual(criticality(cert), {
        [OID.basicConstraints]: true,
        [OID.keyUsage]: true,
        [OID.extKeyUsage]: false,
        [OID.subjectKeyId]: false,
        [OID.authorityKeyId]: false,
        [OID.subjectAltName]: false,
      });
      assert.deepEqual(cert.basicConstraints, { ca: false });
      assert.deepEqual(cert.keyUsage, {
        digitalSignature: true,
        keyEncipherment: false,
        keyAgreement: false,
        keyCertSign: false,
        cRLSign: false,
      });
      assert.deepEqual([...(cert.extKeyUsage ?? [])], [EKU_SERVER_AUTH, EKU_CLIENT_AUTH]);
      assert.deepEqual([...cert.uriSans], ['spiffe://example.org/agent/planner']);
      assert.deepEqual([...cert.dnsSans], []);
      assert.equal(cert.sanCount, 1);
      assert.deepEqual(cert.subjectKeyId, expectedKeyId(cert));
      assert.deepEqual(cert.authorityKeyId, r.cert.subjectKeyId);
      assert.equal(cert.notBefore.getTime(), NOW_S - 10_000);
      assert.equal(cert.notAfter.getTime(), NOW_S + 3600_000);
      assert.ok(cert.publicKey.equals(testKey('ec-p256', 1).publicKey));
    });

    it('adds DNS SANs after the one URI SAN', () => {
      const { cert } = svid({ dnsNames: ['planner.example.org', '*.agents.example.org'] });
      assert.deepEqual([...cert.uriSans], ['spiffe://example.org/agent/planner']);
      assert.deepEqual([...cert.dnsSans], ['planner.example.org', '*.agents.example.org']);
      assert.equal(cert.sanCount, 3);
    });

    it('sets keyEncipherment for an RSA key, never keyAgreement', () => {
      const rsa = svid({ publicKey: testKey('rsa-2048', 1).publicKey }).cert;
      assert.deepEqual(rsa.keyUsage, {
        digitalSignature: true,
        keyEncipherment: true,
        keyAgreement: false,
        keyCertSign: false,
        cRLSign: false,
      });
      for (const alg of ['ec-p384', 'ed25519'] as const) {
        const ku = svid({ publicKey: testKey(alg, 1).publicKey }).cert.keyUsage;
        assert.equal(ku?.keyEncipherment, false, alg);
        assert.equal(ku?.keyAgreement, false, alg);
      }
    });

    it('carries the agent context as one non-critical extension, byte for byte', () => {
      const context = new Uint8Array([0x30, 0x06, 0x02, 0x01, 0x01, 0x0c, 0x01, 0x61]);
      const { cert } = svid({ agentContextDer: context });
      const ext = agentContextExtension(cert);
      assert.ok(ext);
      assert.equal(ext.critical, false);
      assert.deepEqual(ext.value, context);
      assert.equal(agentContextExtension(svid().cert), undefined, 'absent unless given');
    });

    it('refuses an agent context that is not exactly one DER SEQUENCE within the size limit', () => {
      const bad: [Uint8Array, string][] = [
        [new Uint8Array([]), ErrorCode.MALFORMED_AGENT_CONTEXT],
        [new Uint8Array([0x04, 0x01, 0x00]), ErrorCode.MALFORMED_AGENT_CONTEXT],
        [new Uint8Array([0x30, 0x03, 0x02, 0x01]), ErrorCode.MALFORMED_AGENT_CONTEXT],
        [new Uint8Array([0x30, 0x00, 0x00]), ErrorCode.MALFORMED_AGENT_CONTEXT],
        [new Uint8Array([0x30, 0x80, 0x00, 0x00]), ErrorCode.MALFORMED_AGENT_CONTEXT],
        [new Uint8Array(AGENT_CONTEXT_LIMITS.maxEncodedBytes + 1), ErrorCode.AGENT_CONTEXT_TOO_LARGE],
      ];
      for (const [agentContextDer, code] of bad) {
        expectRefusalAs(() => svid({ agentContextDer }), AgentContextError, code);
      }
    });

    it("caps notAfter at the issuer's notAfter and backdates notBefore as asked", () => {
      const r = root('ec-p256', 600);
      const issuer = issuerOf(r, testKey('ec-p256').privateKey);
      const capped = svid({ issuer, ttlSeconds: 3600 }).cert;
      assert.equal(capped.notAfter.getTime(), r.cert.notAfter.getTime());
      const noBackdate = svid({ issuer, ttlSeconds: 60, backdateSeconds: 0 }).cert;
      assert.equal(noBackdate.notBefore.getTime(), NOW_S);
      assert.equal(noBackdate.notAfter.getTime(), NOW_S + 60_000);
    });

    it("never starts before its issuer: a backdated notBefore is clamped to the issuer's notBefore", () => {
      const r = root('ec-p256');
      const issuer = issuerOf(r, testKey('ec-p256').privateKey);
      // Issued the moment the CA was made, with the default 10 s backdate that the CA itself also has.
      const early = svid({
        issuer,
        now: new Date(r.cert.notBefore.getTime() + 5_000),
        backdateSeconds: 60,
      }).cert;
      assert.equal(early.notBefore.getTime(), r.cert.notBefore.getTime());
      const later = svid({ issuer, now: new Date(NOW_S + 3_600_000) }).cert;
      assert.equal(later.notBefore.getTime(), NOW_S + 3_600_000 - 10_000);
    });

    for (const issuerAlg of KEY_ALGORITHMS) {
      for (const leafAlg of KEY_ALGORITHMS) {
        it(`a ${issuerAlg} CA signs a ${leafAlg} SVID`, () => {
          const r = root(issuerAlg);
          const { cert } = svid({
            issuer: issuerOf(r, testKey(issuerAlg).privateKey),
            publicKey: testKey(leafAlg, 1).publicKey,
          });
          assert.ok(cert.isSignedBy(r.cert));
          assert.equal(cert.asn.signatureAlgorithm.algorithm, SIG_OID_BY_KEY[issuerAlg]);
        });
      }
    }

    it('chains root -> intermediate -> SVID', () => {
      const r = root('ec-p384');
      const i = createIntermediateCa({
        trustDomain: TD,
        publicKey: testKey('rsa-2048').publicKey,
        issuer: issuerOf(r, testKey('ec-p384').privateKey),
        ttlSeconds: DAY,
        now: NOW,
      });
      const { cert } = svid({ issuer: issuerOf(i, testKey('rsa-2048').privateKey) });
      assert.ok(cert.isSignedBy(i.cert));
      assert.deepEqual(cert.authorityKeyId, i.cert.subjectKeyId);
      assert.deepEqual(cert.issuerDer, i.cert.subjectDer);
    });

    it('refuses to sign when the issuer is not a CA, is expired, or does not match its key', () => {
      const leaf = svid();
      expectRefusalAs(
        () => svid({ issuer: issuerOf(leaf, testKey('ec-p256', 1).privateKey) }),
        LanyardError,
        ErrorCode.NOT_A_CA,
      );
      const r = root('ec-p256', 600);
      expectRefusalAs(
        () =>
          svid({
            issuer: issuerOf(r, testKey('ec-p256').privateKey),
            now: new Date(NOW.getTime() + 601_000),
          }),
        LanyardError,
        ErrorCode.CERT_EXPIRED,
      );
      expectRefusalAs(
        () => svid({ issuer: issuerOf(r, testKey('ec-p256', 3).privateKey) }),
        LanyardError,
        ErrorCode.INVALID_ARGUMENT,
        /does not match/,
      );
      expectRefusalAs(
        () => svid({ issuer: issuerOf(r, testKey('ec-p256').publicKey) }),
        LanyardError,
        ErrorCode.INVALID_ARGUMENT,
        /private key/,
      );
    });

    it("refuses a SPIFFE ID outside the issuer's trust domain", () => {
      expectRefusalAs(
        () => svid({ spiffeId: 'spiffe://other.org/agent' }),
        LanyardError,
        ErrorCode.WRONG_TRUST_DOMAIN,
      );
    });

    it('refuses SPIFFE IDs that break the SPIFFE-ID rules', () => {
      const bad = [
        '',
        'spiffe://example.org',
        'spiffe://example.org/',
        'SPIFFE://example.org/a',
        'https://example.org/a',
        'spiffe://Example.org/a',
        'spiffe://example.org/a/../b',
        'spiffe://example.org/./a',
        'spiffe://example.org/a//b',
        'spiffe://example.org/a?x=1',
        'spiffe://example.org/a#f',
        'spiffe://example.org/a%2Fb',
        'spiffe://user@example.org/a',
        'spiffe://example.org:443/a',
        `spiffe://example.org/${'a'.repeat(2048)}`,
      ];
      for (const spiffeId of bad) {
        expectRefusalAs(() => svid({ spiffeId }), InvalidSpiffeIdError, ErrorCode.INVALID_SPIFFE_ID);
      }
    });

    it('refuses bad DNS names, bad TTLs and unsupported workload keys', () => {
      for (const dnsNames of [
        [''],
        ['a..b'],
        ['-a.example.org'],
        ['a_b.example.org'],
        ['*.org'],
        ['a', 'a'],
      ]) {
        expectRefusalAs(() => svid({ dnsNames }), LanyardError, ErrorCode.INVALID_ARGUMENT);
      }
      for (const ttlSeconds of [0, -1, Number.NaN]) {
        expectRefusalAs(() => svid({ ttlSeconds }), LanyardError, ErrorCode.INVALID_ARGUMENT);
      }
      for (const backdateSeconds of [-1, 1.5, 3601]) {
        expectRefusalAs(() => svid({ backdateSeconds }), LanyardError, ErrorCode.INVALID_ARGUMENT);
      }
      const unsupported = [
        generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey,
        generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey,
        generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey,
        generateKeyPairSync('ed448').publicKey,
      ];
      for (const publicKey of unsupported) {
        expectRefusalAs(() => svid({ publicKey }), MalformedInputError, ErrorCode.UNSUPPORTED_KEY);
      }
    });
  });

  describe('serial numbers', () => {
    it('are 16 minimal bytes, positive, and distinct', () => {
      const seen = new Set<string>();
      for (let i = 0; i < 2000; i++) {
        const s = randomSerial();
        assert.equal(s.length, 16);
        assert.ok(s[0]! >= 0x01 && s[0]! <= 0x7f, 'top bit clear, no leading zero byte');
        seen.add(Buffer.from(s).toString('hex'));
      }
      assert.equal(seen.size, 2000);
    });

    it('are copies of their own: changing one changes no other serial (they share a random pool)', () => {
      const serials = Array.from({ length: 600 }, () => randomSerial());
      const before = serials.map((s) => Buffer.from(s).toString('hex'));
      for (const s of serials) {
        assert.equal(s.byteOffset, 0, 'not a view on the pool');
        s.fill(0);
      }
      const next = Array.from({ length: 600 }, () => randomSerial());
      assert.ok(next.every((s) => s[0] !== 0));
      assert.equal(new Set([...before, ...next.map((s) => Buffer.from(s).toString('hex'))]).size, 1200);
    });

    it('are what the certificate carries', () => {
      const { cert } = svid();
      const bytes = serialBytes(cert);
      assert.equal(bytes.length, 16);
      assert.ok(bytes[0]! > 0 && bytes[0]! < 0x80);
      assert.equal(cert.serialHex, Buffer.from(bytes).toString('hex').replace(/^0+/, ''));
    });
  });
});
