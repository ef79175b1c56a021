/**
 * What an UpdateEntry changed, field by field, for its audit record: each mutable field whose value differs,
 * with the value before and after as canonical JSON text. An investigator reads from one record that an
 * update made an entry admin, not just that "the entry was updated".
 */
import type { AuditFieldChange } from '../../audit/record';
import { canonicalJson, type CanonicalValue } from '../../audit/canonical';
import type { Entry as ProtoEntry } from '../../gen/lanyard/v1/types';
import { MUTABLE_FIELDS } from './validate';

type MutableField = (typeof MUTABLE_FIELDS)[number];

/** A field's value as the audit trail shows it; unset optional fields are null. */
function fieldValue(e: ProtoEntry, field: MutableField): CanonicalValue {
  switch (field) {
    case 'spiffe_id':
      return e.spiffeId;
    case 'parent_id':
      return e.parentId === '' ? null : e.parentId;
    case 'selectors':
      return e.selectors.map((s) => ({ type: s.type, value: s.value }));
    case 'x509_svid_ttl_seconds':
      return e.x509SvidTtlSeconds;
    case 'allowed_scopes':
      return [...e.allowedScopes];
    case 'max_delegation_depth':
      return e.maxDelegationDepth;
    case 'allowed_delegates':
      return [...e.allowedDelegates];
    case 'admin':
      return e.admin;
    case 'dns_names':
      return [...e.dnsNames];
    case 'expires_at':
      return e.expiresAt === undefined ? null : e.expiresAt.toISOString();
    case 'can_assert_principal':
      return e.canAssertPrincipal;
    case 'federates_with':
      return [...e.federatesWith];
  }
}

/** Every mutable field whose value differs between `before` and `after`, in the order of MUTABLE_FIELDS. */
export function entryChanges(before: ProtoEntry, after: ProtoEntry): AuditFieldChange[] {
  const out: AuditFieldChange[] = [];
  for (const field of MUTABLE_FIELDS) {
    const b = canonicalJson(fieldValue(before, field));
    const a = canonicalJson(fieldValue(after, field));
    if (a !== b) out.push({ field, before: b, after: a });
  }
  return out;
}
