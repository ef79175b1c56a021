/**
 * Audit fields read from a certificate: the issued SVID of an allowed call, or the caller's verified SVID.
 * Identifiers only: SPIFFE ID, serial, agent, sessions, principal, scopes, policy version, parent link hash.
 */
import { contextFields, type SvidFields } from '../../audit/context-fields';
import { describeAgentContextAnyOid } from '../../x509/agent-context/oid';
import { decodeAgentContext } from '../../x509/agent-context/codec';
import { ParsedCertificate } from '../../x509/certificate';
import type { SignedLeaf } from '../../x509/profiles';

/** The fields of a certificate this server issued (so it parses); {} for bytes that do not. */
export function svidFields(der: Uint8Array | undefined): SvidFields {
  if (der === undefined || der.length === 0) return {};
  let cert: ParsedCertificate;
  try {
    cert = ParsedCertificate.fromDer(der);
  } catch {
    return {};
  }
  return certificateFields(cert);
}

/**
 * svidFields of a leaf this server just signed, from the fields it was signed with: the same record as the
 * parse of its certificate gives (the one URI SAN is its SPIFFE ID; the context is the extension's value).
 */
export function signedLeafFields(leaf: SignedLeaf): SvidFields {
  const out: SvidFields = { serial: leaf.serialHex, subject: leaf.spiffeId };
  // The issuance's own context, validated when it was encoded into agentContextDer: decoding those bytes again
  // would give back the same values (the codec reads only the exact DER of a valid context) at 15-20 us a record.
  if (leaf.agentContext !== undefined) return Object.assign(out, contextFields(leaf.agentContext));
  if (leaf.agentContextDer === undefined) return out;
  try {
    Object.assign(out, contextFields(decodeAgentContext(leaf.agentContextDer)));
  } catch {
    // As for a parsed certificate: one without a readable context is recorded by its SPIFFE ID and serial.
  }
  return out;
}

/** svidFields of a certificate already parsed. */
function certificateFields(cert: ParsedCertificate): SvidFields {
  const out: SvidFields = { serial: cert.serialHex };
  const uri = cert.uriSans[0];
  if (uri !== undefined) out.subject = uri;
  // This server issued it, under its own agent_context.oid; a certificate without a readable context is still
  // recorded by its SPIFFE ID and serial.
  const context = describeAgentContextAnyOid(cert);
  if (context !== undefined) Object.assign(out, contextFields(context));
  return out;
}
