/**
 * Which OID the agent-context extension sits under, and finding it in a certificate.
 *
 * The OID is a setting (server `agent_context.oid`, the verifier's `agentContextOid`, `--agent-context-oid`,
 * LANYARD_AGENT_CONTEXT_OID), so an organisation with its own Private Enterprise Number uses its own arc. Both
 * sides must agree: a reader that finds no extension under its OID but a Lanyard agent context under another
 * one refuses the certificate with AgentContextOidMismatchError naming both OIDs. Reading it as "no context"
 * would turn a configuration mistake into SVIDs that silently lose their principal, scopes and delegation.
 */
import { AgentContextOidMismatchError, InvalidAgentContextOidError } from '../../errors';
import type { ParsedCertificate, ParsedExtension } from '../certificate';
import { oidWriteProblem } from '../oid';
import { decodeAgentContext } from './codec';
import type { AgentContext } from './types';

/**
 * The default OID: arc 1.1 under Private Enterprise Number 262144 (1.3.6.1.4.1.262144). That PEN is unassigned
 * (far above the range IANA has assigned) and NOT registered to Lanyard; organisations that need a registered
 * OID set their own. Every arc stays below 2^28, so Go, Python cryptography 38, Java and OpenSSL parse it.
 */
export const DEFAULT_AGENT_CONTEXT_OID = '1.3.6.1.4.1.262144.1.1';

/**
 * OIDs earlier Lanyard builds wrote the context under (a 2.25 UUID OID, whose 128-bit arc Go and Python
 * cryptography 38 refuse). Never read: a certificate carrying one is refused, naming it.
 */
export const RETIRED_AGENT_CONTEXT_OIDS: readonly string[] = Object.freeze([
  '2.25.31710684403515015008777295008216665364',
]);

/**
 * The OID an option or setting names, checked: dotted decimal, at least two arcs, first arc 0-2, every arc
 * below 2^28 (see x509/oid.ts). undefined means the default.
 * @param what names the setting in the error, e.g. `agent_context.oid` or `--agent-context-oid`.
 * @throws AgentContextError(ERR_INVALID_AGENT_CONTEXT_OID)
 */
export function resolveAgentContextOid(oid: string | undefined, what = 'agentContextOid'): string {
  if (oid === undefined || oid === DEFAULT_AGENT_CONTEXT_OID) return DEFAULT_AGENT_CONTEXT_OID;
  if (typeof oid !== 'string') {
    throw new InvalidAgentContextOidError(`${what} must be a string`);
  }
  const problem = oidWriteProblem(oid);
  if (problem !== undefined) {
    const shown = oid.length > 80 ? `${oid.slice(0, 80)}...` : oid;
    throw new InvalidAgentContextOidError(`${what} "${shown}": ${problem}`);
  }
  return oid;
}

/**
 * The certificate's agent-context extension under `oid`, or undefined when it carries no agent context at all.
 * When `oid` is absent but another extension is a Lanyard agent context (under the default or a retired OID,
 * or any non-PKIX extension whose value decodes as one), the certificate is refused: the issuer wrote it for
 * readers configured with that other OID.
 * @param oid an OID already checked by resolveAgentContextOid.
 * @throws AgentContextOidMismatchError(ERR_AGENT_CONTEXT_OID_MISMATCH) naming the expected and the found OID
 */
export function agentContextExtension(cert: ParsedCertificate, oid: string): ParsedExtension | undefined {
  const ext = cert.extension(oid);
  if (ext !== undefined) return ext;
  // Only certificates without a context under `oid` get here: a few extensions, most of them PKIX ones.
  for (const other of cert.extensions) {
    if (isAgentContextElsewhere(other)) throw mismatch(cert, oid, other.oid);
  }
  return undefined;
}

/** The decoded (not verified) agent context under `oid`; undefined when there is none. Same refusals. */
export function readAgentContext(cert: ParsedCertificate, oid: string): AgentContext | undefined {
  const ext = agentContextExtension(cert, oid);
  return ext === undefined ? undefined : decodeAgentContext(ext.value);
}

/**
 * The agent context a certificate carries under whichever OID it is: the first extension outside PKIX's own
 * arcs whose value decodes as one. For describing certificates this process issued itself (audit records);
 * never for a trust decision, which reads the one configured OID (agentContextExtension).
 */
export function describeAgentContextAnyOid(cert: ParsedCertificate): AgentContext | undefined {
  for (const ext of cert.extensions) {
    if (isPkixExtension(ext.oid)) continue;
    try {
      return decodeAgentContext(ext.value);
    } catch {
      // Another private extension: keep looking.
    }
  }
  return undefined;
}

/** id-ce (2.5.29) and id-pe (1.3.6.1.5.5.7.1) extensions have their own, standard meaning. */
function isPkixExtension(oid: string): boolean {
  return oid.startsWith('2.5.29.') || oid.startsWith('1.3.6.1.5.5.7.1.');
}

function isAgentContextElsewhere(ext: ParsedExtension): boolean {
  if (ext.oid === DEFAULT_AGENT_CONTEXT_OID || RETIRED_AGENT_CONTEXT_OIDS.includes(ext.oid)) return true;
  if (isPkixExtension(ext.oid)) return false;
  try {
    decodeAgentContext(ext.value);
    return true;
  } catch {
    return false;
  }
}

function mismatch(cert: ParsedCertificate, expected: string, found: string): AgentContextOidMismatchError {
  const who = cert.uriSans[0] ?? `the certificate with serial ${cert.serialHex}`;
  const retired = RETIRED_AGENT_CONTEXT_OIDS.includes(found)
    ? ' (the OID of earlier Lanyard builds, which no release reads: issue a new SVID)'
    : '';
  return new AgentContextOidMismatchError(
    `${who} carries its agent context under OID ${found}${retired}, but this side reads it under ${expected}: ` +
      "the issuing server's agent_context.oid and this side's agent-context OID (agentContextOid option, " +
      '--agent-context-oid, LANYARD_AGENT_CONTEXT_OID) must be the same',
    { expectedOid: expected, foundOid: found },
  );
}
