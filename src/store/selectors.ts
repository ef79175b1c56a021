import type { Selector } from './types';

/** Sorted by type then value, duplicates removed: the order the store keeps and returns. */
export function canonicalSelectors(selectors: readonly Selector[]): Selector[] {
  const seen = new Set<string>();
  const out: Selector[] = [];
  for (const s of selectors) {
    const k = selectorKey(s);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ type: s.type, value: s.value });
  }
  return out.sort((a, b) => compare(a.type, b.type) || compare(a.value, b.value));
}

/**
 * One string that is equal for two selector lists exactly when they are the same set. JSON of the pairs is
 * injective for any strings, so the key stays correct even for a type that contains ":".
 */
export function selectorSetKey(selectors: readonly Selector[]): string {
  return JSON.stringify(canonicalSelectors(selectors).map((s) => [s.type, s.value]));
}

function selectorKey(s: Selector): string {
  return JSON.stringify([s.type, s.value]);
}

// Code-unit order, not locale order: the same on every machine and in every store.
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
