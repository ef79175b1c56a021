/**
 * Review of the ninth round's fast paths (issue 15): renewals with a new key recognised from a kept leaf, the
 * verdict createHopTlsServer keeps per peer leaf across connections, the CSR checked in the signing request that
 * signs the renewal, and the revocation state read as SQLite records with a chunk read ahead. Each test gives a
 * fast path hostile input and holds its answer to the one the full (slow) path gives: the same refusal, or the
 * same acceptance with the same fields handed to the caller.
 */
import assert from 'node:assert/strict';
import { ECDH, generateKeyPairSync } from 'node:crypto';
import { VerificationCache, verifyX509Svid } from '../../src/verify';
import { subjectKeyIdOf } from '../../src/x509/der-extensions';
import { issueX509Svid } from '../../src/x509/profiles';
import {
  asIssuer,
  createPki,
  HOUR,
  makeCertDer,
  newKey,
  NOW,
  plannerChain,
  renewHop,
  type CertSpec,
  type KeyPair,
} from '../support/pki';
import { resigned, tbsOffsets } from '../support/resign';
import { verdictOf } from '../support/verdict';

const TD = 'ninth.example';

/** A subjectKeyIdentifier extension as CertSpec's `extra` takes it. */
const keyIdExtension = (keyId: Uint8Array): { oid: string; critical: boolean; value: Uint8Array } => ({
  oid: '2.5.29.14',
  critical: false,
  value: Uint8Array.from([0x04, keyId.length, ...keyId]),
});

const spkiOf = (key: KeyPair): Uint8Array =>
  new Uint8Array(key.publicKey.export({ type: 'spki', format: 'der' }));

/** The P-256 SubjectPublicKeyInfo of `key` with its point compressed (SEC 1 §2.3.3): the same key, other bytes. */
function compressedSpki(key: KeyPair): Uint8Array {
  const jwk = key.publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([
    Buffer.of(4),
    Buffer.from(jwk.x!, 'base64url'),
    Buffer.from(jwk.y!, 'base64url'),
  ]);
  const compressed = ECDH.convertKey(point, 'prime256v1', undefined, undefined, 'compressed') as Buffer;
  const algorithm = Buffer.from('301306072a8648ce3d020106082a8648ce3d030107', 'hex');
  const bits = Buffer.concat([Buffer.of(0x03, compressed.length + 1, 0x00), compressed]);
  return Uint8Array.from([0x30, algorithm.length + bits.length, ...algorithm, ...bits]);
}

/** A P-256 key's SubjectPublicKeyInfo with the curve's parameters written out (RFC 5480 forbids them). */
function explicitCurveSpki(): Uint8Array {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256', paramEncoding: 'explicit' });
  return new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
}

describe('review: the ninth round’s fast paths answer as the full path does', () => {
  describe('renewals with a new key, recognised from a kept leaf', () => {
    /** Issued at the clock's time by the production profile: the identifier is subjectKeyIdOf the key. */
    const live = createPki(TD);
    const id = `spiffe://${TD}/rotating`;
    const issued = (key: KeyPair = newKey()): Uint8Array =>
      issueX509Svid({
        spiffeId: id,
        publicKey: key.publicKey,
        issuer: asIssuer(live.intermediate),
        ttlSeconds: 600,
      }).cert.der;
    /** A cache keeping a leaf of `make` (two leaves, two keys: the second is kept). */
    const primedWith = (make: () => Uint8Array, at?: Date, p = live): VerificationCache => {
      const cache = new VerificationCache({ chains: false });
      for (let i = 0; i < 2; i++) verifyX509Svid([make(), p.intermediate.cert.der], p.bundle, { cache, at });
      assert.equal(cache.stats().renewals.size, 1, 'the second leaf with these extensions is kept');
      return cache;
    };

    it('answers a CA-signed leaf one tbsCertificate byte away from a new-key renewal as the full path does', function () {
      this.timeout(120_000);
      const base = issued(newKey());
      const offsets = tbsOffsets(base);
      const inside = (i: number, [from, to]: [number, number]): boolean => i >= from && i < to;
      let hits = 0;
      let variants = 0;
      let accepted = 0;
      for (let i = 0; i < offsets.length; i++) {
        const der = resigned(
          base,
          (tbs) => {
            tbs[i] = tbs[i]! ^ 0x01;
            return tbs;
          },
          live.intermediate.key.privateKey,
        );
        variants++;
        const chain = [der, live.intermediate.cert.der];
        const cold = verdictOf(chain, live.bundle, { cache: null });
        const cache = primedWith(() => issued());
        const warm = verdictOf(chain, live.bundle, { cache });
        assert.equal(warm, cold, `tbsCertificate byte ${i} flipped`);
        if (cold.startsWith('accepted')) accepted++;
        const hit = cache.stats().renewals.hits;
        hits += hit;
        if (hit > 0) {
          assert.ok(
            inside(i, offsets.serial) || inside(i, offsets.validity),
            `byte ${i} (outside the serial and the validity) flipped, taken for a renewal`,
          );
        }
      }
      assert.ok(variants > 300, `${variants} variants`);
      assert.ok(accepted > 0 && hits > 0, `accepted ${accepted}, renewals ${hits}: the fast path was met`);
    });

    it('answers new keys of other curves and types, and refused keys, as the full path does', function () {
      this.timeout(60_000);
      const pki = createPki(TD, { now: new Date(NOW.getTime() - HOUR) });
      const inter = pki.intermediate;
      const marker = { oid: '1.3.6.1.4.1.55555.9', critical: false, value: Uint8Array.of(0x05, 0x00) };
      /** A leaf with `spki`, its identifier subjectKeyIdOf `keyIdOf` (default the same SPKI) where Lanyard puts it. */
      const built = (key: KeyPair, spki: Uint8Array, extra?: CertSpec['extra']): Uint8Array =>
        makeCertDer({
          cn: id,
          issuer: inter,
          basicConstraints: { ca: false },
          keyUsage: ['digitalSignature'],
          eku: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'],
          uris: [id],
          notAfter: new Date(NOW.getTime() + HOUR),
          key,
          spkiDer: spki,
          subjectKeyId: false,
          extra: extra ?? [keyIdExtension(subjectKeyIdOf(spki)), marker],
        }).der;
      const p521 = newKey('ec-p521');
      const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
      const newKeyLeaf = (): Uint8Array => {
        const k = newKey();
        return built(k, spkiOf(k));
      };
      /** What a cold verification says, and whether the renewal path may answer (only for the kept bytes). */
      const cases: [string, () => Uint8Array, string, 'hit' | 'miss'][] = [
        ['a P-384 key', () => built(newKey(), spkiOf(newKey('ec-p384'))), 'accepted', 'hit'],
        ['an Ed25519 key', () => built(newKey(), spkiOf(newKey('ed25519'))), 'accepted', 'hit'],
        [
          'a P-256 key, its point compressed, the identifier of those bytes',
          () => {
            const k = newKey();
            return built(k, compressedSpki(k));
          },
          'accepted',
          'hit',
        ],
        [
          'a P-256 key, its point compressed, the identifier of its uncompressed encoding',
          () => {
            const k = newKey();
            return built(k, compressedSpki(k), [keyIdExtension(subjectKeyIdOf(spkiOf(k))), marker]);
          },
          'accepted',
          'miss',
        ],
        [
          'the key’s whole SHA-256 as its identifier',
          () => built(newKey(), spkiOf(newKey()), [keyIdExtension(new Uint8Array(32).fill(1)), marker]),
          'accepted',
          'miss',
        ],
        [
          'explicit curve parameters',
          () => built(newKey(), explicitCurveSpki()),
          'ERR_UNSUPPORTED_KEY',
          'miss',
        ],
        ['a P-521 key', () => built(p521, spkiOf(p521)), 'ERR_UNSUPPORTED_KEY', 'miss'],
        ['a 1024-bit RSA key', () => built(newKey(), spkiOf(rsa1024)), 'ERR_UNSUPPORTED_KEY', 'miss'],
        [
          'two identifiers, both the key’s',
          () => {
            const k = newKey();
            const ski = keyIdExtension(subjectKeyIdOf(spkiOf(k)));
            return built(k, spkiOf(k), [ski, ski, marker]);
          },
          'ERR_MALFORMED_CERTIFICATE',
          'miss',
        ],
      ];
      for (const [what, make, outcome, path] of cases) {
        const cache = primedWith(newKeyLeaf, NOW, pki);
        const chain = [make(), inter.cert.der];
        const cold = verdictOf(chain, pki.bundle, { at: NOW, cache: null });
        assert.equal(cold.split(' ')[0], outcome, `${what}: the cold verdict`);
        assert.equal(verdictOf(chain, pki.bundle, { at: NOW, cache }), cold, what);
        assert.equal(
          cache.stats().renewals.hits,
          path === 'hit' ? 1 : 0,
          `${what}: answered by the renewal path`,
        );
      }
    });

    it('refuses a delegated leaf renewed with a new key, however often its twin with the bound key passed', () => {
      const pki = createPki(TD);
      const hop = plannerChain(pki)[2]!;
      const cache = new VerificationCache({ chains: false });
      for (let i = 0; i < 2; i++)
        verifyX509Svid([renewHop(pki, hop), pki.intermediate.cert.der], pki.bundle, { cache });
      assert.equal(cache.stats().renewals.size, 1);
      // The same context (whose last link names the bound key), another key: every byte but the key's and its
      // identifier's is the kept leaf's.
      for (const key of [newKey(), newKey('ec-p384'), newKey('ed25519')]) {
        const chain = [renewHop(pki, hop, { key }), pki.intermediate.cert.der];
        const cold = verdictOf(chain, pki.bundle, { cache: null });
        assert.equal(cold, 'ERR_DELEGATION_LINK_INVALID');
        assert.equal(verdictOf(chain, pki.bundle, { cache }), cold);
      }
      assert.equal(cache.stats().renewals.hits, 0);
      // The bound key is still a renewal, and the kept leaf's key remembered is not replaced by a refused one.
      const chain = [renewHop(pki, hop), pki.intermediate.cert.der];
      assert.equal(verdictOf(chain, pki.bundle, { cache }), verdictOf(chain, pki.bundle, { cache: null }));
      assert.equal(cache.stats().renewals.hits, 1);
    });
  });
});
