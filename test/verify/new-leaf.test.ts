import assert from 'node:assert/strict';
import fc from 'fast-check';
import { VerificationCache, verifyX509Svid, type VerifyX509SvidOptions } from '../../src/verify';
import {
  createPki,
  makeLeaf,
  newKey,
  NOW,
  plannerChain,
  renewHop,
  type CertSpec,
  type TrustDomainPki,
} from '../support/pki';
import { propertyRuns } from '../support/property';
import { expectRefusal, verifyOutcome } from '../support/refusal';
import { mutate, mutation } from '../x509/mutations';

/**
 * A new leaf under intermediates and links the verifier already knows takes the fast path: the intermediate comes
 * from the certificate cache, its signature and the links' from the fact caches, the context from the context
 * cache (a leaf key equal to one already matched is not hashed again), and the leaf is compared by its bytes, not
 * hashed. Every rule that reads the leaf must still run there: each refusal below is asserted on a warm cache and
 * must carry the code a verification without any cache gives.
 */

const TD = 'example.org';

describe('a new leaf under known intermediates', () => {
  describe('X509-SVID and path rules on the leaf (certificates built at a fixed instant)', () => {
    const pki = createPki(TD, { now: new Date(NOW.getTime() - 3600_000) });
    const id = `spiffe://${TD}/workload`;
    const inter = pki.intermediate;
    const warm = (): VerificationCache => {
      const cache = new VerificationCache({ chains: false });
      verifyX509Svid([makeLeaf(id, inter).cert.der, inter.cert.der], pki.bundle, { at: NOW, cache });
      // A leaf verified once is not kept (VerificationCache.rememberLeaf): the next leaf is new in every way.
      assert.equal(cache.stats().certificates.size, 2, 'intermediate and root remembered');
      return cache;
    };

    const refusals: [string, Partial<CertSpec>, string, VerifyX509SvidOptions?][] = [
      ['two URI SANs', { uris: [id, `spiffe://${TD}/other`] }, 'ERR_SVID_INVALID'],
      ['no URI SAN', { uris: [], dns: ['workload.example.org'] }, 'ERR_SVID_INVALID'],
      ['basicConstraints cA=true', { basicConstraints: { ca: true } }, 'ERR_SVID_INVALID'],
      ['no keyUsage', { keyUsage: null }, 'ERR_SVID_INVALID'],
      ['keyUsage without digitalSignature', { keyUsage: ['keyEncipherment'] }, 'ERR_SVID_INVALID'],
      ['keyCertSign on a leaf', { keyUsage: ['digitalSignature', 'keyCertSign'] }, 'ERR_KEY_USAGE_INVALID'],
      ['an EKU without clientAuth', { eku: ['1.3.6.1.5.5.7.3.1'] }, 'ERR_SVID_INVALID'],
      [
        'an unknown critical extension',
        { extra: [{ oid: '1.3.6.1.4.1.99999.1', critical: true, value: Uint8Array.of(0x05, 0x00) }] },
        'ERR_UNKNOWN_CRITICAL_EXTENSION',
      ],
      ['an expired leaf', { notAfter: new Date(NOW.getTime() - 1000) }, 'ERR_SVID_EXPIRED'],
      ['a leaf not yet valid', { notBefore: new Date(NOW.getTime() + 60_000) }, 'ERR_CERT_NOT_YET_VALID'],
      ['no authority key identifier', { authorityKeyId: null }, 'ERR_CERT_PROFILE_INVALID'],
      [
        "the intermediate's name, another key's signature",
        { issuer: { cert: inter.cert, key: newKey() } },
        'ERR_SIGNATURE_INVALID',
      ],
      ['a path over the depth bound', {}, 'ERR_CHAIN_TOO_LONG', { maxPathDepth: 2 }],
    ];
    for (const [what, spec, code, extra] of refusals) {
      it(`refuses ${what} (${code}) on a warm cache as without one`, () => {
        const cache = warm();
        const chain = [makeLeaf(id, inter, spec).cert.der, inter.cert.der];
        expectRefusal(() => verifyX509Svid(chain, pki.bundle, { at: NOW, cache, ...extra }), code);
        assert.equal(verifyOutcome(chain, pki.bundle, { at: NOW, cache: null, ...extra }), code);
        assert.equal(cache.stats().certificates.hits, 1, 'the intermediate came from the cache');
      });
    }

    it('accepts a well-formed new leaf on the warm cache', () => {
      const cache = warm();
      const leaf = makeLeaf(id, inter).cert.der;
      const svid = verifyX509Svid([leaf, inter.cert.der], pki.bundle, { at: NOW, cache });
      assert.equal(svid.id.toString(), id);
      assert.equal(cache.stats().signatures.hits, 1, "the intermediate's signature came from the cache");
    });
  });

  describe('agent context on a renewed leaf (same context bytes, new certificate)', () => {
    // Built when the tests run, not when mocha loads the file: the chain's hops live 15-60 minutes of real
    // time and each renewal 10 more, so on a slow full run a chain made at load time expired under the tests.
    let pki: TrustDomainPki;
    let last: ReturnType<typeof plannerChain>[number];
    before(() => {
      pki = createPki(TD);
      last = plannerChain(pki)[2]!;
    });
    const renew = (options: { spiffeId?: string; key?: ReturnType<typeof newKey> } = {}): Uint8Array =>
      renewHop(pki, last, options);
    const warm = (options: { renewals?: boolean } = {}): VerificationCache => {
      const cache = new VerificationCache({ chains: false, ...options });
      verifyX509Svid([renew(), pki.intermediate.cert.der], pki.bundle, { cache });
      return cache;
    };

    it('accepts renewals from the proven context, the key compared rather than hashed', () => {
      // The context cache beneath the renewals (renewals.ts), which would answer from the second renewal on.
      const cache = warm({ renewals: false });
      for (let i = 0; i < 3; i++) {
        const svid = verifyX509Svid([renew(), pki.intermediate.cert.der], pki.bundle, { cache });
        assert.equal(svid.context?.sessionId, last.context.sessionId);
      }
      assert.equal(cache.stats().contexts.hits, 3);
      assert.equal(cache.stats().contexts.misses, 1);
    });

    it('refuses a renewal holding another key than the last link delegates to, after and before a match', () => {
      const cache = warm();
      const chain = [renew({ key: newKey() }), pki.intermediate.cert.der];
      expectRefusal(() => verifyX509Svid(chain, pki.bundle, { cache }), 'ERR_DELEGATION_LINK_INVALID', /key/);
      assert.equal(verifyOutcome(chain, pki.bundle, { cache: null }), 'ERR_DELEGATION_LINK_INVALID');
      // The refused key was not remembered as the matching one: the right key still passes, the wrong one not.
      verifyX509Svid([renew(), pki.intermediate.cert.der], pki.bundle, { cache });
      expectRefusal(() => verifyX509Svid(chain, pki.bundle, { cache }), 'ERR_DELEGATION_LINK_INVALID');
    });

    it('refuses the same context on a leaf of another SPIFFE ID', () => {
      const cache = warm();
      const chain = [renew({ spiffeId: `spiffe://${TD}/intruder` }), pki.intermediate.cert.der];
      expectRefusal(() => verifyX509Svid(chain, pki.bundle, { cache }), 'ERR_DELEGATION_LINK_INVALID');
      assert.equal(verifyOutcome(chain, pki.bundle, { cache: null }), 'ERR_DELEGATION_LINK_INVALID');
    });

    it("re-applies the caller's delegation depth bound to a proven context", () => {
      const cache = warm();
      const chain = [renew(), pki.intermediate.cert.der];
      expectRefusal(
        () => verifyX509Svid(chain, pki.bundle, { cache, maxDelegationDepth: 1 }),
        'ERR_DELEGATION_TOO_DEEP',
      );
    });

    it('refuses every byte-level mutation of a new leaf with the code a cold verification gives (property)', () => {
      const cache = warm();
      const leaf = renew();
      fc.assert(
        fc.property(mutation, (m) => {
          const chain = [mutate(leaf, m), pki.intermediate.cert.der];
          const cold = verifyOutcome(chain, pki.bundle, { cache: null });
          const hot = verifyOutcome(chain, pki.bundle, { cache });
          assert.equal(hot, cold);
          // A changed byte is in the signed part, the signature or the framing: never accepted. (A mutation
          // can leave the bytes as they were, e.g. setting a byte to its own value.)
          if (Buffer.compare(chain[0]!, leaf) !== 0) assert.notEqual(hot, 'accepted');
        }),
        { numRuns: propertyRuns(400) },
      );
    });
  });
});
