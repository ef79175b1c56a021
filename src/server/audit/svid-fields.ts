/**
 * Audit fields read from a certificate: the issued SVID of an allowed call, or the caller's verified SVID.
 * Identifiers only: SPIFFE ID, serial, agent, sessions, principal, scopes, policy version, parent link hash.
 */
import type { AuditEvent } from '../../audit/record';
import type { AgentContext } from '../../x509/agent-context/types';
import { describeAgentContextAnyOid } from '../../x509/agent-context/oid';
import { ParsedCertificate } from '../../x509/certificate';

export type SvidFields = Pick<
  AuditEvent,
  | 'subject'
  | 'serial'
  | 'agentId'
  | 'sessionId'
  | 'rootSessionId'
  | 'parentSessionId'
  | 'principal'
  | 'principalIssuer'
  | 'scopes'
  | 'policyVersion'
  | 'parentCertSha256'
>;

export function contextFields(c: Readonly<AgentContext>): SvidFields {
  const last = c.delegation[c.delegation.length - 1];
  return {
    agentId: c.agentId,
    sessionId: c.sessionId,
    rootSessionId: c.rootSessionId,
    principal: c.principal.id,
    principalIssuer: c.principal.issuer,
    scopes: [...c.scopes],
    policyVersion: c.policyVersion,
    ...(last !== undefined && {
      parentSessionId: last.sessionId,
      parentCertSha256: Buffer.from(last.certSha256).toString('hex'),
    }),
  };
}

/** The fields of a certificate this server issued (so it parses); {} for bytes that do not. */
export function svidFields(der: Uint8Array | undefined): SvidFields {
  if (der === undefined || der.length === 0) return {};
  let cert: ParsedCertificate;
  try {
    cert = ParsedCertificate.fromDer(der);
  } catch {
    return {};
  }
  const out: SvidFields = { serial: cert.serialHex };
  const uri = cert.uriSans[0];
  if (uri !== undefined) out.subject = uri;
  // This server issued it, under its own agent_context.oid; a certificate without a readable context is still
  // recorded by its SPIFFE ID and serial.
  const context = describeAgentContextAnyOid(cert);
  if (context !== undefined) Object.assign(out, contextFields(context));
  return out;
}
