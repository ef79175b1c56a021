import assert from 'node:assert/strict';
import { VerificationCache } from '../../src/verify/cache';
import { Lru } from '../../src/internal/lru';
import { makeRoot } from '../support/pki';

describe('Lru', () => {
  it('evicts the least recently used entry and counts evictions', () => {
    const lru = new Lru<number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    assert.equal(lru.get('a'), 1); // a is now the most recent
    lru.set('c', 3);
    assert.equal(lru.get('b'), undefined);
    assert.equal(lru.get('a'), 1);
    assert.equal(lru.size, 2);
    assert.equal(lru.evictions, 1);
  });

  it('peek reads without making the entry recent', () => {
    const lru = new Lru<number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    assert.equal(lru.peek('a'), 1);
    lru.set('c', 3);
    assert.equal(lru.get('a'), undefined, 'a stayed the oldest and was evicted');
  });

  it('refuses a non-positive bound', () => {
    assert.throws(() => new Lru(0), RangeError);
  });
});

describe('VerificationCache', () => {
  it('returns a remembered certificate for identical DER, and nothing it was not given', () => {
    const cache = new VerificationCache();
    const root = makeRoot('example.org');
    assert.equal(cache.certificate(root.cert.der), undefined);
    cache.rememberCertificate(root.cert);
    assert.equal(cache.certificate(new Uint8Array(root.cert.der)), root.cert);
    assert.deepEqual(cache.stats().certificates, { hits: 1, misses: 1, size: 1, evictions: 0 });
  });

  it('never returns a certificate for other bytes with the same lookup hint', () => {
    const cache = new VerificationCache();
    const root = makeRoot('example.org');
    cache.rememberCertificate(root.cert);
    // Same length and same last bytes (the hint), one byte different inside the tbsCertificate.
    const near = new Uint8Array(root.cert.der);
    near[40] = near[40]! ^ 0x01;
    assert.equal(cache.certificate(near), undefined);
  });

  it('clear() forgets everything', () => {
    const cache = new VerificationCache();
    cache.rememberLinkSignature('ab');
    assert.ok(cache.hasLinkSignature('ab'));
    cache.clear();
    assert.ok(!cache.hasLinkSignature('ab'));
  });
});
