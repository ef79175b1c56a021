import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { AgentContextError, ErrorCode, InvalidArgumentError, MalformedInputError } from '../../../src/errors';
import {
  buildDelegationLink,
  decodeAgentContext,
  type DelegationBinding,
  type DelegationLink,
  delegationLinkSha256,
  encodeAgentContext,
  encodeDelegationBinding,
  signDelegationBinding,
  verifyDelegationLinkSignature,
} from '../../../src/x509/agent-context';
import { generateSigningKeyPair, type KeyAlgorithm, spkiDer, verifyWithKey } from '../../../src/x509/keys';
import { bytes, sampleBinding, sampleContext, T1 } from './fixtures';
import { BINDING, parseTlv, primitive, writeTlv } from './tlv';

const ALGORITHMS: KeyAlgorithm[] = ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'];
const keys = new Map<KeyAlgorithm, { privateKey: KeyObject; publicKey: KeyObject }>();
function keyFor(alg: KeyAlgorithm): { privateKey: KeyObject; publicKey: KeyObject } {
  let pair = keys.get(alg);
  if (!pair) {
    pair = generateSigningKeyPair(alg);
    keys.set(alg, pair);
  }
  return pair;
}

function linkSignedBy(privateKey: KeyObject, binding: DelegationBinding = sampleBinding()): DelegationLink {
  return buildDelegationLink({
    spiffeId: 'spiffe://example.org/agent/planner',
    agentId: 'planner',
    sessionId: 'sess-root-0001',
    scopes: ['repo:read', 'issues:write', 'deploy'],
    notAfter: T1,
    certSha256: bytes(32, 0x11),
    binding,
    privateKey,
  });
}

/** One change per binding field; each must break the signature. */
const bindingChanges: [string, (b: DelegationBinding) => DelegationBinding][] = [
  ['parentCertSha256', (b) => ({ ...b, parentCertSha256: bytes(32, 0x12) })],
  ['childId', (b) => ({ ...b, childId: 'spiffe://example.org/agent/someone-else' })],
  ['childKeySha256 changed', (b) => ({ ...b, childKeySha256: bytes(32, 0x23) })],
  [
    'childKeySha256 removed',
    (b) => {
      const { childKeySha256: _removed, ...rest } = b;
      return rest as DelegationBinding;
    },
  ],
  ['scopes widened', (b) => ({ ...b, scopes: [...b.scopes, 'deploy'] })],
  ['scopes reordered', (b) => ({ ...b, scopes: [...b.scopes].reverse() })],
  ['notAfter', (b) => ({ ...b, notAfter: new Date(b.notAfter.getTime() + 1000) })],
  ['redeemBy', (b) => ({ ...b, redeemBy: new Date(b.redeemBy.getTime() + 1000) })],
  ['nonce', (b) => ({ ...b, nonce: bytes(16, 0x34) })],
  ['rootSessionId', (b) => ({ ...b, rootSessionId: 'sess-root-9999' })],
  ['principalId', (b) => ({ ...b, principalId: 'mallory' })],
  ['principalIssuer', (b) => ({ ...b, principalIssuer: 'https://evil.example' })],
  ['principalProvenance', (b) => ({ ...b, principalProvenance: 'asserted-by:spiffe://example.org/gw' })],
  ['prevLinkSha256', (b) => ({ ...b, prevLinkSha256: bytes(32, 0x77) })],
];

describe('delegation link signature', () => {
  for (const alg of ALGORITHMS) {
    describe(alg, () => {
      it('signs DER(binding) with the key, and the link verifies, also after an encode/decode round trip', () => {
        const { privateKey, publicKey } = keyFor(alg);
        const link = linkSignedBy(privateKey);
        assert.deepStrictEqual(link.publicKey, spkiDer(publicKey));
        assert.ok(verifyWithKey(encodeDelegationBinding(link.binding), link.signature, publicKey));
        assert.equal(verifyDelegationLinkSignature(link), true);
        const decoded = decodeAgentContext(encodeAgentContext(sampleContext({ delegation: [link] })));
        assert.equal(verifyDelegationLinkSignature(decoded.delegation[0]!), true);
      });

      it('fails when any binding field changes', () => {
        const link = linkSignedBy(keyFor(alg).privateKey);
        for (const [field, change] of bindingChanges) {
          assert.equal(
            verifyDelegationLinkSignature({ ...link, binding: change(link.binding) }),
            false,
            field,
          );
        }
      });

      it('fails with another public key, of the same type or another', () => {
        const link = linkSignedBy(keyFor(alg).privateKey);
        const sameType = generateSigningKeyPair(alg).publicKey;
        assert.equal(verifyDelegationLinkSignature({ ...link, publicKey: spkiDer(sameType) }), false);
        for (const other of ALGORITHMS.filter((a) => a !== alg)) {
          assert.equal(
            verifyDelegationLinkSignature({ ...link, publicKey: spkiDer(keyFor(other).publicKey) }),
            false,
          );
        }
      });

      it('fails with a truncated, extended or altered signature', () => {
        const link = linkSignedBy(keyFor(alg).privateKey);
        const sig = link.signature;
        const variants = [
          sig.subarray(0, sig.length - 1),
          sig.subarray(0, sig.length >> 1),
          new Uint8Array(0),
          Uint8Array.from([...sig, 0]),
          Uint8Array.from(sig, (b, i) => (i === sig.length - 1 ? b ^ 1 : b)),
        ];
        for (const signature of variants) {
          assert.equal(
            verifyDelegationLinkSignature({ ...link, signature }),
            false,
            `${signature.length} bytes`,
          );
        }
      });
    });
  }

  it('does not throw for a public key it cannot use: garbage, trailing bytes, or an unaccepted key type', () => {
    const link = linkSignedBy(keyFor('ec-p256').privateKey);
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey;
    const candidates = [
      new Uint8Array(0),
      bytes(91),
      Uint8Array.from([...link.publicKey, 0x00]),
      spkiDer(p521),
      link.publicKey.subarray(0, 40),
    ];
    for (const publicKey of candidates) {
      assert.equal(verifyDelegationLinkSignature({ ...link, publicKey }), false);
    }
  });

  it('does not throw for a link whose binding is invalid', () => {
    const link = linkSignedBy(keyFor('ed25519').privateKey);
    const broken = { ...link, binding: { ...link.binding, nonce: bytes(3) } };
    assert.equal(verifyDelegationLinkSignature(broken), false);
  });

  it('refuses to sign with a public key, an unaccepted key, or an invalid binding', () => {
    assert.throws(
      () => signDelegationBinding(sampleBinding(), keyFor('ec-p256').publicKey),
      (e: unknown) => e instanceof InvalidArgumentError && e.code === ErrorCode.INVALID_ARGUMENT,
    );
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
    assert.throws(
      () => signDelegationBinding(sampleBinding(), p521),
      (e: unknown) => e instanceof MalformedInputError && e.code === ErrorCode.UNSUPPORTED_KEY,
    );
    assert.throws(
      () => signDelegationBinding(sampleBinding({ scopes: ['a b'] }), keyFor('ec-p256').privateKey),
      (e: unknown) => e instanceof AgentContextError && e.message.includes('binding.scopes[0]'),
    );
  });

  it('buildDelegationLink copies its inputs, so later changes cannot alter a signed link', () => {
    const binding = sampleBinding();
    const scopes = ['repo:read'];
    const link = buildDelegationLink({
      spiffeId: 'spiffe://example.org/agent/planner',
      agentId: 'planner',
      sessionId: 's',
      scopes,
      notAfter: T1,
      certSha256: bytes(32, 0x11),
      binding,
      privateKey: keyFor('ec-p256').privateKey,
    });
    scopes.push('deploy');
    binding.scopes.push('deploy');
    binding.nonce.fill(0);
    assert.deepStrictEqual(link.scopes, ['repo:read']);
    assert.equal(verifyDelegationLinkSignature(link), true);
    assert.ok(!('privateKey' in link));
  });

  it("a parent's signature over the same fields encoded as a version-2 binding does not verify as version 3", () => {
    const { privateKey } = keyFor('ec-p256');
    const link = linkSignedBy(privateKey);
    // The version-2 encoding of the same values: version 2, and the child key as the optional [0] element.
    const v2 = parseTlv(encodeDelegationBinding(link.binding));
    v2.children![BINDING.version] = primitive(0x02, Uint8Array.of(2));
    v2.children![BINDING.childKeySha256] = primitive(0x80, link.binding.childKeySha256);
    const oldSignature = signDelegationBinding(link.binding, privateKey);
    assert.equal(verifyDelegationLinkSignature({ ...link, signature: oldSignature }), true, 'control');
    const signedV2 = new Uint8Array(sign('sha256', writeTlv(v2), privateKey));
    assert.equal(verifyDelegationLinkSignature({ ...link, signature: signedV2 }), false);
  });

  it('chains links by hash: each binding names the DER hash of the link before it', () => {
    const planner = keyFor('ec-p256');
    const runner = keyFor('ed25519');
    const first = linkSignedBy(
      planner.privateKey,
      sampleBinding({ childKeySha256: sha256(spkiDer(runner.publicKey)) }),
    );
    const second = linkSignedBy(
      runner.privateKey,
      sampleBinding({ prevLinkSha256: delegationLinkSha256(first) }),
    );
    const decoded = decodeAgentContext(encodeAgentContext(sampleContext({ delegation: [first, second] })));
    const [d1, d2] = decoded.delegation;
    assert.deepStrictEqual(d2!.binding.prevLinkSha256, delegationLinkSha256(d1!));
    assert.ok(decoded.delegation.every(verifyDelegationLinkSignature));
    // Editing the first link (even a field outside its binding) changes the hash the second one signed.
    assert.notDeepStrictEqual(delegationLinkSha256({ ...d1!, agentId: 'other' }), d2!.binding.prevLinkSha256);
  });
});

function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}
