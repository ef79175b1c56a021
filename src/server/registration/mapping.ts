/** Store records -> protobuf messages. The reverse direction is validate.ts, which also checks the input. */
import type { Entry as ProtoEntry } from '../../gen/lanyard/v1/types';
import type { Entry } from '../../store/types';

export function entryToProto(e: Entry): ProtoEntry {
  return {
    id: e.id,
    spiffeId: e.spiffeId,
    parentId: e.parentId ?? '',
    selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
    x509SvidTtlSeconds: e.x509SvidTtlSeconds,
    allowedScopes: [...e.allowedScopes],
    maxDelegationDepth: e.maxDelegationDepth,
    allowedDelegates: [...e.allowedDelegates],
    admin: e.admin,
    dnsNames: [...e.dnsNames],
    expiresAt: e.expiresAt,
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
    revision: e.revision,
    canAssertPrincipal: e.canAssertPrincipal,
    federatesWith: [...(e.federatesWith ?? [])],
  };
}
