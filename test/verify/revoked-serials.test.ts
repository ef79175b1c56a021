/**
 * RevokedSerials, the table of serials by their bytes behind RevocationCache: one serial whatever its spelling
 * (case, leading zeros), never a serial it was not given, ids that are not hex kept apart, expiries dropped, and
 * a look-up answered from its memo never outliving a change. Checked against a plain Set of normalised serials
 * over random operations, through the table's growth.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { normaliseSerial } from '../../src/verify/revocation';
import { RevocationCache } from '../../src/verify/revocation-cache';
import { RevokedSerials } from '../../src/verify/revoked-serials';
import { packRevocations } from '../../src/internal/revocation-page';

/** A deterministic generator, so a failure repeats. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('RevokedSerials', () => {
  it('holds one serial whatever its case or leading zeros, and no other', () => {
    const t = new RevokedSerials();
    assert.equal(t.add(normaliseSerial('00AB'), 1), true);
    assert.equal(t.add(normaliseSerial('ab'), 1), false, 'the same serial');
    assert.equal(t.has('ab'), true);
    assert.equal(t.has('0ab'), true, 'a leading zero digit is the same integer');
    assert.equal(t.has('ab0'), false);
    assert.equal(t.has('a'), false);
    assert.equal(t.has('abab'), false);
    assert.equal(t.add('0', 1), true);
    assert.equal(t.has('0'), true);
    assert.equal(t.has('00'), true);
    assert.equal(t.has('1'), false);
    assert.equal(t.size, 2);
  });

  it('keeps ids that are not hex apart, and never confuses them with a serial', () => {
    const t = new RevokedSerials();
    assert.equal(t.add('not-hex', 1), true);
    assert.equal(t.add('not-hex', 1), false);
    assert.equal(t.has('not-hex'), true);
    assert.equal(t.has('ab'), false);
    assert.equal(t.add('ab', 1), true);
    assert.equal(t.has('not-he'), false);
    assert.equal(t.size, 2);
  });

  it('a serial looked up and found missing is found once it is added, and gone once it expired', () => {
    const t = new RevokedSerials();
    t.add('1234', 100);
    // Looked up first (the memo keeps "not held"): the add must be seen by the next look-up.
    assert.equal(t.has('abcdef'), false);
    assert.equal(t.add('abcdef', 200), true);
    assert.equal(t.has('abcdef'), true);
    assert.equal(t.has('1234'), true);
    t.sweep(150);
    assert.equal(t.has('1234'), false, 'expired before 150');
    assert.equal(t.has('abcdef'), true);
    assert.equal(t.size, 1);
    // After a sweep the table is rebuilt: adds and look-ups still agree.
    assert.equal(t.add('1234', 300), true);
    assert.equal(t.has('1234'), true);
    t.sweep(1000);
    assert.equal(t.size, 0);
    assert.equal(t.has('abcdef'), false);
  });

  it('agrees with a Set of normalised serials over random adds, look-ups and sweeps, through growth', () => {
    for (const seed of [1, 2, 3]) {
      const r = rng(seed);
      const t = new RevokedSerials();
      const model = new Map<string, number>();
      const pool: string[] = [];
      for (let i = 0; i < 6000; i++) {
        const digits = 1 + Math.floor(r() * 40);
        let s = '';
        for (let d = 0; d < digits; d++) s += '0123456789abcdefABCDEF'[Math.floor(r() * 22)];
        pool.push(s);
      }
      let now = 0;
      for (let step = 0; step < 8000; step++) {
        const s = pool[Math.floor(r() * pool.length)]!;
        const n = normaliseSerial(s);
        const op = r();
        // Half the adds and look-ups by the spelling's bytes (as a packed page gives them), leading zeros kept.
        const bytes = r() < 0.5 ? Buffer.from(s.length % 2 === 1 ? `0${s}` : s, 'hex') : undefined;
        if (op < 0.5) {
          const expiresAt = now + Math.floor(r() * 5000);
          const added =
            bytes === undefined ? t.add(n, expiresAt) : t.addBytes(bytes, 0, bytes.length, expiresAt);
          assert.equal(added, !model.has(n), `add ${s} (seed ${seed}, step ${step})`);
          if (!model.has(n)) model.set(n, expiresAt);
        } else if (op < 0.998) {
          const held = bytes === undefined ? t.has(n) : t.hasBytes(bytes, 0, bytes.length);
          assert.equal(held, model.has(n), `has ${s} (seed ${seed}, step ${step})`);
        } else {
          now += 1000;
          t.sweep(now);
          for (const [k, e] of model) if (e < now) model.delete(k);
        }
        assert.equal(t.size, model.size);
      }
    }
  });

  it('holds a large set by bytes: every serial found, none of another set', () => {
    const t = new RevokedSerials();
    const held = Array.from({ length: 20_000 }, () => randomBytes(16).toString('hex').replace(/^0+/, ''));
    for (const s of held) t.add(s, 1);
    for (const s of held) assert.equal(t.has(s), true);
    for (let i = 0; i < 20_000; i++) {
      const other = `f${randomBytes(16).toString('hex')}`;
      assert.equal(t.has(other), false);
    }
  });
});

describe('RevocationCache over RevokedSerials', () => {
  it('a packed page read by its bytes answers as the same revocations applied as strings', () => {
    for (const seed of [4, 5]) {
      const r = rng(seed);
      const spell = (): string => {
        let s = '';
        const digits = 1 + Math.floor(r() * 34);
        for (let d = 0; d < digits; d++) s += '0123456789abcdef'[Math.floor(r() * (d === 0 ? 3 : 16))];
        return s;
      };
      const expiresAt = Date.now() + 3600_000;
      const ids = Array.from({ length: 3000 }, spell);
      const records = ids.map((id, i) => ({
        sequence: i + 1,
        kind: 'certificate' as const,
        id,
        reason: '',
        revokedAt: 1,
        expiresAt,
      }));
      const packed = new RevocationCache({ checkIntervalMs: 0 });
      const plain = new RevocationCache({ checkIntervalMs: 0 });
      const heard: string[] = [];
      const heardPlain: string[] = [];
      packed.onChange((entries) => heard.push(...entries.map((e) => e.id)));
      plain.onChange((entries) => heardPlain.push(...entries.map((e) => e.id)));
      // Two snapshots, the second over a live state (its "already held" probe by bytes), then an increment.
      for (const [from, to, fullState] of [
        [0, 1000, true],
        [1000, 2000, true],
        [2000, 3000, false],
      ] as const) {
        const slice = records.slice(from, to);
        const update = { sequence: to, fullState, synced: true };
        packed.applyPacked(packRevocations(slice), update);
        plain.apply({ ...update, entries: slice.map((e) => ({ ...e, expiresAt: new Date(expiresAt) })) });
      }
      assert.equal(packed.size, plain.size);
      const ask = (serialHex: string, c: RevocationCache): unknown =>
        c.isRevoked({
          serialHex,
          certSha256Hex: '00',
          spiffeId: 'spiffe://example.org/a',
          delegationSessionIds: [],
        });
      for (const id of [...ids, ...Array.from({ length: 3000 }, spell)]) {
        for (const q of [id, id.toUpperCase(), `00${id}`]) assert.deepEqual(ask(q, packed), ask(q, plain), q);
      }
      // Listeners hear each id as the page spelled it, when it was new to what a look-up consults.
      assert.ok(heard.length > 0);
      assert.deepEqual(heard, heardPlain);
      packed.close();
      plain.close();
    }
  });

  it('a serial asked about before it is revoked is revoked once a page lists it', () => {
    const cache = new RevocationCache({ checkIntervalMs: 0 });
    const q = {
      serialHex: 'ABC',
      certSha256Hex: '00',
      spiffeId: 'spiffe://example.org/a',
      delegationSessionIds: [],
    };
    const page = (sequence: number, id: string): Buffer =>
      packRevocations([
        { sequence, kind: 'certificate', id, reason: '', revokedAt: 1, expiresAt: Date.now() + 3600_000 },
      ]);
    cache.applyPacked(page(1, '1'), { sequence: 1, fullState: true, synced: true });
    assert.equal(cache.isRevoked(q), false);
    cache.applyPacked(page(2, '0abc'), { sequence: 2, synced: true });
    assert.deepEqual(cache.isRevoked(q), { kind: 'certificate', id: 'abc' });
    // A new snapshot without it replaces the state once complete; asked meanwhile, the old state still answers.
    cache.applyPacked(page(3, '2'), { sequence: 3, fullState: true, synced: false });
    assert.deepEqual(cache.isRevoked(q), { kind: 'certificate', id: 'abc' });
    cache.applyPacked(packRevocations([]), { sequence: 3, synced: true });
    assert.equal(cache.isRevoked(q), false);
    assert.equal(cache.size, 1);
    cache.close();
  });
});
