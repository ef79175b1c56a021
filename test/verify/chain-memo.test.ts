import assert from 'node:assert/strict';
import { X509Bundle } from '../../src/bundle';
import { ErrorCode, LanyardError, RevocationStaleError } from '../../src/errors';
import { verifyHopPeerSync } from '../../src/hop/peer';
import { chainMemoHint } from '../../src/verify/chain-memo';
import { TrustDomain } from '../../src/spiffe';
import {
  authorizeId,
  RevocationChecker,
  type RevocationQuery,
  StaticRevocationList,
  VerificationCache,
  verifyX509Svid,
} from '../../src/verify';
import { expectRefusal as expectCode } from '../support/refusal';
import { buildChain, createCa, createPki, type Issued, issueSvid, plannerChain, TD } from '../support/pki';

const OTHER_OID = '1.3.6.1.4.1.99999.7.1';

/** root -> intermediate -> the planner chain's retrieval leaf (2 delegation links), as DER. */
function fixture(): {
  root: Issued;
  inter: Issued;
  chain: Uint8Array[];
  bundle: X509Bundle;
  leafNotAfter: Date;
} {
  const pki = createPki(TD);
  const leaf = plannerChain(pki)[2]!.cert;
  return {
    root: pki.root,
    inter: pki.intermediate,
    chain: [leaf.der, pki.intermediate.cert.der],
    bundle: pki.bundle,
    leafNotAfter: leaf.notAfter,
  };
}

/** Verifies `chain` twice: a chain is remembered from its second verification that passed (seenBefore). */
function remembered(
  chain: readonly Uint8Array[],
  bundle: X509Bundle,
  options: Parameters<typeof verifyX509Svid>[2],
): ReturnType<typeof verifyX509Svid> {
  verifyX509Svid(chain, bundle, options);
  return verifyX509Svid(chain, bundle, options);
}

describe('verified-chain memo', () => {
  it('remembers a chain from its second verification on: a chain seen once (a renewed leaf) is not kept', () => {
    const f = fixture();
    const cache = new VerificationCache();
    verifyX509Svid(f.chain, f.bundle, { cache });
    assert.deepEqual(cache.stats().chains, { hits: 0, misses: 1, size: 0, evictions: 0 });
    const second = verifyX509Svid(f.chain, f.bundle, { cache });
    assert.deepEqual(cache.stats().chains, { hits: 0, misses: 2, size: 1, evictions: 0 });
    assert.equal(
      verifyX509Svid(f.chain, f.bundle, { cache }),
      second,
      'the third call is answered from memory',
    );
    assert.equal(cache.stats().chains.hits, 1);
  });

  it('does not count a refused verification as a sighting', () => {
    const f = fixture();
    const cache = new VerificationCache();
    const revocation = new StaticRevocationList({ sessions: ['session-tool-runner'] });
    expectCode(() => verifyX509Svid(f.chain, f.bundle, { cache, revocation }), ErrorCode.REVOKED);
    verifyX509Svid(f.chain, f.bundle, { cache });
    assert.equal(cache.stats().chains.size, 0, 'the first verification that passed is a first sighting');
    verifyX509Svid(f.chain, f.bundle, { cache });
    assert.equal(cache.stats().chains.size, 1);
  });

  it('answers the same chain bytes again from memory: no parse, no signature check', () => {
    const f = fixture();
    const cache = new VerificationCache();
    const first = remembered(f.chain, f.bundle, { cache });
    const before = cache.stats();
    // Fresh copies of the bytes: the memo keys on content, not on the arrays' identity.
    const again = verifyX509Svid(
      f.chain.map((d) => new Uint8Array(d)),
      f.bundle,
      { cache },
    );
    const after = cache.stats();
    assert.deepEqual(again, first);
    assert.equal(after.chains.hits, before.chains.hits + 1);
    assert.deepEqual(after.signatures, before.signatures, 'no certificate signature looked at');
    assert.deepEqual(after.links, before.links, 'no link signature looked at');
    assert.deepEqual(after.certificates, before.certificates, 'no certificate decoded or looked up');
    assert.deepEqual(after.contexts, before.contexts);
  });

  it('hands out a read-only context: nothing a caller does to it changes the next answer', () => {
    const f = fixture();
    const cache = new VerificationCache();
    const first = remembered(f.chain, f.bundle, { cache });
    const proven = structuredClone(first.context!);
    const link = first.context!.delegation[0]!;
    // Byte arrays and dates cannot be frozen: each read is a copy of its own.
    link.certSha256.fill(0);
    link.notAfter.setTime(0);
    first.context!.provenance.evidenceSha256.fill(0);
    first.context!.delegation[1]!.signature.fill(0);
    assert.notEqual(link.certSha256, link.certSha256);
    // Everything else is frozen all the way down.
    assert.throws(() => (first.context!.scopes as string[]).push('admin'), TypeError);
    assert.throws(() => ((first.context!.principal as { id: string }).id = 'mallory'), TypeError);
    assert.throws(() => ((link as { certSha256: Uint8Array }).certSha256 = new Uint8Array(32)), TypeError);
    assert.throws(() => (first.context!.delegation as unknown[]).pop(), TypeError);
    assert.throws(() => ((link.binding as { childId: string }).childId = 'x'), TypeError);
    const second = verifyX509Svid(f.chain, f.bundle, { cache });
    assert.equal(cache.stats().chains.hits, 1);
    assert.deepEqual(structuredClone(second.context!), proven);
    assert.deepEqual(JSON.parse(JSON.stringify(second.context)), JSON.parse(JSON.stringify(proven)));
    assert.deepEqual({ ...second.context!.delegation[1]! }.signature, proven.delegation[1]!.signature);
  });

  it('does not answer from memory when the cache is off, or when chains are not memoized', () => {
    const f = fixture();
    const noChains = new VerificationCache({ chains: false });
    verifyX509Svid(f.chain, f.bundle, { cache: noChains });
    verifyX509Svid(f.chain, f.bundle, { cache: noChains });
    assert.deepEqual(noChains.stats().chains, { hits: 0, misses: 0, size: 0, evictions: 0 });
    // The intermediate came from the certificate cache; the leaf, seen once before, was parsed again.
    assert.equal(noChains.stats().certificates.hits, 1, 'the second call took the full path');
    verifyX509Svid(f.chain, f.bundle, { cache: null });
  });

  it('refuses a chain whose session was revoked after it was remembered', () => {
    const f = fixture();
    const cache = new VerificationCache();
    const revocation = new StaticRevocationList();
    remembered(f.chain, f.bundle, { cache, revocation });
    revocation.revokeSession('session-tool-runner', 'task ended');
    expectCode(() => verifyX509Svid(f.chain, f.bundle, { cache, revocation }), ErrorCode.REVOKED);
    assert.equal(cache.stats().chains.hits, 1, 'the refusal came from the memo hit, revocation asked afresh');
  });

  it('refuses a remembered chain whose serial is revoked, and one given a checker that cannot answer', () => {
    const f = fixture();
    const cache = new VerificationCache();
    remembered(f.chain, f.bundle, { cache });
    const leafSerial = verifyX509Svid(f.chain, f.bundle, { cache }).chain[0]!.serialHex;
    expectCode(
      () =>
        verifyX509Svid(f.chain, f.bundle, {
          cache,
          revocation: new StaticRevocationList({ serials: [leafSerial] }),
        }),
      ErrorCode.REVOKED,
    );
    const failing: RevocationChecker = {
      isRevoked() {
        throw new RevocationStaleError('no state');
      },
    };
    expectCode(
      () => verifyX509Svid(f.chain, f.bundle, { cache, revocation: failing }),
      ErrorCode.REVOCATION_STALE,
    );
  });

  it('does not answer under a rotated bundle: a bundle without the old root refuses the chain', () => {
    const f = fixture();
    const cache = new VerificationCache();
    remembered(f.chain, f.bundle, { cache });
    const rotated = X509Bundle.fromDer(TrustDomain.parse(TD), [createCa(TD).cert.der]);
    // Same subject name, another key: the intermediate's signature no longer verifies.
    expectCode(() => verifyX509Svid(f.chain, rotated, { cache }), ErrorCode.SIGNATURE_INVALID);
    const empty = new X509Bundle(TrustDomain.parse(TD));
    expectCode(() => verifyX509Svid(f.chain, empty, { cache }), ErrorCode.UNKNOWN_AUTHORITY);
    // The entry of the old bundle is gone; a new bundle that still trusts the root verifies in full again.
    const same = X509Bundle.fromDer(TrustDomain.parse(TD), [f.root.cert.der]);
    const decoded = cache.stats().certificates.hits;
    verifyX509Svid(f.chain, same, { cache });
    assert.equal(cache.stats().chains.hits, 0);
    assert.ok(cache.stats().certificates.hits > decoded, 'the full path ran again');
  });

  it('does not answer for a trust domain the source no longer holds', () => {
    const f = fixture();
    const cache = new VerificationCache();
    remembered(f.chain, f.bundle, { cache });
    const other = X509Bundle.fromDer(TrustDomain.parse('other.org'), [f.root.cert.der]);
    expectCode(() => verifyX509Svid(f.chain, other, { cache }), ErrorCode.BUNDLE_NOT_FOUND);
  });

  it('refuses a remembered chain once its leaf expired, and before it was valid', () => {
    const f = fixture();
    const cache = new VerificationCache();
    remembered(f.chain, f.bundle, { cache });
    const late = new Date(f.leafNotAfter.getTime() + 1000);
    expectCode(() => verifyX509Svid(f.chain, f.bundle, { cache, at: late }), ErrorCode.SVID_EXPIRED);
    assert.equal(cache.stats().chains.hits, 0);
    // Expired is final: the entry is dropped, so even "now" verifies in full again.
    const size = cache.stats().chains.size;
    assert.equal(size, 0);
    verifyX509Svid(f.chain, f.bundle, { cache });
    expectCode(
      () => verifyX509Svid(f.chain, f.bundle, { cache, at: new Date(Date.now() - 3600_000) }),
      ErrorCode.CERT_NOT_YET_VALID,
    );
    assert.equal(cache.stats().chains.hits, 0);
  });

  it('refuses when an intermediate expires before the leaf', () => {
    const pki = createPki(TD, { intermediateTtlSeconds: 600 });
    const inter = pki.intermediate;
    // The CA caps the leaf at its own expiry; the window is the path's, not the leaf's.
    const leaf = issueSvid(pki, `spiffe://${TD}/w`, { ttlSeconds: 3600 }).cert;
    const bundle = pki.bundle;
    const cache = new VerificationCache();
    remembered([leaf.der, inter.cert.der], bundle, { cache });
    const after = new Date(inter.cert.notAfter.getTime() + 1000);
    assert.throws(
      () => verifyX509Svid([leaf.der, inter.cert.der], bundle, { cache, at: after }),
      LanyardError,
    );
    assert.equal(cache.stats().chains.hits, 0);
  });

  it('does not answer under another agent-context OID, trust domain or depth bound', () => {
    const f = fixture();
    const cache = new VerificationCache();
    remembered(f.chain, f.bundle, { cache });
    expectCode(
      () => verifyX509Svid(f.chain, f.bundle, { cache, agentContextOid: OTHER_OID }),
      ErrorCode.AGENT_CONTEXT_OID_MISMATCH,
    );
    expectCode(
      () => verifyX509Svid(f.chain, f.bundle, { cache, trustDomain: 'other.org' }),
      ErrorCode.WRONG_TRUST_DOMAIN,
    );
    expectCode(
      () => verifyX509Svid(f.chain, f.bundle, { cache, maxDelegationDepth: 1 }),
      ErrorCode.DELEGATION_TOO_DEEP,
    );
    expectCode(() => verifyX509Svid(f.chain, f.bundle, { cache, maxPathDepth: 2 }), ErrorCode.CHAIN_TOO_LONG);
    assert.equal(cache.stats().chains.hits, 0);
  });

  it('runs the authorizer of each call: a chain one hop accepted is refused by another', () => {
    const f = fixture();
    const cache = new VerificationCache();
    const leafId = `spiffe://${TD}/retrieval`;
    verifyX509Svid(f.chain, f.bundle, { cache });
    const peer = verifyHopPeerSync(
      f.chain,
      { bundles: f.bundle, cache, authorize: authorizeId(leafId) },
      { transport: 'tls' },
    );
    assert.equal(peer.spiffeId, leafId);
    assert.throws(
      () =>
        verifyHopPeerSync(
          f.chain,
          { bundles: f.bundle, cache, authorize: authorizeId(`spiffe://${TD}/planner`) },
          { transport: 'tls' },
        ),
      (e: unknown) => e instanceof LanyardError && e.code === ErrorCode.UNAUTHORIZED,
    );
    assert.equal(cache.stats().chains.hits, 1, 'the refusal came after a memo hit');
  });

  it('never answers other bytes: a chain differing in one byte, or in order, verifies in full', () => {
    const f = fixture();
    const cache = new VerificationCache();
    remembered(f.chain, f.bundle, { cache });
    const tampered = new Uint8Array(f.chain[0]!);
    tampered[tampered.length - 5] = tampered[tampered.length - 5]! ^ 0x01;
    assert.throws(() => verifyX509Svid([tampered, f.chain[1]!], f.bundle, { cache }), LanyardError);
    // The same certificates split differently must not collide either (length-prefixed key).
    assert.throws(() => verifyX509Svid([f.chain[1]!, f.chain[0]!], f.bundle, { cache }), LanyardError);
    assert.equal(cache.stats().chains.hits, 0);
  });

  it('a chain with the same lookup hint but one byte changed is never a hit', () => {
    const f = fixture();
    const cache = new VerificationCache();
    remembered(f.chain, f.bundle, { cache });
    // Same lengths and same last bytes (the hint's inputs); one byte inside the leaf's tbsCertificate differs.
    for (const at of [20, Math.floor(f.chain[0]!.length / 2), f.chain[0]!.length - 100]) {
      const near = new Uint8Array(f.chain[0]!);
      near[at] = near[at]! ^ 0x01;
      assert.equal(chainMemoHint([near, f.chain[1]!], ''), chainMemoHint(f.chain, ''));
      assert.throws(() => verifyX509Svid([near, f.chain[1]!], f.bundle, { cache }), LanyardError);
    }
    // The same for the intermediate.
    const inter = new Uint8Array(f.chain[1]!);
    inter[40] = inter[40]! ^ 0x01;
    assert.equal(chainMemoHint([f.chain[0]!, inter], ''), chainMemoHint(f.chain, ''));
    assert.throws(() => verifyX509Svid([f.chain[0]!, inter], f.bundle, { cache }), LanyardError);
    assert.equal(cache.stats().chains.hits, 0);
  });

  it('keeps its own copy of the bytes: a caller changing its arrays afterwards gets no hit for them', () => {
    const f = fixture();
    const cache = new VerificationCache();
    const mine = f.chain.map((d) => new Uint8Array(d));
    remembered(mine, f.bundle, { cache });
    mine[0]![30] = mine[0]![30]! ^ 0x01;
    assert.throws(() => verifyX509Svid(mine, f.bundle, { cache }), LanyardError);
    assert.equal(cache.stats().chains.hits, 0);
    verifyX509Svid(f.chain, f.bundle, { cache });
    assert.equal(cache.stats().chains.hits, 1, 'the original bytes are still remembered');
  });

  it('refuses an invalid verification time for a remembered chain', () => {
    const f = fixture();
    const cache = new VerificationCache();
    remembered(f.chain, f.bundle, { cache });
    expectCode(
      () => verifyX509Svid(f.chain, f.bundle, { cache, at: new Date(NaN) }),
      ErrorCode.INVALID_ARGUMENT,
    );
    expectCode(
      () => verifyX509Svid(f.chain, f.bundle, { cache, at: 'now' as unknown as Date }),
      ErrorCode.INVALID_ARGUMENT,
    );
    assert.equal(cache.stats().chains.hits, 0);
  });

  it('returns the same frozen result on every hit, and asks the revocation checker every time', () => {
    const f = fixture();
    const cache = new VerificationCache();
    const asked: RevocationQuery[] = [];
    const revocation: RevocationChecker = {
      isRevoked(q) {
        asked.push(q);
        return false;
      },
    };
    const first = remembered(f.chain, f.bundle, { cache, revocation });
    const second = verifyX509Svid(f.chain, f.bundle, { cache, revocation });
    const third = verifyX509Svid(f.chain, f.bundle, { cache, revocation });
    assert.equal(second, first);
    assert.equal(third, first);
    assert.equal(asked.length, 4);
    assert.deepEqual(asked[3], asked[0]);
    assert.deepEqual(asked[0]!.delegationSessionIds, ['session-planner', 'session-tool-runner']);
    assert.ok(Object.isFrozen(asked[1]) && Object.isFrozen(asked[1]!.delegationSessionIds));
  });

  it('a renewed leaf under known intermediates and links pays only its own signature check', () => {
    const f = fixture();
    const cache = new VerificationCache();
    const hops = buildChain(f.inter, [
      { name: 'planner', scopes: ['a', 'b'], ttlSeconds: 3600 },
      { name: 'runner', scopes: ['a'], ttlSeconds: 1800 },
    ]);
    const runner = hops[1]!;
    verifyX509Svid([runner.cert.der, f.inter.cert.der], f.bundle, { cache });
    // The same hop renewed: a new certificate (new serial) for the same key and context, so the same link. Its
    // lifetime is a little shorter than the link's: issued a second later with the same TTL it would outlive the
    // link it is bound to and be refused as a lifetime escalation.
    const renewed = issueSvid(f.inter, runner.id, {
      key: runner.key,
      context: runner.context,
      ttlSeconds: 1700,
    }).cert;
    assert.notEqual(renewed.serialHex, runner.cert.serialHex);
    const before = cache.stats();
    verifyX509Svid([renewed.der, f.inter.cert.der], f.bundle, { cache });
    const after = cache.stats();
    assert.equal(after.chains.hits, before.chains.hits, 'new bytes are never a memo hit');
    assert.equal(after.signatures.misses, before.signatures.misses, 'the intermediate was not checked again');
    assert.equal(after.signatures.hits - before.signatures.hits, 1);
    // The same context bytes: decoded and checked once, so not even the link cache is asked.
    assert.deepEqual(after.links, before.links, 'the link was not looked at again');
    assert.equal(after.contexts.hits - before.contexts.hits, 1);
    assert.equal(after.contexts.misses, before.contexts.misses);
  });

  it('is bounded: the least recently used chain is forgotten', () => {
    const f = fixture();
    const cache = new VerificationCache({ maxEntries: 1 });
    const other = issueSvid(f.inter, `spiffe://${TD}/w`, { ttlSeconds: 600 }).cert;
    remembered(f.chain, f.bundle, { cache });
    remembered([other.der, f.inter.cert.der], f.bundle, { cache });
    const stats = cache.stats().chains;
    assert.equal(stats.size, 1);
    assert.equal(stats.evictions, 1);
  });
});
