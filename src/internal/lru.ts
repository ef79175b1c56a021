/**
 * A bounded least-recently-used map. A Map iterates in insertion order, so re-inserting on every hit
 * keeps the oldest entry first and eviction is O(1). Bounded so that a peer presenting endless
 * distinct chains cannot grow a verifier's memory.
 */
export class Lru<V, K = string> {
  private readonly entries = new Map<K, V>();
  private evicted = 0;
  /**
   * The key at the recent end of `entries` (the last one set or moved), or undefined when unknown. A hit on it
   * needs no move: it is already the most recent. A verifier asks each of its caches for the same entry on
   * every new leaf (the intermediate, its edge to the root, the context), so the Map delete and insert that
   * exact recency costs is skipped where it would change nothing, and recency stays exact.
   */
  private newest: K | undefined;
  private hasNewest = false;

  constructor(readonly maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${maxEntries}`);
    }
  }

  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    if (this.hasNewest && this.newest === key) return value;
    this.entries.delete(key);
    this.entries.set(key, value);
    this.newest = key;
    this.hasNewest = true;
    return value;
  }

  /** The value without counting as a use (no move to the recent end). */
  peek(key: K): V | undefined {
    return this.entries.get(key);
  }

  set(key: K, value: V): void {
    // Setting the newest key again replaces its value in place: it stays at the recent end.
    if (!(this.hasNewest && this.newest === key)) this.entries.delete(key);
    this.entries.set(key, value);
    this.newest = key;
    this.hasNewest = true;
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
      this.evicted++;
    }
  }

  delete(key: K): void {
    this.entries.delete(key);
    if (this.hasNewest && this.newest === key) this.forgetNewest();
  }

  get size(): number {
    return this.entries.size;
  }

  get evictions(): number {
    return this.evicted;
  }

  clear(): void {
    this.entries.clear();
    this.forgetNewest();
  }

  private forgetNewest(): void {
    this.newest = undefined;
    this.hasNewest = false;
  }
}
