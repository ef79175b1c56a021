import assert from 'node:assert/strict';
import { BundleSet, X509Bundle } from '../../src/bundle';
import { ErrorCode, LanyardError } from '../../src/errors';
import { TrustDomain } from '../../src/spiffe';
import { RevocationQuery, StaticRevocationList, VerificationCache, verifyX509Svid } from '../../src/verify';
import {
  createCa,
  DAY,
  HOUR,
  issueSvid,
  makeIntermediate,
  makeLeaf,
  makeRoot,
  NOW,
  plannerChain,
} from '../support/pki';
import { expectRefusal } from '../support/refusal';

const TD = 'example.org';
const ID = 'spiffe://example.org/workload';
const at = NOW;
const td = (name: string) => TrustDomain.parse(name);

describe('verifyX509Svid', () => {
  const root = makeRoot(TD);
  const int = makeIntermediate(TD, root);
  const bundle = new X509Bundle(td(TD), { x509Authorities: [root.cert] });

  describe('trust domain and bundle selection', () => {
    it("validates against the bundle of the leaf's trust domain in a federated set", () => {
      const otherRoot = makeRoot('other.org');
      const set = new BundleSet([
        bundle,
        new X509Bundle(td('other.org'), { x509Authorities: [otherRoot.cert] }),
      ]);
      assert.equal(verifyX509Svid([makeLeaf(ID, root).cert], set, { at }).id.toString(), ID);
      const foreign = makeLeaf('spiffe://other.org/svc', otherRoot).cert;
      assert.equal(verifyX509Svid([foreign], set, { at }).id.trustDomain.name, 'other.org');
    });

    it("rejects a leaf claiming one trust domain but signed by another domain's CA, even when both are trusted", () => {
      const otherRoot = makeRoot('other.org');
      const set = new BundleSet([
        bundle,
        new X509Bundle(td('other.org'), { x509Authorities: [otherRoot.cert] }),
      ]);
      expectRefusal(
        () => verifyX509Svid([makeLeaf(ID, otherRoot).cert], set, { at }),
        ErrorCode.UNKNOWN_AUTHORITY,
      );
    });

    it('rejects an SVID of a trust domain the source has no bundle for (ERR_BUNDLE_NOT_FOUND)', () => {
      const otherRoot = makeRoot('other.org');
      expectRefusal(
        () => verifyX509Svid([makeLeaf('spiffe://other.org/svc', otherRoot).cert], bundle, { at }),
        ErrorCode.BUNDLE_NOT_FOUND,
      );
    });

    it('rejects an SVID outside the trust domain the caller restricted to (ERR_WRONG_TRUST_DOMAIN)', () => {
      const otherRoot = makeRoot('other.org');
      const set = new BundleSet([
        bundle,
        new X509Bundle(td('other.org'), { x509Authorities: [otherRoot.cert] }),
      ]);
      const foreign = makeLeaf('spiffe://other.org/svc', otherRoot).cert;
      expectRefusal(
        () => verifyX509Svid([foreign], set, { at, trustDomain: TD }),
        ErrorCode.WRONG_TRUST_DOMAIN,
      );
      assert.equal(
        verifyX509Svid([makeLeaf(ID, root).cert], set, { at, trustDomain: td(TD) }).id.toString(),
        ID,
      );
    });

    it('rejects every SVID when the bundle of its trust domain is empty', () => {
      const empty = new X509Bundle(td(TD));
      expectRefusal(
        () => verifyX509Svid([makeLeaf(ID, root).cert], empty, { at }),
        ErrorCode.UNKNOWN_AUTHORITY,
        /no X\.509 authorities/,
      );
    });
  });

  describe('input', () => {
    it('accepts DER bytes as well as parsed certificates, intermediates in any order', () => {
      const int2 = makeIntermediate(TD, int, { cn: 'int2' });
      const leaf = makeLeaf(ID, int2);
      const result = verifyX509Svid([leaf.cert.der, int.cert.der, int2.cert.der], bundle, { at });
      assert.equal(result.chain.length, 4);
      assert.equal(result.chain[3]!.sha256Hex, root.cert.sha256Hex);
    });

    it('rejects an empty chain', () => {
      expectRefusal(() => verifyX509Svid([], bundle, { at }), ErrorCode.CHAIN_EMPTY);
    });

    it('rejects bytes that are not a certificate', () => {
      expectRefusal(
        () => verifyX509Svid([new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])], bundle, { at }),
        ErrorCode.MALFORMED_CERTIFICATE,
      );
    });

    it('rejects an overlong chain before parsing it', () => {
      const junk = Array.from({ length: 40 }, () => new Uint8Array([0]));
      expectRefusal(() => verifyX509Svid(junk, bundle, { at }), ErrorCode.CHAIN_TOO_LONG);
    });

    it('honours maxPathDepth', () => {
      const leaf = makeLeaf(ID, int);
      expectRefusal(
        () => verifyX509Svid([leaf.cert, int.cert], bundle, { at, maxPathDepth: 2 }),
        ErrorCode.CHAIN_TOO_LONG,
      );
    });
  });

  describe('validity', () => {
    it('reports an expired leaf as ERR_SVID_EXPIRED', () => {
      const leaf = makeLeaf(ID, int, { notAfter: new Date(at.getTime() - 1000) });
      expectRefusal(
        () => verifyX509Svid([leaf.cert, int.cert], bundle, { at }),
        ErrorCode.SVID_EXPIRED,
        /expired/,
      );
    });
    it('reports a not-yet-valid leaf as ERR_CERT_NOT_YET_VALID', () => {
      const leaf = makeLeaf(ID, int, { notBefore: new Date(at.getTime() + 1000) });
      expectRefusal(
        () => verifyX509Svid([leaf.cert, int.cert], bundle, { at }),
        ErrorCode.CERT_NOT_YET_VALID,
      );
    });
    it('reports an expired intermediate as ERR_CERT_EXPIRED', () => {
      const old = makeIntermediate(TD, root, { notAfter: new Date(at.getTime() - 1000) });
      expectRefusal(
        () => verifyX509Svid([makeLeaf(ID, old).cert, old.cert], bundle, { at }),
        ErrorCode.CERT_EXPIRED,
      );
    });
    it('uses the current time when options.at is absent', () => {
      // The fixtures are valid around 2030, not today.
      expectRefusal(() => verifyX509Svid([makeLeaf(ID, root).cert], bundle), ErrorCode.CERT_NOT_YET_VALID);
    });
  });

  it('returns a frozen result', () => {
    const result = verifyX509Svid([makeLeaf(ID, root).cert], bundle, { at });
    assert.ok(Object.isFrozen(result));
    assert.ok(Object.isFrozen(result.chain));
    assert.equal(result.context, undefined);
    assert.throws(() => {
      (result as { id: unknown }).id = null;
    }, TypeError);
  });

  describe('revocation', () => {
    it('rejects a revoked serial (ERR_REVOKED) and accepts the same SVID without the checker', () => {
      const leaf = makeLeaf(ID, int);
      const revocation = new StaticRevocationList().revokeSerial(leaf.cert.serialHex);
      verifyX509Svid([leaf.cert, int.cert], bundle, { at });
      expectRefusal(
        () => verifyX509Svid([leaf.cert, int.cert], bundle, { at, revocation }),
        ErrorCode.REVOKED,
        new RegExp(leaf.cert.serialHex),
      );
    });

    it('scopes a serial to its issuer when the revocation names one', () => {
      const leaf = makeLeaf(ID, int);
      const otherIssuer = new StaticRevocationList().revokeSerial(leaf.cert.serialHex, root.cert.sha256Hex);
      verifyX509Svid([leaf.cert, int.cert], bundle, { at, revocation: otherIssuer });
      const sameIssuer = new StaticRevocationList().revokeSerial(leaf.cert.serialHex, int.cert.sha256Hex);
      expectRefusal(
        () => verifyX509Svid([leaf.cert, int.cert], bundle, { at, revocation: sameIssuer }),
        ErrorCode.REVOKED,
      );
    });

    it('asks the checker about the leaf, its issuer and (without a context) no sessions', () => {
      const leaf = makeLeaf(ID, int);
      const seen: RevocationQuery[] = [];
      verifyX509Svid([leaf.cert, int.cert], bundle, {
        at,
        revocation: {
          isRevoked: (q) => {
            seen.push(q);
            return false;
          },
        },
      });
      assert.deepEqual(seen, [
        {
          serialHex: leaf.cert.serialHex,
          issuerSha256Hex: int.cert.sha256Hex,
          certSha256Hex: leaf.cert.sha256Hex,
          spiffeId: ID,
          delegationSessionIds: [],
        },
      ]);
    });

    it('fails closed: `true` rejects, and a checker that throws rejects with its error', () => {
      const leaf = makeLeaf(ID, root);
      expectRefusal(
        () => verifyX509Svid([leaf.cert], bundle, { at, revocation: { isRevoked: () => true } }),
        ErrorCode.REVOKED,
      );
      assert.throws(
        () =>
          verifyX509Svid([leaf.cert], bundle, {
            at,
            revocation: {
              isRevoked: () => {
                throw new Error('revocation state unavailable');
              },
            },
          }),
        /revocation state unavailable/,
      );
    });

    it('is consulted only for SVIDs that passed every other check', () => {
      let asked = false;
      const revocation = { isRevoked: () => ((asked = true), false) };
      const leaf = makeLeaf(ID, makeRoot(TD));
      expectRefusal(
        () => verifyX509Svid([leaf.cert], bundle, { at, revocation }),
        ErrorCode.SIGNATURE_INVALID,
      );
      assert.equal(asked, false);
    });
  });

  describe('cache', () => {
    it('hits the cache on the second verification of the same chain (CA signatures and CA parsing)', () => {
      // The per-fact layer under the chain memo: what a repeat costs when the whole chain is not remembered.
      const cache = new VerificationCache({ chains: false });
      const int2 = makeIntermediate(TD, int, { cn: 'int2' });
      const chain = [makeLeaf(ID, int2).cert.der, int2.cert.der, int.cert.der];
      verifyX509Svid(chain, bundle, { at, cache });
      const first = cache.stats();
      assert.equal(first.signatures.hits, 0);
      assert.equal(first.certificates.misses, 3);
      verifyX509Svid(chain, bundle, { at, cache });
      const second = cache.stats();
      assert.equal(second.signatures.hits, 2, 'int2->int and int->root come from the cache');
      assert.equal(second.signatures.misses, 2, 'the leaf signature is never looked up, only checked');
      assert.equal(second.certificates.hits, 2, 'the CAs are not decoded again');
      assert.equal(second.certificates.misses, 4, 'a leaf is kept from its second verification on');
      verifyX509Svid(chain, bundle, { at, cache });
      assert.equal(cache.stats().certificates.hits, 5, 'the third time nothing is decoded again');
    });

    it('keeps a leaf only once it is verified a second time, and never another leaf for its bytes', () => {
      const cache = new VerificationCache({ chains: false });
      const leaf = makeLeaf(ID, int);
      verifyX509Svid([leaf.cert.der, int.cert.der], bundle, { at, cache });
      assert.equal(cache.certificate(leaf.cert.der), undefined, 'a leaf seen once is not kept');
      assert.equal(cache.stats().certificates.size, 2, 'the intermediate and the root are');
      const second = verifyX509Svid([leaf.cert.der, int.cert.der], bundle, { at, cache }).chain[0]!;
      assert.equal(cache.certificate(leaf.cert.der), second, 'kept after its second verification');
      // Same length and last bytes (the lookup hint), one signature byte different: never answered from the
      // kept leaf, and refused.
      const near = new Uint8Array(leaf.cert.der);
      near[near.length - 20] = near[near.length - 20]! ^ 0x01;
      assert.equal(cache.certificate(near), undefined);
      expectRefusal(
        () => verifyX509Svid([near, int.cert.der], bundle, { at, cache }),
        'ERR_SIGNATURE_INVALID',
      );
      // A refused leaf is never noted: verified twice after a refusal, it is kept only at the second success.
      const other = makeLeaf(ID, int);
      assert.throws(() => verifyX509Svid([other.cert.der, int.cert.der], bundle, { at: new Date(0), cache }));
      verifyX509Svid([other.cert.der, int.cert.der], bundle, { at, cache });
      assert.equal(cache.certificate(other.cert.der), undefined, 'one success is one sighting');
    });

    it('remembers nothing from a chain that was rejected', () => {
      const cache = new VerificationCache();
      const leaf = makeLeaf(ID, int, { keyUsage: ['digitalSignature', 'cRLSign'] });
      expectRefusal(
        () => verifyX509Svid([leaf.cert.der, int.cert.der], bundle, { at, cache }),
        ErrorCode.SVID_INVALID,
      );
      assert.equal(cache.stats().certificates.size, 0);
      // The int->root signature may be remembered: that edge is part of a path to a trusted root whatever the
      // leaf is, and a fact about two CA certificates cannot make a different leaf pass.
    });

    it('never serves a revoked SVID from the cache', () => {
      const cache = new VerificationCache();
      const leaf = makeLeaf(ID, int);
      const revocation = new StaticRevocationList();
      verifyX509Svid([leaf.cert, int.cert], bundle, { at, cache, revocation });
      revocation.revokeSerial(leaf.cert.serialHex);
      expectRefusal(
        () => verifyX509Svid([leaf.cert, int.cert], bundle, { at, cache, revocation }),
        ErrorCode.REVOKED,
      );
    });

    it('never serves an expired SVID from the cache', () => {
      const cache = new VerificationCache();
      const leaf = makeLeaf(ID, int, { notAfter: new Date(at.getTime() + HOUR) });
      verifyX509Svid([leaf.cert, int.cert], bundle, { at, cache });
      expectRefusal(
        () => verifyX509Svid([leaf.cert, int.cert], bundle, { at: new Date(at.getTime() + 2 * HOUR), cache }),
        ErrorCode.SVID_EXPIRED,
      );
      const longInt = makeIntermediate(TD, root, { notAfter: new Date(at.getTime() + DAY) });
      const longLeaf = makeLeaf(ID, longInt, { notAfter: new Date(at.getTime() + 30 * DAY) });
      verifyX509Svid([longLeaf.cert, longInt.cert], bundle, { at, cache });
      expectRefusal(
        () =>
          verifyX509Svid([longLeaf.cert, longInt.cert], bundle, {
            at: new Date(at.getTime() + 2 * DAY),
            cache,
          }),
        ErrorCode.CERT_EXPIRED,
      );
    });

    it('keeps the checked agent context of a leaf, so a repeat does not decode or re-check the links', () => {
      const ca = createCa(TD);
      const hops = plannerChain(ca);
      const caBundle = new X509Bundle(td(TD), { x509Authorities: [ca.cert] });
      const cache = new VerificationCache({ chains: false });
      const leaf = hops[2]!.cert;
      const first = verifyX509Svid([leaf.der], caBundle, { cache });
      assert.equal(cache.stats().contexts.misses, 1);
      const second = verifyX509Svid([leaf.der], caBundle, { cache });
      assert.equal(cache.stats().contexts.hits, 1);
      assert.deepEqual(second.context, first.context);
    });

    it("re-applies the caller's depth bound to a cached context", () => {
      const ca = createCa(TD);
      const leaf = plannerChain(ca)[2]!.cert;
      const caBundle = new X509Bundle(td(TD), { x509Authorities: [ca.cert] });
      const cache = new VerificationCache();
      verifyX509Svid([leaf.der], caBundle, { cache });
      expectRefusal(
        () => verifyX509Svid([leaf.der], caBundle, { cache, maxDelegationDepth: 1 }),
        ErrorCode.DELEGATION_TOO_DEEP,
      );
    });

    it('hands out copies: a caller editing its context cannot change what the cache proves', () => {
      const ca = createCa(TD);
      const leaf = plannerChain(ca)[2]!.cert;
      const caBundle = new X509Bundle(td(TD), { x509Authorities: [ca.cert] });
      const cache = new VerificationCache();
      const first = verifyX509Svid([leaf.der], caBundle, { cache });
      first.context!.delegation[0]!.certSha256.fill(0);
      const second = verifyX509Svid([leaf.der], caBundle, { cache });
      assert.notDeepEqual(second.context!.delegation[0]!.certSha256, new Uint8Array(32));
    });

    it('never caches a context that failed a rule', () => {
      const ca = createCa(TD);
      const hops = plannerChain(ca);
      const caBundle = new X509Bundle(td(TD), { x509Authorities: [ca.cert] });
      const cache = new VerificationCache();
      // The retrieval hop claims a scope its parent never granted: re-issued by the same CA, so only the
      // context rule can catch it.
      const forged = issueSvid(ca, hops[2]!.id, {
        key: hops[2]!.key,
        context: { ...hops[2]!.context, scopes: ['docs:read', 'docs:write'] },
        ttlSeconds: 900,
      }).cert;
      expectRefusal(() => verifyX509Svid([forged.der], caBundle, { cache }), ErrorCode.SCOPE_ESCALATION);
      expectRefusal(() => verifyX509Svid([forged.der], caBundle, { cache }), ErrorCode.SCOPE_ESCALATION);
      assert.equal(cache.stats().contexts.size, 0);
    });

    it('can be switched off with cache: null', () => {
      const leaf = makeLeaf(ID, int);
      const result = verifyX509Svid([leaf.cert, int.cert], bundle, { at, cache: null });
      assert.equal(result.id.toString(), ID);
    });
  });

  it('throws only LanyardErrors for rejections', () => {
    try {
      verifyX509Svid([makeLeaf(ID, makeRoot('x.org')).cert], bundle, { at });
      assert.fail('expected a rejection');
    } catch (e) {
      assert.ok(e instanceof LanyardError);
    }
  });
});
