/**
 * DER encoding and strict decoding of the agent-context extension value, plus the two encodings the
 * delegation chain is built on: the bytes a parent signs (DelegationBinding) and the hash that links a hop
 * to the one before it (DelegationLink).
 *
 * Both directions run on every issuance, verification and grant redemption, so they write and read DER
 * directly (context-der-writer.ts, context-der-reader.ts) rather than through asn1-schema object graphs.
 * schema.ts and mapping.ts remain as the reference definition the tests compare these against.
 */
import { createHash } from 'node:crypto';
import { AgentContextError, MalformedAgentContextError } from '../../errors';
import { DerFramingError, readSingleTlv, readTlv } from '../der';
import { DerWriteError } from '../der-writer';
import { readAgentContext, readDelegationBinding } from './context-der-reader';
import { bindingDer, contextDer, linkDer } from './context-der-writer';
import { checkOuterFrame } from './der-frame';
import { malformed, tooLarge } from './field-rules';
import {
  AGENT_CONTEXT_LIMITS,
  type AgentContext,
  type DelegationBinding,
  type DelegationLink,
} from './types';
import { assertValidAgentContext, assertValidDelegationBinding, assertValidDelegationLink } from './validate';

function write(encode: () => Uint8Array, what: string): Uint8Array {
  try {
    return encode();
  } catch (e) {
    // Validation runs first, so this is a bug rather than bad input; still a typed error, never a raw one.
    if (!(e instanceof DerWriteError)) throw e;
    throw new MalformedAgentContextError(`agent context ${what}: cannot encode`, {
      cause: e,
    });
  }
}

/** DER of the AgentContext. Validates first: whatever this returns, decodeAgentContext accepts. */
export function encodeAgentContext(ctx: AgentContext): Uint8Array {
  assertValidAgentContext(ctx);
  const der = write(() => contextDer(ctx), 'value');
  if (der.length > AGENT_CONTEXT_LIMITS.maxEncodedBytes) {
    tooLarge(
      'value',
      `encodes to ${der.length} bytes, at most ${AGENT_CONTEXT_LIMITS.maxEncodedBytes} allowed`,
    );
  }
  return der;
}

/** Runs a reader, turning a framing error (bad length, element past its container) into a typed rejection. */
function read<T>(field: string, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof AgentContextError) throw e;
    if (e instanceof DerFramingError) malformed(field, `not DER: ${e.message}`);
    // Last line of defence: nothing but AgentContextError may leave the decoder on hostile input.
    throw new MalformedAgentContextError(`${what}: cannot be decoded`, {
      cause: e,
    });
  }
}

/**
 * Strict decoder for untrusted input. Throws AgentContextError, and nothing else, for anything that is not
 * the exact DER of a valid version-1 context within AGENT_CONTEXT_LIMITS.
 */
export function decodeAgentContext(der: Uint8Array): AgentContext {
  if (!(der instanceof Uint8Array)) malformed('input', 'expected bytes (Uint8Array)');
  if (der.length > AGENT_CONTEXT_LIMITS.maxEncodedBytes) {
    tooLarge('input', `${der.length} bytes, at most ${AGENT_CONTEXT_LIMITS.maxEncodedBytes} allowed`);
  }
  // Outer frame and version first, so a future version is reported as unsupported whatever its body.
  checkOuterFrame(der);
  const ctx = read('input', 'agent context input', () => readAgentContext(der, readTlv(der, 0)));
  // The reader accepts only DER, so a value that passes here is the one whose encoding is the input.
  assertValidAgentContext(ctx);
  return ctx;
}

/** The exact bytes a parent signs when it delegates: DER of the DelegationBinding (binding version 3). */
export function encodeDelegationBinding(binding: DelegationBinding): Uint8Array {
  assertValidDelegationBinding(binding);
  return write(() => bindingDer(binding), 'binding');
}

/** DER of one DelegationLink, byte for byte as it appears inside the encoded context. */
export function encodeDelegationLink(link: DelegationLink): Uint8Array {
  assertValidDelegationLink(link);
  return write(() => linkDer(link), 'link');
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
  const value = read('binding', 'delegation binding', () =>
    readDelegationBinding(der, readSingleTlv(der), 'binding'),
  );
  // Only the one DER encoding is read, so the signed bytes are unambiguous.
  assertValidDelegationBinding(value, 'binding');
  return value;
}
