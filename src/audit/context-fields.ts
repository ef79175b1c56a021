/**
 * The audit fields that identify an agent context: agent, sessions, principal, scopes, policy version and the
 * parent link. The server's records of issued and presented SVIDs and the hop helpers' decision records name a
 * context the same way, so one trace query finds both.
 */
import type { AgentContext } from '../x509/agent-context/types';
import type { AuditEvent } from './record';

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
