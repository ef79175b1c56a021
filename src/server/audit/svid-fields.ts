/**
 * Audit fields read from a certificate: the issued SVID of an allowed call, or the caller's verified SVID.
 * Identifiers only: SPIFFE ID, serial, agent, sessions, principal, scopes, policy version, parent link hash.
 */
import { contextFields, type SvidFields } from '../../audit/context-fields';
import { describeAgentContextAnyOid } from '../../x509/agent-context/oid';
import { ParsedCertificate } from '../../x509/certificate';

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

/** svidFields of a certificate already parsed (the one just signed). */
export function certificateFields(cert: ParsedCertificate): SvidFields {
  const out: SvidFields = { serial: cert.serialHex };
  const uri = cert.uriSans[0];
  if (uri !== undefined) out.subject = uri;
  // This server issued it, under its own agent_context.oid; a certificate without a readable context is still
  // recorded by its SPIFFE ID and serial.
  const context = describeAgentContextAnyOid(cert);
  if (context !== undefined) Object.assign(out, contextFields(context));
  return out;
}
