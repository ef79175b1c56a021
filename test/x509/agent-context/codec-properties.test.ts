import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AgentContextError } from '../../../src/errors';
import { decodeAgentContext, encodeAgentContext } from '../../../src/x509/agent-context';
import { agentContext } from './arbitraries';

/**
 * What the decoder may do with any input: return a context whose encoding is exactly the input (so nothing
 * non-canonical is ever accepted), or throw AgentContextError. Anything else fails the property.
 */
function decodeIsTotal(input: Uint8Array): void {
  let decoded;
  try {
    decoded = decodeAgentContext(input);
  } catch (e) {
    if (e instanceof AgentContextError) return;
    throw e;
  }
  assert.deepStrictEqual(encodeAgentContext(decoded), Uint8Array.from(input));
}

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'truncate'; at: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

function mutate(der: Uint8Array, m: Mutation): Uint8Array {
  const out = [...der];
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

describe('agent-context codec: properties', () => {
  it('every valid context round-trips exactly, and its encoding is stable', () => {
    fc.assert(
      fc.property(agentContext, (ctx) => {
        const der = encodeAgentContext(ctx);
        const back = decodeAgentContext(der);
        assert.deepStrictEqual(back, ctx);
        assert.deepStrictEqual(encodeAgentContext(back), der);
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes decode to a canonical context or throw AgentContextError, nothing else', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), decodeIsTotal), { numRuns: 2000 });
  });

  it('random bytes behind a valid SEQUENCE + version 1 header reach the schema parser and still fail typed', () => {
    const framed = fc.uint8Array({ maxLength: 120 }).map((body) => {
      const content = [0x02, 0x01, 0x01, ...body];
      return Uint8Array.from([0x30, 0x81, content.length, ...content]);
    });
    fc.assert(fc.property(framed, decodeIsTotal), { numRuns: 2000 });
  });

  it('mutations of a valid encoding decode to a canonical context or throw AgentContextError', () => {
    fc.assert(
      fc.property(agentContext, fc.array(mutation, { minLength: 1, maxLength: 4 }), (ctx, mutations) => {
        decodeIsTotal(mutations.reduce(mutate, encodeAgentContext(ctx)));
      }),
      { numRuns: 1000 },
    );
  });
});
