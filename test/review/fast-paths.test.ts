/**
 * Review of the fast paths in front of trust decisions (renewals, the chain memo, the certificate cache, the
 * revoked-serial table): each test presents something a fast path could answer from what it kept, and holds its
 * answer to the one the full path gives (a verification without any cache, or with a cache that has not seen the
 * input): the same acceptance with the same result, or the same refusal code. A test here fails if a fast path
 * accepts what the full path refuses, refuses what it accepts, or hands a caller something else.
 */
import assert from 'node:assert/strict';
import { BundleSet, X509Bundle, type X509BundleSource } from '../../src/bundle';
import { TrustDomain } from '../../src/spiffe';
import {
  authorizeAny,
  type RevocationChecker,
  VerificationCache,
  verifyX509Svid,
  type VerifyX509SvidOptions,
  type VerifyX509SvidResult,
} from '../../src/verify';
import { KeptVerdict } from '../../src/hop/kept-verdict';
import type { HopVerifyOptions } from '../../src/hop/peer';
import { RevocationCache } from '../../src/verify/revocation-cache';
import { RevokedSerials } from '../../src/verify/revoked-serials';
import { packRevocations } from '../../src/internal/revocation-page';
import { CrlBufferHold, CrlBufferPool } from '../../src/server/revocation/crl-buffers';
import { readCertificateOutline } from '../../src/x509/certificate-der';
import { ParsedCertificate } from '../../src/x509/certificate';
import { DEFAULT_AGENT_CONTEXT_OID } from '../../src/x509/agent-context/oid';
import {
  baseContext,
  createPki,
  HOUR,
  issueSvid,
  makeLeaf,
  newKey,
  NOW,
  TD as KIT_TD,
  type CertSpec,
} from '../support/pki';
import { verifyOutcome } from '../support/refusal';

const TD = 'review.example';

/** Re-encodes a DER element's length (the header at `at`) in long form with one more octet than it needs. */
function longerLength(der: Uint8Array, at: number): Uint8Array {
  const first = der[at + 1]!;
  const n = first < 0x80 ? 0 : first & 0x7f;
  const len = n === 0 ? first : [...der.subarray(at + 2, at + 2 + n)].reduce((a, b) => a * 256 + b, 0);
  const octets: number[] = [];
  for (let v = len; v > 0; v = Math.floor(v / 256)) octets.unshift(v % 256);
  octets.unshift(0); // a leading zero octet: not the minimal encoding (X.690 §10.1)
  const header = [der[at]!, 0x80 | octets.length, ...octets];
  return Uint8Array.from([...der.subarray(0, at), ...header, ...der.subarray(at + 2 + n)]);
}

/** The same bytes with the outer Certificate length grown by `extra` zero octets appended inside it. */
function withTrailingInside(der: Uint8Array, extra: number): Uint8Array {
  // The outer header of a leaf is 30 82 hh ll: grow the content length and append zeros.
  assert.equal(der[1], 0x82);
  const len = der[2]! * 256 + der[3]! + extra;
  return Uint8Array.from([
    0x30,
    0x82,
    len >> 8,
    len & 0xff,
    ...der.subarray(4),
    ...new Array<number>(extra).fill(0),
  ]);
}

describe('review: fast paths answer as the full path does', () => {
  describe('renewals recognised from a kept leaf', () => {
    const pki = createPki(TD, { now: new Date(NOW.getTime() - HOUR) });
    const inter = pki.intermediate;
    const id = `spiffe://${TD}/workload`;
    const key = newKey();
    const leaf = (spec: Partial<CertSpec> = {}): Uint8Array => makeLeaf(id, inter, { key, ...spec }).cert.der;
    const primed = (): VerificationCache => {
      const cache = new VerificationCache({ chains: false });
      for (let i = 0; i < 2; i++) verifyX509Svid([leaf(), inter.cert.der], pki.bundle, { at: NOW, cache });
      assert.equal(cache.stats().renewals.size, 1, 'the second leaf with these extensions is kept');
      return cache;
    };
    /** Asserts the cached answer equals the cold one, and whether the renewal path gave it. */
    const sameAsCold = (
      cache: VerificationCache,
      chain: Uint8Array[],
      options: VerifyX509SvidOptions,
      expect: string,
      bundle: X509BundleSource = pki.bundle,
    ): void => {
      assert.equal(verifyOutcome(chain, bundle, { ...options, cache: null }), expect, 'the cold verdict');
      assert.equal(
        verifyOutcome(chain, bundle, { ...options, cache }),
        expect,
        'the verdict with the kept leaf',
      );
    };

    it('accepts a renewal at the last millisecond of the intermediate’s last second, and refuses one a second later', () => {
      // notAfter is inclusive to the second (RFC 5280 §4.1.2.5): the renewal path truncates as checkPath does.
      const end = inter.cert.notAfter.getTime();
      const chain = [leaf({ notAfter: new Date(end + HOUR) }), inter.cert.der];
      let cache = primed();
      sameAsCold(cache, chain, { at: new Date(end + 999) }, 'accepted');
      assert.equal(cache.stats().renewals.hits, 1, 'answered by the renewal path');
      cache = primed();
      sameAsCold(cache, chain, { at: new Date(end + 1000) }, 'ERR_CERT_EXPIRED');
      assert.equal(cache.stats().renewals.hits, 0);
    });

    it('refuses a renewal before the intermediate’s notBefore by a millisecond, as the full path does', () => {
      const start = inter.cert.notBefore.getTime();
      const chain = [leaf({ notBefore: new Date(start - HOUR) }), inter.cert.der];
      const cache = primed();
      sameAsCold(cache, chain, { at: new Date(start - 1) }, 'ERR_CERT_NOT_YET_VALID');
      assert.equal(cache.stats().renewals.hits, 0);
      sameAsCold(cache, chain, { at: new Date(start) }, 'accepted');
    });

    it('asks the checker about the renewal’s issuer: an intermediate revoked by hash refuses the renewal', () => {
      const cache = primed();
      const chain = [leaf(), inter.cert.der];
      const asked: string[] = [];
      const revocation: RevocationChecker = {
        isRevoked: (q) => {
          asked.push(q.serialHex);
          return q.issuerSha256Hex === inter.cert.sha256Hex ? true : false;
        },
      };
      sameAsCold(cache, chain, { at: NOW, revocation }, 'ERR_REVOKED');
      assert.equal(cache.stats().renewals.hits, 1, 'the renewal path asked the checker too');
      const serial = ParsedCertificate.fromDer(chain[0]!).serialHex;
      assert.deepEqual(asked, [serial, serial], 'both asked about the renewal itself, not its predecessor');
    });

    it('does not refuse a renewal for its predecessor’s revoked serial', () => {
      const cache = new VerificationCache({ chains: false });
      const first = leaf();
      const second = leaf();
      const revoked = new Set([ParsedCertificate.fromDer(second).serialHex]);
      const revocation: RevocationChecker = { isRevoked: (q) => revoked.has(q.serialHex) };
      verifyX509Svid([first, inter.cert.der], pki.bundle, { at: NOW, cache });
      verifyX509Svid([second, inter.cert.der], pki.bundle, { at: NOW, cache });
      assert.equal(
        verifyOutcome([second, inter.cert.der], pki.bundle, { at: NOW, cache, revocation }),
        'ERR_REVOKED',
      );
      sameAsCold(cache, [leaf(), inter.cert.der], { at: NOW, revocation }, 'accepted');
      // Both from the renewal path: the revoked second leaf (refused there by the checker) and the new one.
      assert.equal(cache.stats().renewals.hits, 2);
    });

    it('refuses a renewal with bytes after its end or a non-minimal length, as the strict parser does', () => {
      const der = leaf();
      const o = readCertificateOutline(der);
      const variants: [string, Uint8Array][] = [
        ['a byte after the certificate', Uint8Array.from([...der, 0])],
        ['zeros inside the outer SEQUENCE', withTrailingInside(der, 2)],
        ['a long-form outer length', longerLength(der, 0)],
        ['a long-form tbsCertificate length', longerLength(der, o.tbsStart)],
        ['a long-form serial length', longerLength(der, o.serialStart - 2)],
        ['a long-form validity length', longerLength(der, o.issuerEnd)],
        ['a long-form subjectPublicKeyInfo length', longerLength(der, o.spkiStart)],
        ['a long-form signatureAlgorithm length', longerLength(der, o.signatureAlgorithmStart)],
        ['a long-form signature length', longerLength(der, o.signatureAlgorithmEnd)],
      ];
      for (const [what, bad] of variants) {
        const cache = primed();
        const chain = [bad, inter.cert.der];
        const cold = verifyOutcome(chain, pki.bundle, { at: NOW, cache: null });
        assert.notEqual(cold, 'accepted', `${what}: the strict parser accepts it`);
        assert.equal(verifyOutcome(chain, pki.bundle, { at: NOW, cache }), cold, what);
        assert.equal(cache.stats().renewals.hits, 0, `${what}: taken for a renewal`);
      }
    });

    it('reads a renewal presented as a view into a larger buffer (a TLS peer’s raw bytes) only within its view', () => {
      const der = leaf();
      // Junk on both sides inside the same ArrayBuffer: the view's neighbours, as in Node's pooled buffers.
      const around = (d: Uint8Array, before: number[], after: number[]): Uint8Array => {
        const all = Uint8Array.from([...before, ...d, ...after]);
        return new Uint8Array(all.buffer, before.length, d.length);
      };
      let cache = primed();
      const view = around(der, [0x30, 0x82, 0xff, 0xff, 7], [0, 1, 2, 3]);
      sameAsCold(cache, [view, inter.cert.der], { at: NOW }, 'accepted');
      assert.equal(cache.stats().renewals.hits, 1, 'answered by the renewal path');
      const svid = verifyX509Svid([around(leaf(), [1, 2, 3], [9]), inter.cert.der], pki.bundle, {
        at: NOW,
        cache,
      });
      assert.equal(cache.stats().renewals.hits, 2);
      assert.equal(
        svid.chain[0]!.der.byteLength,
        svid.chain[0]!.der.buffer.byteLength,
        'a copy of the view alone',
      );
      // A view one byte short (the certificate's last byte outside it, in the buffer) is refused as cold.
      cache = primed();
      const short = new Uint8Array(Uint8Array.from(der).buffer, 0, der.length - 1);
      const cold = verifyOutcome([short, inter.cert.der], pki.bundle, { at: NOW, cache: null });
      assert.notEqual(cold, 'accepted');
      assert.equal(verifyOutcome([short, inter.cert.der], pki.bundle, { at: NOW, cache }), cold);
      assert.equal(cache.stats().renewals.hits, 0);
    });

    it('verifies in full under another options fingerprint, and accepts or refuses as the full path does', () => {
      const cache = primed();
      const chain = [leaf(), inter.cert.der];
      sameAsCold(cache, chain, { at: NOW, maxPathDepth: 2 }, 'ERR_CHAIN_TOO_LONG');
      sameAsCold(cache, chain, { at: NOW, trustDomain: 'other.example' }, 'ERR_WRONG_TRUST_DOMAIN');
      sameAsCold(cache, chain, { at: NOW, trustDomain: TrustDomain.parse(TD) }, 'accepted');
      assert.equal(cache.stats().renewals.hits, 0, 'none of them met the kept leaf');
    });

    it('follows a BundleSet whose bundle was removed or replaced between renewals', () => {
      const cache = new VerificationCache({ chains: false });
      const set = new BundleSet([pki.bundle]);
      for (let i = 0; i < 2; i++) verifyX509Svid([leaf(), inter.cert.der], set, { at: NOW, cache });
      sameAsCold(cache, [leaf(), inter.cert.der], { at: NOW }, 'accepted', set);
      assert.equal(cache.stats().renewals.hits, 1);
      set.replace(X509Bundle.fromDer(TrustDomain.parse(TD), [createPki(TD).root.cert.der]));
      // A root of the same name under another key: the signature does not verify, cold or warm.
      sameAsCold(cache, [leaf(), inter.cert.der], { at: NOW }, 'ERR_SIGNATURE_INVALID', set);
      set.remove(TrustDomain.parse(TD));
      sameAsCold(cache, [leaf(), inter.cert.der], { at: NOW }, 'ERR_BUNDLE_NOT_FOUND', set);
      assert.equal(cache.stats().renewals.hits, 1, 'no renewal answered after the change');
    });
  });

  describe('the chain memo at the edges of a window', () => {
    const pki = createPki(TD, { now: new Date(NOW.getTime() - HOUR) });
    const inter = pki.intermediate;
    const id = `spiffe://${TD}/memo`;

    it('answers at the last millisecond of an inclusive notAfter second as the full path does', () => {
      const end = inter.cert.notAfter.getTime();
      const chain = [makeLeaf(id, inter, { notAfter: new Date(end + HOUR) }).cert.der, inter.cert.der];
      const cache = new VerificationCache();
      for (let i = 0; i < 2; i++) verifyX509Svid(chain, pki.bundle, { at: NOW, cache });
      assert.equal(cache.stats().chains.size, 1);
      for (const at of [end, end + 999, end + 1000]) {
        const cold = verifyOutcome(chain, pki.bundle, { at: new Date(at), cache: null });
        assert.equal(
          verifyOutcome(chain, pki.bundle, { at: new Date(at), cache }),
          cold,
          `at notAfter + ${at - end} ms`,
        );
      }
    });
  });

  describe('the verdict kept on a connection', () => {
    const pki = createPki(TD);
    const id = `spiffe://${TD}/peer`;
    const svidOf = (chain: Uint8Array[], at?: Date): VerifyX509SvidResult =>
      verifyX509Svid(chain, pki.bundle, { cache: null, ...(at !== undefined ? { at } : {}) });
    const hop = (more: Partial<HopVerifyOptions> = {}): HopVerifyOptions => ({
      bundles: new BundleSet([pki.bundle]),
      authorize: authorizeAny(),
      cache: new VerificationCache(),
      ...more,
    });

    it('answers only for the same chain array, options object and bundle object, and asks the checker each time', () => {
      const s = issueSvid(pki, id);
      const chain = s.chain.map((c) => c.der);
      const answers: (boolean | Error)[] = [];
      const revocation: RevocationChecker = {
        isRevoked: () => {
          const a = answers.shift() ?? false;
          if (a instanceof Error) throw a;
          return a;
        },
      };
      const options = hop({ revocation });
      const kept = new KeptVerdict();
      const svid = svidOf(chain);
      kept.keep(options, chain, svid);
      assert.equal(kept.recall(options, chain), svid);
      assert.equal(kept.recall(options, [...chain]), undefined, 'another array with the same bytes');
      assert.equal(kept.recall({ ...options }, chain), undefined, 'another options object');
      answers.push(true);
      assert.equal(kept.recall(options, chain), undefined, 'a revoked peer');
      answers.push(new Error('feed down'));
      assert.equal(kept.recall(options, chain), undefined, 'a checker that cannot answer');
      assert.equal(kept.recall(options, chain), svid, 'asked again: not revoked');
      (options.bundles as BundleSet).replace(X509Bundle.fromDer(TrustDomain.parse(TD), [pki.root.cert.der]));
      assert.equal(
        kept.recall(options, chain),
        undefined,
        'a new bundle generation, even with the same root',
      );
    });

    it('keeps nothing without a chain memo, and nothing past the path’s validity', () => {
      const s = issueSvid(pki, id);
      const chain = s.chain.map((c) => c.der);
      const kept = new KeptVerdict();
      for (const cache of [null, new VerificationCache({ chains: false })]) {
        const options = hop({ cache });
        kept.keep(options, chain, svidOf(chain));
        assert.equal(
          kept.recall(options, chain),
          undefined,
          `kept with cache ${cache === null ? 'null' : 'without chains'}`,
        );
      }
      // A leaf that expired a minute ago, verified at an instant it was valid, under CAs valid since before it.
      const earlier = createPki(TD, { now: new Date(Date.now() - 3 * HOUR) });
      const old = issueSvid(earlier, id, { now: new Date(Date.now() - 2 * HOUR), ttlSeconds: 3600 - 60 });
      const oldChain = old.chain.map((c) => c.der);
      const options = hop({ bundles: new BundleSet([earlier.bundle]) });
      const svid = verifyX509Svid(oldChain, earlier.bundle, {
        cache: null,
        at: new Date(Date.now() - 90 * 60_000),
      });
      kept.keep(options, oldChain, svid);
      assert.equal(kept.recall(options, oldChain), undefined, 'an expired leaf recalled');
    });
  });

  describe('revoked serials held as bytes', () => {
    it('answers the same for a serial however it is spelled: string, bytes, leading zero bytes', () => {
      const t = new RevokedSerials();
      const far = Date.now() + HOUR;
      t.add('ab', far);
      t.addBytes(Uint8Array.of(0, 0, 0x01, 0x00), 0, 4, far);
      t.add('0', far);
      assert.ok(t.hasBytes(Uint8Array.of(0x00, 0xab), 0, 2));
      assert.ok(t.has('100'));
      assert.ok(t.hasBytes(Uint8Array.of(0x00), 0, 1), 'serial 0 as one zero byte');
      assert.ok(t.hasBytes(Uint8Array.of(0x00, 0x00), 0, 2), 'serial 0 as two zero bytes');
      assert.ok(!t.has('abab'));
      assert.ok(!t.hasBytes(Uint8Array.of(0xab, 0x00), 0, 2), 'trailing zero bytes are another integer');
      assert.ok(!t.hasBytes(Uint8Array.of(0x01), 0, 1));
      // The recent-answers map must not keep a "no" across an add.
      assert.ok(!t.has('cd'));
      t.addBytes(Uint8Array.of(0xcd), 0, 1, far);
      assert.ok(t.has('cd'), 'a serial added as bytes after a look-up by string');
      // Nor a "yes" across a sweep that dropped it.
      t.addBytes(Uint8Array.of(0xee), 0, 1, Date.now() - 1);
      assert.ok(t.has('ee'));
      t.sweep(Date.now());
      assert.ok(!t.has('ee'), 'an expired serial answered from the recent-answers map');
      assert.ok(t.has('ab') && t.has('cd') && t.has('100') && t.has('0'));
    });
  });

  describe('revocations applied as a packed page or as entries', () => {
    // Spellings a store or a feed may hold, and the serials a certificate's serialHex gives for them.
    const long = 'f'.repeat(255);
    const spellings: [string, string][] = [
      ['ab', 'ab'],
      ['0ab', 'ab'],
      ['000ab', 'ab'],
      ['abc', 'abc'],
      ['00', '0'],
      ['0', '0'],
      ['AB:CD', 'abcd'],
      ['0100', '100'],
      [long, long],
      [`0${long}`, long],
      [`00${long}`, long],
      ['not-hex', 'not-hex'],
    ];
    const near = ['a', 'abd', '1', '10', '1000', 'cd', `${long}f`, 'ff'.repeat(127)];

    it('answers every serial, and every other one, the same from a page as from entries', () => {
      const now = new Date();
      const expiresAt = new Date(now.getTime() + HOUR);
      const fromEntries = new RevocationCache({ checkIntervalMs: 0 });
      const fromPage = new RevocationCache({ checkIntervalMs: 0 });
      const records = spellings.map(([id], i) => ({
        sequence: i + 1,
        kind: 'certificate',
        id,
        reason: '',
        revokedAt: now,
        expiresAt,
      }));
      fromEntries.applyFullState(
        records.map((r) => ({ sequence: r.sequence, kind: 'certificate' as const, id: r.id, expiresAt })),
        records.length,
        now,
      );
      fromPage.applyPacked(
        packRevocations(records),
        { sequence: records.length, fullState: true, synced: true },
        now,
      );
      const ask = (c: RevocationCache, serialHex: string): boolean =>
        c.isRevoked({
          serialHex,
          certSha256Hex: '',
          spiffeId: `spiffe://${TD}/w`,
          delegationSessionIds: [],
        }) !== false;
      for (const [id, serial] of spellings) {
        assert.ok(ask(fromEntries, serial), `${id} as entries`);
        assert.ok(ask(fromPage, serial), `${id} from a page`);
      }
      for (const serial of near) {
        assert.equal(ask(fromPage, serial), ask(fromEntries, serial), serial);
        assert.ok(!ask(fromPage, serial), `${serial} revoked without being listed`);
      }
      fromEntries.close();
      fromPage.close();
    });
  });

  describe('CRL buffers lent to readers', () => {
    it('never returns a buffer to the pool while one reader still holds it, whatever the others do', () => {
      const pool = new CrlBufferPool();
      const buffer = new SharedArrayBuffer(64);
      const hold = new CrlBufferHold(buffer, pool);
      const first = hold.read()!;
      const second = hold.read()!;
      hold.unpublish();
      first();
      first(); // released twice: counts once
      assert.equal(pool.size, 0, 'given back while the second reader holds it');
      second();
      assert.equal(pool.size, 1);
      assert.equal(hold.read(), undefined, 'a reader lent a buffer already back in the pool');
      assert.deepEqual(pool.take(), [buffer]);
    });

    it('never returns a pinned or still published buffer', () => {
      const pool = new CrlBufferPool();
      const published = new CrlBufferHold(new SharedArrayBuffer(8), pool);
      published.read()!();
      assert.equal(pool.size, 0, 'the published CRL went back to the pool');
      const pinned = new CrlBufferHold(new SharedArrayBuffer(8), pool);
      pinned.pin();
      pinned.unpublish();
      assert.equal(pool.size, 0, 'a pinned CRL went back to the pool');
      assert.notEqual(pinned.read(), undefined);
    });
  });

  /**
   * Found by this review: a renewal's ParsedCertificate shared the kept template's byte fields (subjectDer,
   * issuerDer, every extension's value, the key identifiers), which JavaScript cannot freeze. A caller editing
   * the bytes of the leaf it was handed edited every later renewal of that leaf; a renewal kept by the
   * certificate cache was then verified by the full path from the edited fields while its signature, checked over
   * its own copy of the DER, still verified: a leaf signed with ['docs:read'] was accepted with ['admin:all'].
   * Each renewal now hands out views of its own copy (CertificateTemplate's #rebase).
   */
  describe('renewals hand out views of their own bytes', () => {
    // baseContext names the kit's trust domain as the issuing server's.
    const pki = createPki(KIT_TD);
    const id = `spiffe://${KIT_TD}/agent/solo`;
    const key = newKey();
    const context = baseContext({ sessionId: 'session-solo', scopes: ['docs:read'] });
    const leaf = (): Uint8Array => issueSvid(pki, id, { key, context }).cert.der;
    const chainOf = (der: Uint8Array): Uint8Array[] => [der, pki.intermediate.cert.der];

    it('a caller editing its renewed leaf’s bytes changes neither another renewal nor its verdict', () => {
      const cache = new VerificationCache({ chains: false });
      for (let i = 0; i < 2; i++) verifyX509Svid(chainOf(leaf()), pki.bundle, { cache });
      const mine = verifyX509Svid(chainOf(leaf()), pki.bundle, { cache });
      assert.equal(cache.stats().renewals.hits, 1);
      // A handler edits the bytes of the leaf it was handed: "docs:read" becomes "admin:all" in the context.
      const ext = mine.chain[0]!.extension(DEFAULT_AGENT_CONTEXT_OID)!.value;
      const at = Buffer.from(ext).indexOf('docs:read');
      assert.ok(at > 0);
      ext.set(Buffer.from('admin:all'), at);

      // Another workload connection presents another renewal of the same leaf, three times.
      const other = leaf();
      const cold = verifyX509Svid(chainOf(other), pki.bundle, { cache: null });
      const seen: VerifyX509SvidResult[] = [];
      for (let i = 0; i < 3; i++) seen.push(verifyX509Svid(chainOf(other), pki.bundle, { cache }));
      // The third is verified in full from the kept renewal object: it comes out with scopes ['admin:all'].
      assert.deepEqual(
        seen.map((r) => r.context?.scopes),
        seen.map(() => cold.context?.scopes),
      );
      const want = Buffer.from(cold.chain[0]!.extension(DEFAULT_AGENT_CONTEXT_OID)!.value);
      for (const r of seen) {
        assert.deepEqual(Buffer.from(r.chain[0]!.extension(DEFAULT_AGENT_CONTEXT_OID)!.value), want);
      }
    });

    it('with the default cache, the edit reaches another renewal’s verdict after a bundle refresh', () => {
      const cache = new VerificationCache();
      for (let i = 0; i < 2; i++) verifyX509Svid(chainOf(leaf()), pki.bundle, { cache });
      const mine = verifyX509Svid(chainOf(leaf()), pki.bundle, { cache });
      const ext = mine.chain[0]!.extension(DEFAULT_AGENT_CONTEXT_OID)!.value;
      ext.set(Buffer.from('admin:all'), Buffer.from(ext).indexOf('docs:read'));
      const other = leaf();
      for (let i = 0; i < 3; i++) verifyX509Svid(chainOf(other), pki.bundle, { cache });
      // A bundle source hands out a new object on every refresh, the same root in it: the memo and the
      // renewals miss, and the full path takes the kept renewal object from the certificate cache.
      const refreshed = X509Bundle.fromDer(TrustDomain.parse(KIT_TD), [pki.root.cert.der]);
      const after = verifyX509Svid(chainOf(other), refreshed, { cache });
      assert.deepEqual(after.context?.scopes, ['docs:read']);
    });
  });
});
