/**
 * The Cedar entity of a workload: what its (verified, or about to be signed) SVID says about it. Policies see
 * only this, so a hop and the issuing server judge the same facts the same way.
 */
import type * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { SpiffeId } from '../spiffe';
import type { AgentContext } from '../x509/agent-context/types';
import { WORKLOAD_TYPE } from './schema';

/** Who a decision is about: a verified peer (VerifyX509SvidResult fits), or the subject of an SVID being issued. */
export interface PolicySubject {
  readonly id: SpiffeId;
  readonly context?: Readonly<AgentContext> | undefined;
}

export function workloadUid(subject: PolicySubject): cedar.TypeAndId {
  return { type: WORKLOAD_TYPE, id: subject.id.toString() };
}

export function workloadEntity(subject: PolicySubject): cedar.EntityJson {
  const c = subject.context;
  return {
    uid: workloadUid(subject),
    attrs: {
      spiffeId: subject.id.toString(),
      trustDomain: subject.id.trustDomain.name,
      path: subject.id.path,
      hasAgentContext: c !== undefined,
      agentId: c?.agentId ?? '',
      sessionId: c?.sessionId ?? '',
      rootSessionId: c?.rootSessionId ?? '',
      rootPrincipal: c?.principal.id ?? '',
      rootPrincipalIssuer: c?.principal.issuer ?? '',
      principalProvenance: c?.principal.provenance ?? '',
      scopes: [...new Set(c?.scopes ?? [])],
      delegationDepth: c?.delegation.length ?? 0,
      delegatedBy: [...new Set((c?.delegation ?? []).map((l) => l.spiffeId))],
      intent: c?.intent ?? '',
    },
    parents: [],
  };
}
