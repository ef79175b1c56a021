/**
 * DER encoding and strict decoding of the agent-context extension value, plus the two encodings the
 * delegation chain is built on: the bytes a parent signs (DelegationBinding) and the hash that links a hop
 * to the one before it (DelegationLink).
 */
import { createHash } from 'node:crypto';
import { AsnParser, AsnSerializer } from '@peculiar/asn1-schema';
import { AgentContextError, ErrorCode } from '../../errors';
import { checkOuterFrame } from './der-frame';
import { malformed, tooLarge } from './field-rules';
import { bindingFromAsn, bindingToAsn, contextFromAsn, contextToAsn, linkToAsn } from './mapping';
import { AgentContextAsn, DelegationBindingAsn } from './schema';
import {
  AGENT_CONTEXT_LIMITS,
  type AgentContext,
  type DelegationBinding,
  type DelegationLink,
} from './types';
import { assertValidAgentContext, assertValidDelegationBinding, assertValidDelegationLink } from './validate';

const NODES_PER_SCOPES = 1 + AGENT_CONTEXT_LIMITS.maxScopes;
const NODES_PER_BINDING = 13 + NODES_PER_SCOPES;
const NODES_PER_LINK = 9 + NODES_PER_SCOPES + NODES_PER_BINDING;
/**
 * Parser resource bounds, derived from the schema so a valid context always fits and garbage is cut off early.
 * Depth: AgentContext(0) > delegation(1) > link(2) > binding(3) > scopes(4) > scope(5).
 * parseEmbedded off: OCTET STRING contents (digests, keys, nonces) are opaque, never parsed as ASN.1.
 */
const BER_OPTIONS = {
  maxDepth: 5,
  maxNodes: 20 + NODES_PER_SCOPES + AGENT_CONTEXT_LIMITS.maxDelegationDepth * NODES_PER_LINK,
  maxContentLength: AGENT_CONTEXT_LIMITS.maxEncodedBytes,
  parseEmbedded: false,
};

function serialize(value: object, what: string): Uint8Array {
  try {
    return new Uint8Array(AsnSerializer.serialize(value));
  } catch (e) {
    // Validation runs first, so this is a bug rather than bad input; still a typed error, never a raw one.
    throw new AgentContextError(ErrorCode.MALFORMED_AGENT_CONTEXT, `agent context ${what}: cannot encode`, {
      cause: e,
    });
  }
}

/** DER of the AgentContext. Validates first: whatever this returns, decodeAgentContext accepts. */
export function encodeAgentContext(ctx: AgentContext): Uint8Array {
  assertValidAgentContext(ctx);
  const der = serialize(contextToAsn(ctx), 'value');
  if (der.length > AGENT_CONTEXT_LIMITS.maxEncodedBytes) {
    tooLarge(
      'value',
      `encodes to ${der.length} bytes, at most ${AGENT_CONTEXT_LIMITS.maxEncodedBytes} allowed`,
    );
  }
  return der;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

function decodeStrict(der: Uint8Array): AgentContext {
  if (der.length > AGENT_CONTEXT_LIMITS.maxEncodedBytes) {
    tooLarge('input', `${der.length} bytes, at most ${AGENT_CONTEXT_LIMITS.maxEncodedBytes} allowed`);
  }
  checkOuterFrame(der);
  let asn: AgentContextAsn;
  try {
    asn = AsnParser.parse(der, AgentContextAsn, { berOptions: BER_OPTIONS });
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new AgentContextError(
      ErrorCode.MALFORMED_AGENT_CONTEXT,
      `agent context input: does not match the AgentContext ASN.1 schema (${reason})`,
      { cause: e },
    );
  }
  const ctx = contextFromAsn(asn);
  assertValidAgentContext(ctx);
  // DER has exactly one encoding per value. Re-encoding the decoded value and demanding the same bytes
  // rejects every BER liberty (long or indefinite lengths, constructed strings, non-minimal integers, time
  // formats, extra or unknown elements) without a rule for each one.
  const canonical = serialize(contextToAsn(ctx), 'value');
  if (canonical.length !== der.length || firstDifference(canonical, der) !== der.length) {
    malformed('input', `not DER: canonical encoding differs at byte ${firstDifference(canonical, der)}`);
  }
  return ctx;
}

/**
 * Strict decoder for untrusted input. Throws AgentContextError, and nothing else, for anything that is not
 * the exact DER of a valid version-1 context within AGENT_CONTEXT_LIMITS.
 */
export function decodeAgentContext(der: Uint8Array): AgentContext {
  if (!(der instanceof Uint8Array)) malformed('input', 'expected bytes (Uint8Array)');
  try {
    return decodeStrict(der);
  } catch (e) {
    if (e instanceof AgentContextError) throw e;
    // Last line of defence: a library exception on hostile input must still surface as a typed rejection.
    throw new AgentContextError(ErrorCode.MALFORMED_AGENT_CONTEXT, 'agent context input: cannot be decoded', {
      cause: e,
    });
  }
}

/** The exact bytes a parent signs when it delegates: DER of the DelegationBinding (binding version 1). */
export function encodeDelegationBinding(binding: DelegationBinding): Uint8Array {
  assertValidDelegationBinding(binding);
  return serialize(bindingToAsn(binding), 'binding');
}

/** DER of one DelegationLink, byte for byte as it appears inside the encoded context. */
export function encodeDelegationLink(link: DelegationLink): Uint8Array {
  assertValidDelegationLink(link);
  return serialize(linkToAsn(link), 'link');
}

/** SHA-256 of the DER of one link: the next link's binding.prevLinkSha256. */
export function delegationLinkSha256(link: DelegationLink): Uint8Array {
  return new Uint8Array(createHash('sha256').update(encodeDelegationLink(link)).digest());
}

/** Largest DER binding accepted: 64 scopes of 128 bytes, an ID, a nonce and three short strings fit easily. */
const MAX_BINDING_BYTES = 16 * 1024;

/**
 * Strict decoder of a DelegationBinding sent on its own (a parent's grant before it becomes a link): exactly
 * the DER encodeDelegationBinding produces for a valid binding, nothing else. Throws AgentContextError.
 */
export function decodeDelegationBinding(der: Uint8Array): DelegationBinding {
  if (!(der instanceof Uint8Array)) malformed('binding', 'expected bytes (Uint8Array)');
  if (der.length > MAX_BINDING_BYTES)
    tooLarge('binding', `${der.length} bytes, at most ${MAX_BINDING_BYTES}`);
  let value: unknown;
  try {
    value = bindingFromAsn(
      AsnParser.parse(der, DelegationBindingAsn, {
        berOptions: { ...BER_OPTIONS, maxDepth: 2, maxNodes: NODES_PER_BINDING + 2 },
      }),
      'binding',
    );
  } catch (e) {
    if (e instanceof AgentContextError) throw e;
    throw new AgentContextError(ErrorCode.MALFORMED_AGENT_CONTEXT, 'delegation binding: cannot be decoded', {
      cause: e,
    });
  }
  assertValidDelegationBinding(value, 'binding');
  // Same rule as for the context: only the one DER encoding is accepted, so the signed bytes are unambiguous.
  const canonical = serialize(bindingToAsn(value), 'binding');
  if (canonical.length !== der.length || firstDifference(canonical, der) !== der.length) {
    malformed('binding', 'not DER: the canonical encoding differs');
  }
  return value;
}
