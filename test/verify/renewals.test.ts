import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { X509Bundle } from '../../src/bundle';
import { TrustDomain } from '../../src/spiffe';
import { VerificationCache, verifyX509Svid } from '../../src/verify';
import { RenewedLeaves } from '../../src/verify/renewals';
import { readCertificateOutline } from '../../src/x509/certificate-der';
import { subjectKeyIdOf } from '../../src/x509/der-extensions';
import {
  createPki,
  HOUR,
  makeCertDer,
  makeIntermediate,
  makeLeaf,
  newKey,
  issueSvid,
  NOW,
  svidLeafFields,
  plannerChain,
  renewHop,
  type CertSpec,
  type TrustDomainPki,
} from '../support/pki';
import { propertyRuns } from '../support/property';
import { expectRefusal, verifyOutcome } from '../support/refusal';
import { mutate, mutation } from '../x509/mutations';

/**
 * A renewal of a leaf the verifier has verified (same extensions, issuer and subject under the same presented
 * certificates) is recognised rather than parsed and checked whole (src/verify/renewals.ts). What it answers must
 * be what the full verification answers: an accepted renewal gives the same result, and anything that differs
 * from the kept leaf in bytes the kept answers rest on, or fails a check of what a renewal may change, is
 * refused with the code a verification without any cache gives.
 */

const TD = 'example.org';

// The module object certificate.ts calls verify() on (CommonJS under tsx and in dist/): wrapped to count checks.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const cryptoModule = require('node:crypto') as typeof import('node:crypto');

/** How many times node:crypto's verify() checked `der`'s own signature while `fn` ran. */
function signatureChecksOf(der: Uint8Array, fn: () => void): number {
  const o = readCertificateOutline(der);
  const signature = Buffer.from(der.subarray(o.signatureStart, o.signatureEnd));
  const original = cryptoModule.verify;
  let n = 0;
  cryptoModule.verify = ((...args: Parameters<typeof original>) => {
    const sig = args[3];
    if (sig instanceof Uint8Array && Buffer.compare(Buffer.from(sig), signature) === 0) n++;
    return original(...args);
  }) as typeof original;
  try {
    fn();
  } finally {
    cryptoModule.verify = original;
  }
  return n;
}

/** A subjectKeyIdentifier extension as CertSpec's `extra` takes it: extnValue is the KeyIdentifier's DER. */
function keyIdExtension(
  keyId: Uint8Array,
  critical = false,
): { oid: string; critical: boolean; value: Uint8Array } {
  return { oid: '2.5.29.14', critical, value: Uint8Array.from([0x04, keyId.length, ...keyId]) };
}

function spkiOf(key: ReturnType<typeof newKey>): Uint8Array {
  return new Uint8Array(key.publicKey.export({ type: 'spki', format: 'der' }));
}

describe('renewals of a verified leaf', () => {
  describe('a leaf with an agent context (renewed for the same key and context)', () => {
    let pki: TrustDomainPki;
    let last: ReturnType<typeof plannerChain>[number];
    before(() => {
      pki = createPki(TD);
      last = plannerChain(pki)[2]!;
    });
    const renew = (options: { spiffeId?: string; key?: ReturnType<typeof newKey> } = {}): Uint8Array =>
      renewHop(pki, last, options);
    /** A cache that keeps the leaf: the second leaf with the same extensions that passes is kept. */
    const primed = (chains = false): VerificationCache => {
      const cache = new VerificationCache({ chains });
      for (let i = 0; i < 2; i++) verifyX509Svid([renew(), pki.intermediate.cert.der], pki.bundle, { cache });
      assert.equal(cache.stats().renewals.size, 1, 'the second leaf with these extensions is kept');
      assert.equal(cache.stats().renewals.hits, 0);
      return cache;
    };

    it('accepts a renewal from the kept leaf with the result the full verification gives', () => {
      for (const chains of [false, true]) {
        const cache = primed(chains);
        const der = renew();
        const chain = [der, pki.intermediate.cert.der];
        const fast = verifyX509Svid(chain, pki.bundle, { cache });
        assert.equal(cache.stats().renewals.hits, 1, 'recognised as a renewal');
        const full = verifyX509Svid(chain, pki.bundle, { cache: null });
        assert.equal(fast.id.toString(), full.id.toString());
        assert.deepEqual(fast.context, full.context);
        assert.equal(fast.chain.length, full.chain.length);
        for (let i = 0; i < full.chain.length; i++) {
          assert.deepEqual(Buffer.from(fast.chain[i]!.der), Buffer.from(full.chain[i]!.der));
        }
        const [a, b] = [fast.chain[0]!, full.chain[0]!];
        assert.notEqual(a.der, der, 'the leaf keeps its own copy of the bytes');
        assert.equal(a.serialHex, b.serialHex);
        assert.equal(a.notAfter.getTime(), b.notAfter.getTime());
        assert.deepEqual(Buffer.from(a.spkiDer), Buffer.from(b.spkiDer));
        assert.deepEqual(a.uriSans, b.uriSans);
        assert.deepEqual(
          a.extensions.map((e) => [e.oid, e.critical, Buffer.from(e.value)]),
          b.extensions.map((e) => [e.oid, e.critical, Buffer.from(e.value)]),
        );
        assert.equal(a.isSignedBy(pki.intermediate.cert), true);
        // The decoded extensions are shared by the renewals: a caller cannot edit them for the others.
        assert.throws(() => (a.uriSans as string[]).push('spiffe://example.org/x'), TypeError);
        assert.throws(() => a.extensions.pop(), TypeError);
      }
    });

    it('keeps a leaf only from the second with its extensions under the same options', () => {
      const cache = new VerificationCache({ chains: false });
      for (let i = 0; i < 2; i++) {
        verifyX509Svid([renew(), pki.intermediate.cert.der], pki.bundle, {
          cache,
          maxDelegationDepth: 2 + i,
        });
      }
      assert.equal(cache.stats().renewals.size, 0, 'other options: other leaves');
    });

    it('refuses a renewal for another SPIFFE ID, one byte apart, as the full verification does', () => {
      const cache = primed();
      const other = last.id.slice(0, -1) + (last.id.endsWith('x') ? 'y' : 'x');
      const chain = [renew({ spiffeId: other }), pki.intermediate.cert.der];
      expectRefusal(() => verifyX509Svid(chain, pki.bundle, { cache }), 'ERR_DELEGATION_LINK_INVALID');
      assert.equal(verifyOutcome(chain, pki.bundle, { cache: null }), 'ERR_DELEGATION_LINK_INVALID');
      assert.equal(cache.stats().renewals.hits, 0);
    });

    it('refuses a renewal under other options than the kept leaf', () => {
      const cache = primed();
      const chain = [renew(), pki.intermediate.cert.der];
      expectRefusal(
        () => verifyX509Svid(chain, pki.bundle, { cache, maxDelegationDepth: 1 }),
        'ERR_DELEGATION_TOO_DEEP',
      );
      assert.equal(cache.stats().renewals.hits, 0);
    });

    it('refuses a renewal presented without the intermediate the kept leaf came with', () => {
      const cache = primed();
      const chain = [renew()];
      const cold = verifyOutcome(chain, pki.bundle, { cache: null });
      assert.notEqual(cold, 'accepted');
      assert.equal(verifyOutcome(chain, pki.bundle, { cache }), cold);
      assert.equal(cache.stats().renewals.hits, 0);
    });

    it('refuses a renewal whose serial is revoked, recognised or not', () => {
      const cache = primed();
      const der = renew();
      const serial = verifyX509Svid([der, pki.intermediate.cert.der], pki.bundle, { cache: null }).chain[0]!
        .serialHex;
      const revocation = { isRevoked: (q: { serialHex: string }) => q.serialHex === serial };
      expectRefusal(
        () => verifyX509Svid([der, pki.intermediate.cert.der], pki.bundle, { cache, revocation }),
        'ERR_REVOKED',
      );
      assert.equal(cache.stats().renewals.hits, 1, 'the refusal came after the renewal was recognised');
    });

    it('refuses a renewal whose signature does not verify, with the code of the full verification', () => {
      const cache = primed();
      const der = renew();
      der[der.length - 1] = der[der.length - 1]! ^ 0x01;
      const chain = [der, pki.intermediate.cert.der];
      expectRefusal(() => verifyX509Svid(chain, pki.bundle, { cache }), 'ERR_SIGNATURE_INVALID');
      assert.equal(verifyOutcome(chain, pki.bundle, { cache: null }), 'ERR_SIGNATURE_INVALID');
      assert.equal(cache.stats().renewals.hits, 0);
    });

    it('refuses a forged renewal with one check of its signature, the full path told the first answer', () => {
      const cache = primed();
      const der = renew();
      der[der.length - 1] = der[der.length - 1]! ^ 0x01;
      const chain = [der, pki.intermediate.cert.der];
      let hot = '';
      const checks = signatureChecksOf(der, () => {
        hot = verifyOutcome(chain, pki.bundle, { cache });
      });
      assert.equal(hot, 'ERR_SIGNATURE_INVALID');
      assert.equal(cache.stats().renewals.misses > 0, true, 'looked at as a renewal');
      assert.equal(checks, 1, 'the renewal path checked it, the full path did not again');
      // The same message as a verification without any cache gives.
      const message = (fn: () => unknown): string => {
        try {
          fn();
        } catch (e) {
          return e instanceof Error ? e.message : String(e);
        }
        return 'accepted';
      };
      const cache2 = primed();
      assert.equal(
        message(() => verifyX509Svid(chain, pki.bundle, { cache: cache2 })),
        message(() => verifyX509Svid(chain, pki.bundle, { cache: null })),
      );
    });

    it('refuses every byte-level mutation of a renewal with the code a cold verification gives (property)', () => {
      const cache = primed();
      const leaf = renew();
      fc.assert(
        fc.property(mutation, (m) => {
          const chain = [mutate(leaf, m), pki.intermediate.cert.der];
          // A mutation may leave the bytes as they were (a byte set to its own value): that is the renewal itself,
          // which is accepted, and taken as a renewal the first time it comes.
          const mutated = Buffer.compare(chain[0]!, leaf) !== 0;
          const hitsBefore = cache.stats().renewals.hits;
          const cold = verifyOutcome(chain, pki.bundle, { cache: null });
          const hot = verifyOutcome(chain, pki.bundle, { cache });
          assert.equal(hot, cold);
          if (mutated) {
            assert.notEqual(hot, 'accepted');
            assert.equal(cache.stats().renewals.hits, hitsBefore, 'a mutated leaf was taken for a renewal');
          }
        }),
        { numRuns: propertyRuns(400) },
      );
    });
  });

  describe('leaves built field by field (a fixed instant)', () => {
    const pki = createPki(TD, { now: new Date(NOW.getTime() - HOUR) });
    const inter = pki.intermediate;
    const id = `spiffe://${TD}/workload`;
    const key = newKey();
    const leaf = (spec: Partial<CertSpec> = {}): Uint8Array => makeLeaf(id, inter, { key, ...spec }).cert.der;
    const primed = (spec: Partial<CertSpec> = {}, bundle = pki.bundle): VerificationCache => {
      const cache = new VerificationCache({ chains: false });
      for (let i = 0; i < 2; i++) verifyX509Svid([leaf(spec), inter.cert.der], bundle, { at: NOW, cache });
      assert.equal(cache.stats().renewals.size, 1);
      return cache;
    };
    const refusedAsCold = (
      cache: VerificationCache,
      chain: Uint8Array[],
      code: string,
      bundle = pki.bundle,
    ) => {
      expectRefusal(() => verifyX509Svid(chain, bundle, { at: NOW, cache }), code);
      assert.equal(verifyOutcome(chain, bundle, { at: NOW, cache: null }), code);
      assert.equal(cache.stats().renewals.hits, 0, 'not taken for a renewal');
    };

    it('accepts a renewal with another key (its key read and checked as a parse would)', () => {
      const cache = primed();
      // makeLeaf derives the subject key identifier from the key: force the kept one, so only the key differs.
      const renewal = makeLeaf(id, inter, { key: newKey(), subjectKeyId: false }).cert.der;
      const cacheNoSki = primed({ subjectKeyId: false });
      const svid = verifyX509Svid([renewal, inter.cert.der], pki.bundle, { at: NOW, cache: cacheNoSki });
      assert.equal(cacheNoSki.stats().renewals.hits, 1);
      assert.equal(svid.id.toString(), id);
      // With the subject key identifier, another key is other extensions: verified in full, accepted too.
      verifyX509Svid([leaf({ key: newKey() }), inter.cert.der], pki.bundle, { at: NOW, cache });
      assert.equal(cache.stats().renewals.hits, 0);
    });

    it('refuses a renewal with a key off its curve, as the full verification does', () => {
      const cache = primed({ subjectKeyId: false });
      const spki = Buffer.from(newKey().publicKey.export({ type: 'spki', format: 'der' }));
      spki[spki.length - 1] = spki[spki.length - 1]! ^ 0x01; // the point's last coordinate byte: no longer on P-256
      const der = makeCertDer({
        ...svidLeafFields(id),
        issuer: inter,
        subjectKeyId: false,
        spkiDer: spki,
      }).der;
      const cold = verifyOutcome([der, inter.cert.der], pki.bundle, { at: NOW, cache: null });
      assert.notEqual(cold, 'accepted');
      refusedAsCold(cache, [der, inter.cert.der], cold);
    });

    it('refuses a renewal naming another issuer, signed by the kept issuer key', () => {
      const cache = primed();
      const other = makeIntermediate(TD, pki.root, { cn: 'another intermediate' });
      // The other CA's name over the known CA's key, the same key identifiers: only the issuer field differs.
      const der = makeCertDer({
        ...svidLeafFields(id),
        key,
        issuer: { cert: other.cert, key: inter.key },
        authorityKeyId: inter.cert.subjectKeyId!,
      }).der;
      refusedAsCold(cache, [der, inter.cert.der], 'ERR_UNKNOWN_AUTHORITY');
    });

    it('refuses a renewal with another subject that a rule refuses', () => {
      const cache = primed();
      refusedAsCold(cache, [leaf({ emptySubject: true }), inter.cert.der], 'ERR_CERT_PROFILE_INVALID');
    });

    it('refuses the renewal of a leaf that was refused', () => {
      const spec: Partial<CertSpec> = { keyUsage: ['digitalSignature', 'keyAgreement', 'cRLSign'] };
      const cache = new VerificationCache({ chains: false });
      for (let i = 0; i < 2; i++) {
        expectRefusal(
          () => verifyX509Svid([leaf(spec), inter.cert.der], pki.bundle, { at: NOW, cache }),
          'ERR_SVID_INVALID',
        );
      }
      assert.equal(cache.stats().renewals.size, 0);
      refusedAsCold(cache, [leaf(spec), inter.cert.der], 'ERR_SVID_INVALID');
    });

    it('refuses an expired or not yet valid renewal', () => {
      const cache = primed();
      refusedAsCold(
        cache,
        [leaf({ notAfter: new Date(NOW.getTime() - 1000) }), inter.cert.der],
        'ERR_SVID_EXPIRED',
      );
      refusedAsCold(
        cache,
        [leaf({ notBefore: new Date(NOW.getTime() + 60_000) }), inter.cert.der],
        'ERR_CERT_NOT_YET_VALID',
      );
    });

    it('refuses a renewal at an instant the intermediate is not valid', () => {
      const cache = primed();
      const at = new Date(inter.cert.notAfter.getTime() + 1000);
      const chain = [leaf({ notAfter: new Date(at.getTime() + HOUR) }), inter.cert.der];
      const cold = verifyOutcome(chain, pki.bundle, { at, cache: null });
      assert.equal(cold, 'ERR_CERT_EXPIRED');
      assert.equal(verifyOutcome(chain, pki.bundle, { at, cache }), cold);
      assert.equal(cache.stats().renewals.hits, 0);
    });

    it('verifies in full under another bundle generation', () => {
      const cache = primed();
      const td = TrustDomain.parse(TD);
      // The same root in a new bundle object: accepted, but from the full path.
      const same = X509Bundle.fromDer(td, [pki.root.cert.der]);
      verifyX509Svid([leaf(), inter.cert.der], same, { at: NOW, cache });
      assert.equal(cache.stats().renewals.hits, 0);
      // A rotated bundle without that root: refused as without a cache.
      const rotated = X509Bundle.fromDer(td, [createPki(TD).root.cert.der]);
      const chain = [leaf(), inter.cert.der];
      const cold = verifyOutcome(chain, rotated, { at: NOW, cache: null });
      assert.notEqual(cold, 'accepted');
      refusedAsCold(primed(), chain, cold, rotated);
    });

    it('answers for a hint only with the same options and the same certificates after the leaf', () => {
      const table = new RenewedLeaves(8);
      const chain = [leaf(), inter.cert.der];
      const svid = verifyX509Svid(chain, pki.bundle, { at: NOW, cache: null });
      const hint = 12345;
      for (let i = 0; i < 2; i++)
        table.offer(
          hint,
          readCertificateOutline(chain[0]!),
          chain,
          '',
          pki.bundle,
          svid.chain,
          svid.id,
          undefined,
        );
      assert.ok(table.find(hint, chain, '') !== undefined);
      // The hint is only where to look: another intermediate, none, or other options find nothing.
      const other = makeIntermediate(TD, pki.root, { cn: 'another intermediate' }).cert.der;
      assert.equal(table.find(hint, [chain[0]!, other], ''), undefined);
      assert.equal(table.find(hint, [chain[0]!], ''), undefined);
      assert.equal(table.find(hint, [chain[0]!, inter.cert.der, inter.cert.der], ''), undefined);
      assert.equal(table.find(hint, chain, 'example.org\n\n\n1.3.6.1.4.1.262144.1.1'), undefined);
      // What it keeps is a copy: the caller's buffers changing afterwards change nothing.
      const mine = new Uint8Array(inter.cert.der);
      const table2 = new RenewedLeaves(8);
      for (let i = 0; i < 2; i++)
        table2.offer(
          hint,
          readCertificateOutline(chain[0]!),
          [chain[0]!, mine],
          '',
          pki.bundle,
          svid.chain,
          svid.id,
          undefined,
        );
      mine[mine.length - 1] = mine[mine.length - 1]! ^ 1;
      assert.equal(table2.find(hint, [chain[0]!, mine], ''), undefined);
    });

    it('bounds the kept leaves by maxEntries', () => {
      const cache = new VerificationCache({ chains: false, maxEntries: 4 });
      for (let n = 0; n < 24; n++) {
        const spec = { dns: [`n${n}.example.org`] };
        for (let i = 0; i < 2; i++)
          verifyX509Svid([leaf(spec), inter.cert.der], pki.bundle, { at: NOW, cache });
      }
      assert.ok(cache.stats().renewals.size <= 4, `${cache.stats().renewals.size} kept`);
      assert.ok(cache.stats().renewals.size > 0);
    });
  });
  describe('renewals with a new key (the subject key identifier derived from it)', () => {
    const pki = createPki(TD, { now: new Date(NOW.getTime() - HOUR) });
    const inter = pki.intermediate;
    /** For issueSvid with no `now`, which issues at the clock's time. */
    const live = createPki(TD);
    const id = `spiffe://${TD}/rotating`;
    const marker = { oid: '1.3.6.1.4.1.55555.1', critical: false, value: Uint8Array.of(0x05, 0x00) };
    /** Lanyard's own profile: the identifier is subjectKeyIdOf(the SPKI), written by issueX509Svid. */
    const issued = (key = newKey()): Uint8Array => issueSvid(live, id, { key, ttlSeconds: 600 }).cert.der;
    /** Built field by field: the identifier given as `extra`, at the place and with the flag the test picks. */
    const built = (key: ReturnType<typeof newKey>, extra: CertSpec['extra']): Uint8Array =>
      makeLeaf(id, inter, { key, subjectKeyId: false, extra }).cert.der;
    const derived = (key: ReturnType<typeof newKey>): Uint8Array => subjectKeyIdOf(spkiOf(key));
    const checkAsCold = (cache: VerificationCache, der: Uint8Array, at?: Date, p = pki): string => {
      const chain = [der, p.intermediate.cert.der];
      const hits = cache.stats().renewals.hits;
      const cold = verifyOutcome(chain, p.bundle, { at, cache: null });
      assert.equal(verifyOutcome(chain, p.bundle, { at, cache }), cold);
      assert.equal(cache.stats().renewals.hits, hits, 'not taken for a renewal');
      return cold;
    };

    it('recognises a renewal of a Lanyard leaf with a new key, with the result the full verification gives', () => {
      const cache = new VerificationCache({ chains: false });
      // Two leaves, two keys: the second is kept, its identifier left out of what decides admission.
      for (let i = 0; i < 2; i++)
        verifyX509Svid([issued(), live.intermediate.cert.der], live.bundle, { cache });
      assert.equal(cache.stats().renewals.size, 1);
      const key = newKey();
      const chain = [issued(key), live.intermediate.cert.der];
      const fast = verifyX509Svid(chain, live.bundle, { cache });
      assert.equal(cache.stats().renewals.hits, 1, 'recognised as a renewal');
      const full = verifyX509Svid(chain, live.bundle, { cache: null });
      const [a, b] = [fast.chain[0]!, full.chain[0]!];
      assert.equal(fast.id.toString(), full.id.toString());
      assert.deepEqual(Buffer.from(a.spkiDer), Buffer.from(spkiOf(key)));
      assert.deepEqual(Buffer.from(a.subjectKeyId!), Buffer.from(b.subjectKeyId!));
      assert.deepEqual(Buffer.from(a.subjectKeyId!), Buffer.from(derived(key)));
      assert.deepEqual(
        a.extensions.map((e) => [e.oid, e.critical, Buffer.from(e.value)]),
        b.extensions.map((e) => [e.oid, e.critical, Buffer.from(e.value)]),
      );
      assert.equal(a.describeKey().kind, 'ec');
      assert.throws(() => a.extensions.pop(), TypeError);
      // And a renewal that keeps the kept leaf's key is still one.
      verifyX509Svid([issued(key), live.intermediate.cert.der], live.bundle, { cache });
      assert.equal(cache.stats().renewals.hits, 2);
    });

    it('recognises one built field by field when its identifier is derived from its key', () => {
      const cache = new VerificationCache({ chains: false });
      for (let i = 0; i < 2; i++) {
        const key = newKey();
        verifyX509Svid([built(key, [keyIdExtension(derived(key)), marker]), inter.cert.der], pki.bundle, {
          at: NOW,
          cache,
        });
      }
      assert.equal(cache.stats().renewals.size, 1);
      const key = newKey();
      const svid = verifyX509Svid(
        [built(key, [keyIdExtension(derived(key)), marker]), inter.cert.der],
        pki.bundle,
        { at: NOW, cache },
      );
      assert.equal(cache.stats().renewals.hits, 1);
      assert.deepEqual(Buffer.from(svid.chain[0]!.subjectKeyId!), Buffer.from(derived(key)));
    });

    it("verifies in full a new key whose identifier is the old one, random, another key's, moved or critical", () => {
      /** A cache keeping a leaf with a derived identifier, and that leaf's key. */
      const primedRotating = (): [VerificationCache, ReturnType<typeof newKey>] => {
        const cache = new VerificationCache({ chains: false });
        let keptKey = newKey();
        for (let i = 0; i < 2; i++) {
          keptKey = newKey();
          const der = built(keptKey, [keyIdExtension(derived(keptKey)), marker]);
          verifyX509Svid([der, inter.cert.der], pki.bundle, { at: NOW, cache });
        }
        assert.equal(cache.stats().renewals.size, 1);
        return [cache, keptKey];
      };
      const key = newKey();
      const cases: [string, (kept: ReturnType<typeof newKey>) => CertSpec['extra']][] = [
        ["the kept leaf's identifier", (kept) => [keyIdExtension(derived(kept)), marker]],
        ['a random identifier', () => [keyIdExtension(new Uint8Array(randomBytes(20))), marker]],
        ["another key's identifier", () => [keyIdExtension(derived(newKey())), marker]],
        ['the identifier moved after another extension', () => [marker, keyIdExtension(derived(key))]],
        ['the identifier marked critical', () => [keyIdExtension(derived(key), true), marker]],
      ];
      for (const [what, extra] of cases) {
        const [cache, kept] = primedRotating();
        const cold = checkAsCold(cache, built(key, extra(kept)), NOW);
        assert.ok(cold.length > 0, what);
        // The same key with its own identifier where the kept leaf has it is a renewal.
        verifyX509Svid([built(key, [keyIdExtension(derived(key)), marker]), inter.cert.der], pki.bundle, {
          at: NOW,
          cache,
        });
        assert.equal(cache.stats().renewals.hits, 1, what);
      }
    });

    it('verifies in full a new key under a kept leaf whose identifier is not derived from its key', () => {
      const cache = new VerificationCache({ chains: false });
      // The same identifier on every leaf: not the key's, so a new key has no exception.
      const fixed = new Uint8Array(randomBytes(20));
      for (let i = 0; i < 2; i++)
        verifyX509Svid([built(newKey(), [keyIdExtension(fixed), marker]), inter.cert.der], pki.bundle, {
          at: NOW,
          cache,
        });
      assert.equal(cache.stats().renewals.size, 1);
      const key = newKey();
      assert.equal(checkAsCold(cache, built(key, [keyIdExtension(derived(key)), marker]), NOW), 'accepted');
      // Its own identifier kept, as before: the extensions are the kept leaf's bytes, only the key differs.
      verifyX509Svid([built(key, [keyIdExtension(fixed), marker]), inter.cert.der], pki.bundle, {
        at: NOW,
        cache,
      });
      assert.equal(cache.stats().renewals.hits, 1);
    });

    it('refuses every byte-level mutation of a new-key renewal with the code a cold verification gives (property)', () => {
      const cache = new VerificationCache({ chains: false });
      for (let i = 0; i < 2; i++)
        verifyX509Svid([issued(), live.intermediate.cert.der], live.bundle, { cache });
      assert.equal(cache.stats().renewals.size, 1);
      const leaf = issued();
      fc.assert(
        fc.property(mutation, (m) => {
          const der = mutate(leaf, m);
          const hits = cache.stats().renewals.hits;
          const chain = [der, live.intermediate.cert.der];
          const cold = verifyOutcome(chain, live.bundle, { cache: null });
          assert.equal(verifyOutcome(chain, live.bundle, { cache }), cold);
          if (Buffer.compare(der, leaf) !== 0) {
            assert.notEqual(cold, 'accepted');
            assert.equal(cache.stats().renewals.hits, hits, 'a mutated leaf was taken for a renewal');
          }
        }),
        { numRuns: propertyRuns(200) },
      );
    });

    it('refuses a forged renewal with a new key, as the full verification does', () => {
      const cache = new VerificationCache({ chains: false });
      for (let i = 0; i < 2; i++)
        verifyX509Svid([issued(), live.intermediate.cert.der], live.bundle, { cache });
      const der = issued();
      der[der.length - 1] = der[der.length - 1]! ^ 0x01;
      assert.equal(checkAsCold(cache, der, undefined, live), 'ERR_SIGNATURE_INVALID');
    });
  });
});
