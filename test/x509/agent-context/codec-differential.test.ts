import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AgentContextError } from '../../../src/errors';
import {
  decodeAgentContext,
  decodeDelegationBinding,
  encodeAgentContext,
  encodeDelegationBinding,
  encodeDelegationLink,
} from '../../../src/x509/agent-context';
import { mutate, mutation } from '../mutations';
import { agentContext, binding } from './arbitraries';
import { contextWithLinks, sampleContext } from './fixtures';
import { referenceDecode, referenceDecodeBinding, referenceEncode } from './reference-codec';
import { AsnSerializer } from '@peculiar/asn1-schema';
import { bindingToAsn, linkToAsn } from '../../../src/x509/agent-context/mapping';
import { propertyRuns } from '../../support/property';

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

function attempt(decode: (der: Uint8Array) => unknown, der: Uint8Array): Outcome {
  try {
    return { ok: true, value: decode(der) };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * The direct DER decoder against the asn1-schema reference on the same bytes: the same context from both, or
 * a rejection from both, the new one always a typed AgentContextError. The reference re-encodes what it parsed
 * and demands the input back, so it never accepts a non-canonical encoding either: no case was found (or is
 * expected) where it accepts and the strict reader refuses. Error codes may differ where an input breaks two
 * rules at once (the reference parses the whole structure before checking a binding's version, the new reader
 * stops at the first problem), which is why only acceptance is compared.
 */
function sameVerdict(
  der: Uint8Array,
  decode: (der: Uint8Array) => unknown = decodeAgentContext,
  reference: (der: Uint8Array) => unknown = referenceDecode,
): void {
  const mine = attempt(decode, der);
  const ref = attempt(reference, der);
  if (!mine.ok) {
    assert.ok(mine.error instanceof AgentContextError, `untyped rejection: ${String(mine.error)}`);
  }
  assert.equal(mine.ok, ref.ok, `decoders disagree: new ${verdict(mine)}, reference ${verdict(ref)}`);
  if (mine.ok && ref.ok) assert.deepStrictEqual(mine.value, ref.value);
}

function verdict(o: Outcome): string {
  return o.ok ? 'accepts' : `refuses (${o.error instanceof Error ? o.error.message : String(o.error)})`;
}

describe('agent-context codec: direct DER against the asn1-schema reference', () => {
  it('encodes every valid context to the same bytes as the schema classes', () => {
    fc.assert(
      fc.property(agentContext, (ctx) => {
        assert.deepStrictEqual(encodeAgentContext(ctx), referenceEncode(ctx));
      }),
      { numRuns: propertyRuns(500) },
    );
  });

  it('encodes bindings and links to the same bytes as the schema classes', () => {
    fc.assert(
      fc.property(binding, (b) => {
        const der = encodeDelegationBinding(b);
        assert.deepStrictEqual(der, new Uint8Array(AsnSerializer.serialize(bindingToAsn(b))));
        assert.deepStrictEqual(decodeDelegationBinding(der), b);
      }),
      { numRuns: propertyRuns(300) },
    );
    fc.assert(
      fc.property(agentContext, (ctx) => {
        for (const link of ctx.delegation) {
          assert.deepStrictEqual(
            encodeDelegationLink(link),
            new Uint8Array(AsnSerializer.serialize(linkToAsn(link))),
          );
        }
      }),
      { numRuns: propertyRuns(100) },
    );
  });

  it('matches the reference at the edges: empty lists and intent, 16 links, BOM and astral text, 1970 and 9999', () => {
    const edges = [
      sampleContext({ scopes: [], intent: '' }),
      contextWithLinks(16),
      sampleContext({ intent: '\ufeffleading BOM', agentId: '\u{1f916} agent' }),
      sampleContext({
        provenance: { ...sampleContext().provenance, issuedAt: new Date(0) },
      }),
      sampleContext({
        provenance: { ...sampleContext().provenance, issuedAt: new Date(Date.UTC(9999, 11, 31, 23, 59, 59)) },
      }),
    ];
    for (const ctx of edges) {
      const der = encodeAgentContext(ctx);
      assert.deepStrictEqual(der, referenceEncode(ctx));
      assert.deepStrictEqual(decodeAgentContext(der), ctx);
      sameVerdict(der);
    }
  });

  it('decodes mutated encodings exactly as the reference does: the same context, or both refuse', () => {
    fc.assert(
      fc.property(agentContext, fc.array(mutation, { minLength: 1, maxLength: 4 }), (ctx, mutations) => {
        sameVerdict(mutations.reduce(mutate, encodeAgentContext(ctx)));
      }),
      { numRuns: propertyRuns(1500) },
    );
  });

  it('decodes a one-link encoding with one bit flipped, at every offset, exactly as the reference does', () => {
    const der = encodeAgentContext(contextWithLinks(1));
    for (let i = 0; i < der.length; i++) {
      const changed = Uint8Array.from(der);
      changed[i] = der[i]! ^ 0x01;
      sameVerdict(changed);
    }
  });

  it('decodes random bytes behind a valid header exactly as the reference does', () => {
    const framed = fc.uint8Array({ maxLength: 160 }).map((body) => {
      const content = [0x02, 0x01, 0x01, ...body];
      return Uint8Array.from([0x30, 0x81, content.length, ...content]);
    });
    fc.assert(
      fc.property(framed, (der) => sameVerdict(der)),
      { numRuns: propertyRuns(1500) },
    );
  });

  it('decodes mutated DelegationBinding encodings exactly as the reference does', () => {
    fc.assert(
      fc.property(binding, fc.array(mutation, { minLength: 1, maxLength: 4 }), (b, mutations) => {
        const der = mutations.reduce(mutate, encodeDelegationBinding(b));
        sameVerdict(der, decodeDelegationBinding, referenceDecodeBinding);
      }),
      { numRuns: propertyRuns(1000) },
    );
  });
});
