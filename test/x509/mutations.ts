import fc from 'fast-check';

/**
 * Byte-level mutations of a valid encoding, for properties that a decoder given anything near a valid input
 * either returns something sound or throws its typed error (certificate parser, agent-context codec, CSR parser).
 */

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: Uint8Array };

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  // Trailing bytes after a complete element: what a lenient BER reader silently ignores.
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
);

export function mutate(der: Uint8Array, m: Mutation): Uint8Array {
  const out = [...der];
  if (m.kind === 'append') return Uint8Array.from([...out, ...m.bytes]);
  // Inserting into an empty buffer is the only mutation that means anything there;
  // every index-based one would otherwise compute `at % 0`.
  if (out.length === 0) return m.kind === 'insert' ? Uint8Array.from(m.bytes) : der;
  const i = m.at % out.length;
  switch (m.kind) {
    case 'flip':
      out[i] = out[i]! ^ (1 << m.bit);
      break;
    case 'set':
      out[i] = m.value;
      break;
    case 'insert':
      out.splice(i, 0, ...m.bytes);
      break;
    case 'delete':
      out.splice(i, m.count);
      break;
    case 'truncate':
      out.length = i;
      break;
  }
  return Uint8Array.from(out);
}
