/**
 * Hints (32-bit numbers) of things verified once and not kept yet: a leaf (VerificationCache.rememberLeaf) or
 * a chain (VerifiedChainMemo.seenBefore). Every new leaf notes one and, once the table is full, displaces one,
 * so this is a direct-mapped table of numbers rather than an Lru: no Map insertion, no eviction walk, nothing
 * allocated per note.
 *
 * Only an admission rule reads it, and both of its errors are harmless: a hint displaced by another with the
 * same slot is forgotten (its leaf or chain is kept one verification later), and two things with the same hint
 * admit each other one verification early (what is kept is still found by comparing every byte). Twice as many
 * slots as entries, so that a hint noted among `maxEntries` newer ones is usually still there.
 */
export class Sightings {
  private readonly slots: Uint32Array;
  private readonly mask: number;

  constructor(maxEntries: number) {
    let size = 2;
    while (size < 2 * maxEntries && size < 1 << 20) size *= 2;
    this.slots = new Uint32Array(size);
    this.mask = size - 1;
  }

  has(hint: number): boolean {
    return this.slots[hint & this.mask] === stored(hint);
  }

  note(hint: number): void {
    this.slots[hint & this.mask] = stored(hint);
  }

  forget(hint: number): void {
    if (this.has(hint)) this.slots[hint & this.mask] = 0;
  }

  clear(): void {
    this.slots.fill(0);
  }
}

/** 0 marks an empty slot, so the hint 0 is stored as 1 (the two admit each other early: a hint, see above). */
function stored(hint: number): number {
  return hint >>> 0 === 0 ? 1 : hint >>> 0;
}
