/**
 * The agent-context codec as it was before the direct DER reader and writer: asn1-schema object graphs from
 * schema.ts and mapping.ts, and a decoder that proves the input was DER by re-encoding what it parsed. Kept
 * for the differential property test and as the "before" figure in scripts/bench.ts; production code never
 * imports it.
 */
import { AsnParser, AsnSerializer } from '@peculiar/asn1-schema';
import {
  AgentContextError,
  AgentContextTooLargeError,
  MalformedAgentContextError,
} from '../../../src/errors';
import {
  AGENT_CONTEXT_LIMITS,
  assertValidAgentContext,
  assertValidDelegationBinding,
  type AgentContext,
  type DelegationBinding,
} from '../../../src/x509/agent-context';
import { checkOuterFrame } from '../../../src/x509/agent-context/der-frame';
import {
  bindingFromAsn,
  bindingToAsn,
  contextFromAsn,
  contextToAsn,
} from '../../../src/x509/agent-context/mapping';
import { AgentContextAsn, DelegationBindingAsn } from '../../../src/x509/agent-context/schema';

const NODES_PER_SCOPES = 1 + AGENT_CONTEXT_LIMITS.maxScopes;
const NODES_PER_BINDING = 13 + NODES_PER_SCOPES;
const NODES_PER_LINK = 9 + NODES_PER_SCOPES + NODES_PER_BINDING;
const BER_OPTIONS = {
  maxDepth: 5,
  maxNodes: 20 + NODES_PER_SCOPES + AGENT_CONTEXT_LIMITS.maxDelegationDepth * NODES_PER_LINK,
  maxContentLength: AGENT_CONTEXT_LIMITS.maxEncodedBytes,
  parseEmbedded: false,
};

/** Schema-class DER of a context; validates first, like the production encoder. */
export function referenceEncode(ctx: AgentContext): Uint8Array {
  assertValidAgentContext(ctx);
  return new Uint8Array(AsnSerializer.serialize(contextToAsn(ctx)));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The old strict decoder: frame, schema parse, map, validate, then demand the canonical re-encoding. */
export function referenceDecode(der: Uint8Array): AgentContext {
  try {
    if (der.length > AGENT_CONTEXT_LIMITS.maxEncodedBytes) {
      throw new AgentContextTooLargeError('agent context input: too large');
    }
    checkOuterFrame(der);
    const ctx = contextFromAsn(AsnParser.parse(der, AgentContextAsn, { berOptions: BER_OPTIONS }));
    assertValidAgentContext(ctx);
    if (!sameBytes(new Uint8Array(AsnSerializer.serialize(contextToAsn(ctx))), der)) {
      throw new MalformedAgentContextError('agent context input: not DER');
    }
    return ctx;
  } catch (e) {
    if (e instanceof AgentContextError) throw e;
    throw new MalformedAgentContextError('agent context input: cannot be decoded', {
      cause: e,
    });
  }
}

const MAX_BINDING_BYTES = 16 * 1024;

/** The old strict DelegationBinding decoder, on the same pattern as referenceDecode. */
export function referenceDecodeBinding(der: Uint8Array): DelegationBinding {
  try {
    if (der.length > MAX_BINDING_BYTES) {
      throw new AgentContextTooLargeError('agent context binding: too large');
    }
    const asn = AsnParser.parse(der, DelegationBindingAsn, {
      berOptions: { ...BER_OPTIONS, maxDepth: 2, maxNodes: NODES_PER_BINDING + 2 },
    });
    const value = bindingFromAsn(asn, 'binding');
    assertValidDelegationBinding(value, 'binding');
    if (!sameBytes(new Uint8Array(AsnSerializer.serialize(bindingToAsn(value))), der)) {
      throw new MalformedAgentContextError('agent context binding: not DER');
    }
    return value;
  } catch (e) {
    if (e instanceof AgentContextError) throw e;
    throw new MalformedAgentContextError('delegation binding: cannot be decoded', {
      cause: e,
    });
  }
}
