/**
 * signX509SvidLeaf signs without parsing the leaf back: its certificate must be byte for byte what issueX509Svid
 * signed before (the fixture is issueX509Svid's output at c5cd17a for the same inputs; the Ed25519 CA signs
 * deterministically, and the serial is the fixture's), and the fields it reports must be the certificate's own.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeAgentContext } from '../../src/x509/agent-context/codec';
import { describeAgentContextAnyOid } from '../../src/x509/agent-context/oid';
import { ParsedCertificate } from '../../src/x509/certificate';
import { describeKey, generateSigningKeyPair, spkiDer } from '../../src/x509/keys';
import {
  createIntermediateCa,
  createRootCa,
  issueX509Svid,
  signX509SvidLeaf,
  signX509SvidLeafForKey,
  type SvidOptions,
} from '../../src/x509/profiles';

interface GoldenCase {
  spiffeId: string;
  publicKeySpki: string;
  ttlSeconds: number;
  now: string;
  dnsNames?: string[];
  agentContextDer?: string;
  serialHex: string;
  leafDer: string;
}

const golden = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'svid-leaf-golden.json'), 'utf8')) as {
  caKeyPkcs8: string;
  caCertDer: string;
  cases: GoldenCase[];
};
const NOW = new Date('2030-06-01T12:00:00Z');
const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const issuer = {
  cert: ParsedCertificate.fromDer(b64(golden.caCertDer)),
  key: createPrivateKey(golden.caKeyPkcs8),
};

function options(c: GoldenCase): SvidOptions {
  return {
    spiffeId: c.spiffeId,
    publicKey: createPublicKey({ key: Buffer.from(c.publicKeySpki, 'base64'), format: 'der', type: 'spki' }),
    issuer,
    ttlSeconds: c.ttlSeconds,
    now: new Date(c.now),
    ...(c.dnsNames !== undefined && { dnsNames: c.dnsNames }),
    ...(c.agentContextDer !== undefined && { agentContextDer: b64(c.agentContextDer) }),
  };
}

describe('signX509SvidLeaf', () => {
  it('signs the same bytes issueX509Svid signed before, for the same inputs and serial', () => {
    assert.equal(golden.cases.length, 2);
    for (const c of golden.cases) {
      const leaf = signX509SvidLeaf(options(c), Buffer.from(c.serialHex.padStart(32, '0'), 'hex'));
      assert.equal(Buffer.from(leaf.der).toString('base64'), c.leafDer, c.spiffeId);
    }
  });

  it("reports the certificate's own serial, validity, SPIFFE ID and agent context", () => {
    for (const c of golden.cases) {
      // A fresh random serial each time: the reported one is what was signed, not the fixture's.
      const leaf = signX509SvidLeaf(options(c));
      const parsed = ParsedCertificate.fromDer(leaf.der);
      assert.notEqual(leaf.serialHex, c.serialHex);
      assert.equal(leaf.serialHex, parsed.serialHex);
      assert.equal(leaf.notBefore.getTime(), parsed.notBefore.getTime());
      assert.equal(leaf.notAfter.getTime(), parsed.notAfter.getTime());
      assert.deepEqual([leaf.spiffeId], [...parsed.uriSans]);
      const context = describeAgentContextAnyOid(parsed);
      if (c.agentContextDer === undefined) {
        assert.equal(leaf.agentContextDer, undefined);
        assert.equal(context, undefined);
      } else {
        assert.deepEqual(decodeAgentContext(leaf.agentContextDer!), context);
      }
    }
  });

  it('reports a copy of a validity bound it took from the issuer', () => {
    // The second case asks for a week and is capped by the CA's notAfter.
    const c = golden.cases[1]!;
    const leaf = signX509SvidLeaf(options(c));
    assert.equal(leaf.notAfter.getTime(), issuer.cert.notAfter.getTime());
    assert.notEqual(leaf.notAfter, issuer.cert.notAfter);
  });

  it('serial numbers with leading zero nibbles and bytes are reported as the parse reports them', () => {
    const c = golden.cases[0]!;
    for (const hex of ['0f' + 'ab'.repeat(15), '00' + '01'.repeat(15), '7f' + 'ff'.repeat(15)]) {
      const leaf = signX509SvidLeaf(options(c), Buffer.from(hex, 'hex'));
      assert.equal(leaf.serialHex, ParsedCertificate.fromDer(leaf.der).serialHex, hex);
    }
  });

  it('signs the same bytes for a key given as its SPKI and kind (what a signing worker gets)', () => {
    for (const c of golden.cases) {
      const { publicKey, ...rest } = options(c);
      const serial = Buffer.from(c.serialHex.padStart(32, '0'), 'hex');
      const leaf = signX509SvidLeafForKey(
        { ...rest, subjectKey: { spki: spkiDer(publicKey), kind: describeKey(publicKey).kind } },
        serial,
      );
      assert.equal(Buffer.from(leaf.der).toString('base64'), c.leafDer, c.spiffeId);
    }
  });

  it("carries each issuer's own name and key id when issuers alternate (one template per issuer)", () => {
    const rootKey = generateSigningKeyPair('ec-p256').privateKey;
    const root = createRootCa({ trustDomain: 'example.org', ttlSeconds: 86_400, key: rootKey, now: NOW });
    const issuers = ['A', 'B'].map((name) => {
      const key = generateSigningKeyPair('ec-p256');
      const ca = createIntermediateCa({
        trustDomain: 'example.org',
        ttlSeconds: 3600,
        publicKey: key.publicKey,
        issuer: { cert: root.cert, key: rootKey },
        subject: { commonName: `intermediate ${name}` },
        now: NOW,
      });
      return { cert: ca.cert, key: key.privateKey };
    });
    const workload = generateSigningKeyPair('rsa-2048').publicKey;
    for (const i of [0, 1, 0, 1]) {
      const leaf = signX509SvidLeaf({
        spiffeId: 'spiffe://example.org/w',
        publicKey: workload,
        issuer: issuers[i]!,
        ttlSeconds: 60,
        now: NOW,
      });
      const cert = ParsedCertificate.fromDer(leaf.der);
      assert.deepEqual(cert.issuerDer, issuers[i]!.cert.subjectDer);
      assert.deepEqual(cert.authorityKeyId, issuers[i]!.cert.subjectKeyId);
      assert.ok(
        new X509Certificate(Buffer.from(leaf.der)).verify(issuers[i]!.cert.publicKey),
        'signed by the issuer it names',
      );
      assert.equal(cert.keyUsage?.keyEncipherment, true, 'an RSA key keeps keyEncipherment');
    }
  });

  it('issueX509Svid still returns the parsed certificate of the same leaf', () => {
    const c = golden.cases[0]!;
    const { cert, der } = issueX509Svid(options(c));
    assert.deepEqual(cert.der, der);
    assert.equal(cert.uriSans[0], c.spiffeId);
  });
});
