import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AgentContextError } from '../../../src/errors';
import { decodeAgentContext, encodeAgentContext } from '../../../src/x509/agent-context';
import { mutate, mutation } from '../mutations';
import { agentContext } from './arbitraries';
import { propertyRuns } from '../../support/property';

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

describe('agent-context codec: properties', () => {
  it('every valid context round-trips exactly, and its encoding is stable', () => {
    fc.assert(
      fc.property(agentContext, (ctx) => {
        const der = encodeAgentContext(ctx);
        const back = decodeAgentContext(der);
        assert.deepStrictEqual(back, ctx);
        assert.deepStrictEqual(encodeAgentContext(back), der);
      }),
      { numRuns: propertyRuns(300) },
    );
  });

  it('random bytes decode to a canonical context or throw AgentContextError, nothing else', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), decodeIsTotal), { numRuns: propertyRuns(2000) });
  });

  it('random bytes behind a valid SEQUENCE + version 1 header reach the schema parser and still fail typed', () => {
    const framed = fc.uint8Array({ maxLength: 120 }).map((body) => {
      const content = [0x02, 0x01, 0x01, ...body];
      return Uint8Array.from([0x30, 0x81, content.length, ...content]);
    });
    fc.assert(fc.property(framed, decodeIsTotal), { numRuns: propertyRuns(2000) });
  });

  it('mutations of a valid encoding decode to a canonical context or throw AgentContextError', () => {
    fc.assert(
      fc.property(agentContext, fc.array(mutation, { minLength: 1, maxLength: 4 }), (ctx, mutations) => {
        decodeIsTotal(mutations.reduce(mutate, encodeAgentContext(ctx)));
      }),
      { numRuns: propertyRuns(1000) },
    );
  });
});
