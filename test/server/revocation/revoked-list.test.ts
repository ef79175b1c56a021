/**
 * The CRL's revoked list kept in columns (revoked-list.ts) against the plainest model of what it must hold: a map
 * from serial to its earliest revocation and latest expiry, in the order serials were first listed (a serial
 * dropped at its expiry and revoked again goes last), encoded from scratch. Random deltas over a small pool of
 * serials, so that repeats within a delta, earlier and later revocations of listed serials, expiries and
 * re-revocations all happen, with the list's bytes compared after every step.
 */
import assert from 'node:assert/strict';
import { encodeRevokedEntries } from '../../../src/ca/crl';
import { RevokedList, type RevokedColumns } from '../../../src/server/revocation/revoked-list';
import { concatBytes } from '../../../src/x509/der';

class Model {
  private readonly map = new Map<string, { revokedAt: number; expiresAt: number }>();
  add(delta: RevokedColumns): void {
    for (let i = 0; i < delta.serials.length; i++) {
      const serial = delta.serials[i]!;
      const known = this.map.get(serial);
      if (known === undefined) {
        this.map.set(serial, { revokedAt: delta.revokedAtMs[i]!, expiresAt: delta.expiresAtMs[i]! });
      } else {
        known.revokedAt = Math.min(known.revokedAt, delta.revokedAtMs[i]!);
        known.expiresAt = Math.max(known.expiresAt, delta.expiresAtMs[i]!);
      }
    }
  }
  drop(now: number): void {
    for (const [serial, e] of this.map) if (e.expiresAt <= now) this.map.delete(serial);
  }
  get size(): number {
    return this.map.size;
  }
  der(): Uint8Array {
    return concatBytes(
      encodeRevokedEntries([...this.map].map(([serialHex, e]) => ({ serialHex, revokedAtMs: e.revokedAt }))),
    );
  }
}

/** xorshift32: the same sequence on every run. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

describe('RevokedList (columns) against a model', () => {
  for (const seed of [1, 7, 42, 1234]) {
    it(`holds what the model holds, byte for byte, through random deltas and expiries (seed ${seed})`, () => {
      const rnd = prng(seed);
      const list = new RevokedList();
      const model = new Model();
      const pool = Array.from({ length: 400 }, (_, i) =>
        // Serials of several lengths, some with a high first bit (a sign byte) and odd digit counts.
        (i * 2654435761 + seed).toString(16).padStart(1 + (i % 31), i % 3 === 0 ? 'f' : '0'),
      );
      let now = 1_700_000_000_000;
      const kept: { view: Uint8Array; copy: Buffer }[] = [];
      for (let step = 0; step < 120; step++) {
        now += Math.floor(rnd() * 60_000);
        const n = Math.floor(rnd() * 40);
        const delta = {
          serials: [] as string[],
          revokedAtMs: new Float64Array(n),
          expiresAtMs: new Float64Array(n),
        };
        for (let i = 0; i < n; i++) {
          delta.serials.push(pool[Math.floor(rnd() * pool.length)]!);
          // Revocations a little in the past or now; expiries from already passed to an hour ahead.
          delta.revokedAtMs[i] = now - Math.floor(rnd() * 600_000);
          delta.expiresAtMs[i] = now + Math.floor((rnd() - 0.2) * 3_600_000);
        }
        list.addAll(delta);
        model.add(delta);
        if (rnd() < 0.3) {
          list.dropExpired(new Date(now));
          model.drop(now);
        }
        assert.equal(list.size, model.size, `size at step ${step}`);
        const der = list.entriesDer();
        assert.ok(Buffer.from(der).equals(Buffer.from(model.der())), `content at step ${step}`);
        kept.push({ view: der, copy: Buffer.from(der) });
      }
      // A list handed out earlier (being signed, or sent) never changes under its holder.
      for (const k of kept) assert.ok(Buffer.from(k.view).equals(k.copy), 'an earlier list changed');
    });
  }

  it('clear empties it; a full read after it lists in the new order', () => {
    const list = new RevokedList();
    const cols = (serials: string[], at: number): RevokedColumns => ({
      serials,
      revokedAtMs: serials.map(() => at),
      expiresAtMs: serials.map(() => at + 3_600_000),
    });
    list.addAll(cols(['a1', 'b2', 'c3'], 1_700_000_000_000));
    list.clear();
    assert.equal(list.size, 0);
    assert.equal(list.entriesDer().length, 0);
    list.addAll(cols(['c3', 'a1'], 1_700_000_100_000));
    const model = new Model();
    model.add(cols(['c3', 'a1'], 1_700_000_100_000));
    assert.ok(Buffer.from(list.entriesDer()).equals(Buffer.from(model.der())));
  });
});
