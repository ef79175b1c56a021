/**
 * The child's side of key binding, without a server: a HandoffKey's id is the SHA-256 of its SPKI (what a parent's
 * binding names), and a service's HandoffKeys hands each offered key out once, to the caller it was offered to,
 * within its lifetime and its bounds. signGrant takes the key in every form a child may hand it over, and nothing
 * that is not one.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { childKeySha256, signGrant } from '../../src/client/delegation';
import { HandoffKey, HandoffKeys } from '../../src/client/handoff-keys';
import { ErrorCode, LanyardError } from '../../src/errors';
import { grpcStatusOf } from '../../src/internal/grpc-status-map';
import { decodeDelegationBinding } from '../../src/x509/agent-context/codec';
import { parseCsr } from '../../src/x509/csr';
import { generateSigningKeyPair, spkiDer } from '../../src/x509/keys';
import { createPki, delegatedPair } from '../support/pki';
import { expectRefusal } from '../support/refusal';

const A = 'spiffe://example.org/agent/a';
const B = 'spiffe://example.org/agent/b';

describe('client: handoff keys (the child key, bound at grant time)', () => {
  it("a HandoffKey's id is the hex SHA-256 of its SubjectPublicKeyInfo, and its CSR is for that key", () => {
    const key = HandoffKey.generate('ec-p384');
    const spki = spkiDer(createPublicKey(key.privateKey));
    assert.equal(key.id, createHash('sha256').update(spki).digest('hex'));
    assert.deepEqual(Buffer.from(key.sha256), Buffer.from(key.id, 'hex'));
    assert.deepEqual(Buffer.from(parseCsr(key.csr()).spki), Buffer.from(spki));
    assert.ok(Object.isFrozen(key));
    assert.throws(() => HandoffKey.fromPrivateKey(createPublicKey(key.privateKey)), /private key/);
  });

  it('hands out each key once, only to the caller it was offered to', () => {
    const keys = new HandoffKeys();
    const offer = keys.offer(A);
    expectRefusal(() => keys.take(offer.keySha256, B), ErrorCode.HANDOFF_KEY_UNKNOWN);
    // The refusal left it for A.
    const key = keys.take(offer.keySha256, A);
    assert.equal(key.id, offer.keySha256);
    expectRefusal(() => keys.take(offer.keySha256, A), ErrorCode.HANDOFF_KEY_UNKNOWN);
    expectRefusal(() => keys.take('0'.repeat(64), A), ErrorCode.HANDOFF_KEY_UNKNOWN);
    assert.equal(keys.size, 0);
  });

  it('forgets a key after its lifetime', () => {
    let now = 1_000_000;
    const keys = new HandoffKeys({ ttlSeconds: 120, clock: () => now });
    const offer = keys.offer(A);
    assert.equal(offer.expiresAt.getTime(), now + 120_000);
    now += 119_999;
    assert.equal(keys.size, 1);
    now += 1;
    expectRefusal(() => keys.take(offer.keySha256, A), ErrorCode.HANDOFF_KEY_UNKNOWN);
    assert.equal(keys.size, 0);
  });

  it('bounds the keys per caller and in total, refusing new offers rather than evicting', () => {
    let now = 0;
    const keys = new HandoffKeys({ maxKeysPerPeer: 2, maxKeys: 3, ttlSeconds: 10, clock: () => now });
    const first = keys.offer(A);
    keys.offer(A);
    expectRefusal(() => keys.offer(A), ErrorCode.HANDOFF_KEYS_EXHAUSTED);
    keys.offer(B);
    expectRefusal(() => keys.offer(B), ErrorCode.HANDOFF_KEYS_EXHAUSTED);
    // Nothing was pushed out by the refused offers: A's first key is still A's.
    keys.take(first.keySha256, A);
    keys.offer(B);
    // Expired keys free their places.
    now += 10_000;
    assert.equal(keys.size, 0);
    keys.offer(A);
    keys.offer(A);
    const err = (() => {
      try {
        keys.offer(A);
      } catch (e) {
        return e as LanyardError;
      }
      return undefined;
    })();
    assert.equal(err && grpcStatusOf(err), 8, 'RESOURCE_EXHAUSTED');
    assert.throws(() => new HandoffKeys({ maxKeys: 0 }), /positive/);
  });

  it('signGrant names the child key given as hex, as 32 bytes or as the public key, and nothing else', () => {
    const pki = createPki('example.org');
    const { parent } = delegatedPair(
      pki,
      { name: 'planner', scopes: ['docs:read'], ttlSeconds: 600 },
      { name: 'tool-runner', scopes: ['docs:read'], ttlSeconds: 300 },
    );
    const child = HandoffKey.generate();
    const publicKey = createPublicKey(child.privateKey);
    for (const childKey of [child.id, child.id.toUpperCase(), child.sha256, publicKey]) {
      const signed = signGrant({
        parentCert: parent.cert,
        parentKey: parent.key.privateKey,
        childId: 'spiffe://example.org/agent/tool-runner',
        childKey,
        scopes: ['docs:read'],
      });
      assert.deepEqual(
        Buffer.from(decodeDelegationBinding(signed.bindingDer).childKeySha256),
        Buffer.from(child.sha256),
      );
    }
    for (const bad of [
      child.id.slice(2),
      `${child.id}00`,
      'z'.repeat(64),
      new Uint8Array(31),
      spkiDer(publicKey),
      generateSigningKeyPair().privateKey,
    ]) {
      expectRefusal(() => childKeySha256(bad), ErrorCode.INVALID_ARGUMENT);
    }
  });
});
