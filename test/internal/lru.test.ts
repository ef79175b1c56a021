import * as assert from 'node:assert/strict';
import { Lru } from '../../src/internal/lru';

/** The reference: an array, most recent last, every operation spelled out. */
class ReferenceLru {
  readonly order: [number, string][] = [];
  evicted = 0;
  constructor(private readonly max: number) {}
  private at(key: number): number {
    return this.order.findIndex(([k]) => k === key);
  }
  get(key: number): string | undefined {
    const i = this.at(key);
    if (i < 0) return undefined;
    const [entry] = this.order.splice(i, 1);
    this.order.push(entry!);
    return entry![1];
  }
  peek(key: number): string | undefined {
    const i = this.at(key);
    return i < 0 ? undefined : this.order[i]![1];
  }
  set(key: number, value: string): void {
    const i = this.at(key);
    if (i >= 0) this.order.splice(i, 1);
    this.order.push([key, value]);
    while (this.order.length > this.max) {
      this.order.shift();
      this.evicted++;
    }
  }
  delete(key: number): void {
    const i = this.at(key);
    if (i >= 0) this.order.splice(i, 1);
  }
  clear(): void {
    this.order.length = 0;
  }
}

/** A small deterministic generator, so a failure names a reproducible sequence. */
function generator(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

describe('Lru', () => {
  it('evicts the least recently used entry, a hit on the newest entry included', () => {
    const lru = new Lru<string, number>(2);
    lru.set(1, 'a');
    lru.set(2, 'b');
    assert.equal(lru.get(2), 'b'); // already the newest
    assert.equal(lru.get(1), 'a'); // 1 becomes the newest, 2 the oldest
    assert.equal(lru.get(1), 'a');
    lru.set(3, 'c');
    assert.equal(lru.peek(2), undefined);
    assert.equal(lru.peek(1), 'a');
    assert.equal(lru.evictions, 1);
  });

  it('replaces the newest entry in place and forgets it when deleted or cleared', () => {
    const lru = new Lru<string, number>(2);
    lru.set(1, 'a');
    lru.set(2, 'b');
    lru.set(2, 'B');
    assert.equal(lru.get(2), 'B');
    lru.delete(2);
    lru.set(3, 'c');
    assert.equal(lru.get(1), 'a');
    lru.set(4, 'd'); // 3 is the oldest now
    assert.equal(lru.peek(3), undefined);
    lru.clear();
    lru.set(5, 'e');
    assert.equal(lru.get(5), 'e');
    assert.equal(lru.size, 1);
  });

  it('keeps exact recency: any sequence of operations evicts what a reference list evicts', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const next = generator(seed);
      const max = 1 + (next() % 5);
      const lru = new Lru<string, number>(max);
      const ref = new ReferenceLru(max);
      for (let step = 0; step < 400; step++) {
        const op = next() % 10;
        const key = next() % 8;
        const where = `seed ${seed}, step ${step}`;
        if (op < 4) assert.equal(lru.get(key), ref.get(key), where);
        else if (op < 5) assert.equal(lru.peek(key), ref.peek(key), where);
        else if (op < 8) {
          lru.set(key, `${seed}:${step}`);
          ref.set(key, `${seed}:${step}`);
        } else if (op < 9) {
          lru.delete(key);
          ref.delete(key);
        } else if (next() % 20 === 0) {
          lru.clear();
          ref.clear();
        }
        assert.equal(lru.size, ref.order.length, where);
      }
      // The order of the survivors: new keys push them out one by one, oldest first, in both.
      for (let k = 100; k < 100 + max; k++) {
        lru.set(k, 'new');
        ref.set(k, 'new');
        for (let key = 0; key < 8; key++)
          assert.equal(lru.peek(key), ref.peek(key), `seed ${seed}, key ${key}`);
      }
      assert.equal(lru.evictions, ref.evicted, `seed ${seed}`);
    }
  });
});
