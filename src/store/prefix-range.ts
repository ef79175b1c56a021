/**
 * The range of strings that start with `prefix`, in code point order (SQLite's BINARY order on UTF-8, and
 * PostgreSQL's "C" collation): [prefix, end). `end` is the prefix with its last code point incremented (code
 * points at the maximum dropped first); undefined when there is none (every string from the prefix on).
 */
export function prefixRange(prefix: string): { end?: string } {
  const cps = [...prefix].map((c) => c.codePointAt(0)!);
  while (cps.length > 0) {
    let last = cps.pop()!;
    if (last === 0x10ffff) continue;
    last += 1;
    // No string holds a lone surrogate: the next code point after U+D7FF is U+E000.
    if (last >= 0xd800 && last <= 0xdfff) last = 0xe000;
    return { end: String.fromCodePoint(...cps, last) };
  }
  return {};
}
