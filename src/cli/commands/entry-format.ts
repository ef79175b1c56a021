/** How `lanyard entry` prints entries: a table for lists, key/value lines for one entry, or JSON. */
import type { Entry } from '../../gen/lanyard/v1/types';
import { renderFields, renderTable } from '../output';

/** Every field, always present (null for unset optional ones), so scripts can rely on the shape. */
export function entryToJson(e: Entry): Record<string, unknown> {
  return {
    id: e.id,
    spiffeId: e.spiffeId,
    parentId: e.parentId || null,
    selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
    x509SvidTtlSeconds: e.x509SvidTtlSeconds,
    allowedScopes: e.allowedScopes,
    maxDelegationDepth: e.maxDelegationDepth,
    allowedDelegates: e.allowedDelegates,
    admin: e.admin,
    dnsNames: e.dnsNames,
    canAssertPrincipal: e.canAssertPrincipal,
    federatesWith: e.federatesWith,
    expiresAt: e.expiresAt?.toISOString() ?? null,
    createdAt: e.createdAt?.toISOString() ?? null,
    updatedAt: e.updatedAt?.toISOString() ?? null,
    revision: e.revision,
  };
}

export function selectorsText(e: Entry): string {
  return e.selectors.map((s) => `${s.type}:${s.value}`).join(' ');
}

function ttlText(seconds: number): string {
  return seconds === 0 ? 'default' : `${seconds}s`;
}

export function entriesTable(entries: Entry[]): string {
  if (entries.length === 0) return 'no entries\n';
  return renderTable(
    ['ID', 'SPIFFE ID', 'PARENT ID', 'SELECTORS', 'TTL', 'REV'],
    entries.map((e) => [
      e.id,
      e.spiffeId,
      e.parentId || '-',
      selectorsText(e),
      ttlText(e.x509SvidTtlSeconds),
      String(e.revision),
    ]),
  );
}

export function entryDetail(e: Entry): string {
  const list = (xs: string[]): string => (xs.length === 0 ? '(none)' : xs.join(' '));
  const rows: [string, string][] = [
    ['ID', e.id],
    ['SPIFFE ID', e.spiffeId],
    ['Parent ID', e.parentId || '(none)'],
    ['Selectors', selectorsText(e)],
    ['X.509-SVID TTL', ttlText(e.x509SvidTtlSeconds)],
    ['Allowed scopes', list(e.allowedScopes)],
    ['Max delegation depth', String(e.maxDelegationDepth)],
    ['Allowed delegates', list(e.allowedDelegates)],
    ['Admin', e.admin ? 'yes' : 'no'],
    ['DNS names', list(e.dnsNames)],
    ['Can assert principal', e.canAssertPrincipal ? 'yes' : 'no'],
    ['Federates with', list(e.federatesWith)],
    ['Expires at', e.expiresAt?.toISOString() ?? 'never'],
    ['Created at', e.createdAt?.toISOString() ?? ''],
    ['Updated at', e.updatedAt?.toISOString() ?? ''],
    ['Revision', String(e.revision)],
  ];
  return renderFields(rows);
}
