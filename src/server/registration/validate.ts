/**
 * Input checks for the registration API. Every refusal is INVALID_ARGUMENT with a message that starts with
 * the field path (e.g. `entry.selectors[1].type: ...`), so a caller can tell exactly what to fix.
 */
import { InvalidArgumentError, LanyardError } from '../../errors';
import type { Entry as ProtoEntry, Selector as ProtoSelector } from '../../gen/lanyard/v1/types';
import { SelectorMatch, type ListEntriesRequest } from '../../gen/lanyard/v1/registration';
import { SpiffeId, TrustDomain } from '../../spiffe';
import { MAX_PAGE_SIZE } from '../../store/store';
import type {
  EntryFields,
  EntryFilter,
  EntryPatch,
  NewEntry,
  Selector,
  SelectorMatchMode,
} from '../../store/types';

/** The bounds the registration API enforces. */
export const LIMITS = {
  entryId: /^[A-Za-z0-9._-]{1,64}$/,
  maxSelectors: 64,
  /** Lowercase like SPIRE's selector types: "k8s", "unix", "join_token", "x509pop". */
  selectorType: /^[a-z0-9][a-z0-9_.-]{0,63}$/,
  maxSelectorValueLength: 1024,
  minX509SvidTtlSeconds: 1,
  maxX509SvidTtlSeconds: 30 * 86400,
  maxScopes: 256,
  maxScopeLength: 256,
  maxDelegationDepth: 16,
  maxDelegates: 256,
  maxDnsNames: 32,
  maxFederatesWith: 64,
  defaultPageSize: 100,
  joinTokenDefaultTtlSeconds: 600,
  joinTokenMaxTtlSeconds: 30 * 86400,
  /** Paths under this prefix are the server's own identities (e.g. /lanyard/server): never registrable. */
  reservedPathPrefix: '/lanyard/',
} as const;

export interface ValidationContext {
  trustDomain: TrustDomain;
  now: Date;
}

export function invalid(field: string, message: string): LanyardError {
  return new InvalidArgumentError(`${field}: ${message}`);
}

/** An entry ID given by the caller. */
export function validateEntryId(field: string, id: string): string {
  if (id === '') throw invalid(field, 'required');
  if (!LIMITS.entryId.test(id)) throw invalid(field, 'must be 1-64 characters of A-Z a-z 0-9 . _ -');
  return id;
}

/** A SPIFFE ID of a workload in this trust domain, with a path, outside the reserved /lanyard/ tree. */
export function validateWorkloadId(field: string, value: string, ctx: ValidationContext): string {
  if (value === '') throw invalid(field, 'required');
  const id = parseSpiffeId(field, value);
  if (!id.memberOf(ctx.trustDomain)) {
    throw invalid(field, `must be in trust domain ${ctx.trustDomain.name}, got ${id.trustDomain.name}`);
  }
  if (id.path === '') throw invalid(field, 'must have a path: the trust domain ID itself names no workload');
  if (`${id.path}/`.startsWith(LIMITS.reservedPathPrefix)) {
    throw invalid(
      field,
      `paths under ${LIMITS.reservedPathPrefix} are reserved for the server's own identities`,
    );
  }
  return id.toString();
}

/** Validates a complete entry as given to CreateEntry (or UpdateEntry without a mask). */
export function validateNewEntry(field: string, e: ProtoEntry | undefined, ctx: ValidationContext): NewEntry {
  if (!e) throw invalid(field, 'required');
  const fields = validateEntryFields(field, e, ctx);
  const out: NewEntry = { ...fields };
  if (e.id !== '') out.id = validateEntryId(`${field}.id`, e.id);
  return out;
}

/** The mutable fields of an entry, by proto field name (snake_case; lowerCamelCase is accepted too). */
export const MUTABLE_FIELDS = [
  'spiffe_id',
  'parent_id',
  'selectors',
  'x509_svid_ttl_seconds',
  'allowed_scopes',
  'max_delegation_depth',
  'allowed_delegates',
  'admin',
  'dns_names',
  'expires_at',
  'can_assert_principal',
  'federates_with',
] as const;
type MutableField = (typeof MUTABLE_FIELDS)[number];

/** The update_mask path that replaces every mutable field (AIP-134's full replacement). */
export const FULL_REPLACEMENT_PATH = '*';

/**
 * The patch for UpdateEntry: only the masked fields, each validated. The mask is required: proto3 cannot
 * tell an unset bool from false, so a "change what is set" rule would read every absent flag as a change
 * (this is how `entry update --ttl` once made entries admin). `*` alone replaces every mutable field, where
 * an empty parent_id or absent expires_at clears them.
 */
export function validateEntryPatch(
  field: string,
  e: ProtoEntry,
  mask: readonly string[],
  ctx: ValidationContext,
): EntryPatch {
  if (mask.length === 0) {
    throw invalid(
      'update_mask',
      `required: name the fields to change (one of ${MUTABLE_FIELDS.join(', ')}), or "${FULL_REPLACEMENT_PATH}" to replace them all`,
    );
  }
  if (mask.includes(FULL_REPLACEMENT_PATH) && mask.length > 1) {
    throw invalid('update_mask', `"${FULL_REPLACEMENT_PATH}" replaces every field and must be the only path`);
  }
  const paths =
    mask[0] === FULL_REPLACEMENT_PATH
      ? [...MUTABLE_FIELDS]
      : mask.map((p, i) => maskPath(`update_mask.paths[${i}]`, p));
  const patch: EntryPatch = {};
  const f = (name: string): string => `${field}.${name}`;
  for (const p of new Set(paths)) {
    switch (p) {
      case 'spiffe_id':
        patch.spiffeId = validateWorkloadId(f('spiffe_id'), e.spiffeId, ctx);
        break;
      case 'parent_id':
        patch.parentId = e.parentId === '' ? null : validateParentId(f('parent_id'), e.parentId, ctx);
        break;
      case 'selectors':
        // Whether an empty set is allowed depends on the parent after the update: requireSelectorsUnderParent.
        patch.selectors = validateSelectors(f('selectors'), e.selectors, true);
        break;
      case 'x509_svid_ttl_seconds':
        patch.x509SvidTtlSeconds = validateSvidTtl(f('x509_svid_ttl_seconds'), e.x509SvidTtlSeconds);
        break;
      case 'allowed_scopes':
        patch.allowedScopes = validateScopes(f('allowed_scopes'), e.allowedScopes);
        break;
      case 'max_delegation_depth':
        patch.maxDelegationDepth = validateDepth(f('max_delegation_depth'), e.maxDelegationDepth);
        break;
      case 'allowed_delegates':
        patch.allowedDelegates = validateDelegates(f('allowed_delegates'), e.allowedDelegates);
        break;
      case 'admin':
        patch.admin = e.admin;
        break;
      case 'dns_names':
        patch.dnsNames = validateDnsNames(f('dns_names'), e.dnsNames);
        break;
      case 'expires_at':
        patch.expiresAt = e.expiresAt ? validateExpiry(f('expires_at'), e.expiresAt, ctx) : null;
        break;
      case 'can_assert_principal':
        patch.canAssertPrincipal = e.canAssertPrincipal;
        break;
      case 'federates_with':
        patch.federatesWith = validateFederatesWith(f('federates_with'), e.federatesWith, ctx);
        break;
    }
  }
  return patch;
}

export function validateRevision(field: string, revision: number, required: boolean): number | undefined {
  if (revision === 0) {
    if (required) throw invalid(field, 'required: the revision you last read (optimistic concurrency)');
    return undefined;
  }
  if (!Number.isSafeInteger(revision) || revision < 1) throw invalid(field, 'must be a positive integer');
  return revision;
}

export interface ValidatedList {
  filter: EntryFilter;
  pageSize: number;
  pageToken: string;
}

export function validateListRequest(req: ListEntriesRequest): ValidatedList {
  if (!Number.isInteger(req.pageSize) || req.pageSize < 0) throw invalid('page_size', 'must not be negative');
  const pageSize = req.pageSize === 0 ? LIMITS.defaultPageSize : Math.min(req.pageSize, MAX_PAGE_SIZE);
  const filter: EntryFilter = {};
  const fl = req.filter;
  if (fl) {
    if (fl.spiffeIdPrefix !== '') {
      if (fl.spiffeIdPrefix.length > 2048 || !isPrintableAscii(fl.spiffeIdPrefix)) {
        throw invalid('filter.spiffe_id_prefix', 'must be printable ASCII of at most 2048 characters');
      }
      filter.spiffeIdPrefix = fl.spiffeIdPrefix;
    }
    if (fl.parentId !== '') filter.parentId = parseSpiffeId('filter.parent_id', fl.parentId).toString();
    if (fl.bySelectors) {
      const selectors = validateSelectors('filter.by_selectors.selectors', fl.bySelectors.selectors);
      filter.selectors = { selectors, match: matchMode('filter.by_selectors.match', fl.bySelectors.match) };
    }
  }
  return { filter, pageSize, pageToken: req.pageToken };
}

export function validateJoinTokenTtl(field: string, ttlSeconds: number): number {
  if (ttlSeconds === 0) return LIMITS.joinTokenDefaultTtlSeconds;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > LIMITS.joinTokenMaxTtlSeconds) {
    throw invalid(
      field,
      `must be between 1 and ${LIMITS.joinTokenMaxTtlSeconds} seconds (0 = ${LIMITS.joinTokenDefaultTtlSeconds})`,
    );
  }
  return ttlSeconds;
}

function validateEntryFields(field: string, e: ProtoEntry, ctx: ValidationContext): EntryFields {
  const f = (name: string): string => `${field}.${name}`;
  const out: EntryFields = {
    spiffeId: validateWorkloadId(f('spiffe_id'), e.spiffeId, ctx),
    selectors: validateSelectors(f('selectors'), e.selectors, true),
    x509SvidTtlSeconds: validateSvidTtl(f('x509_svid_ttl_seconds'), e.x509SvidTtlSeconds),
    allowedScopes: validateScopes(f('allowed_scopes'), e.allowedScopes),
    maxDelegationDepth: validateDepth(f('max_delegation_depth'), e.maxDelegationDepth),
    allowedDelegates: validateDelegates(f('allowed_delegates'), e.allowedDelegates),
    admin: e.admin,
    dnsNames: validateDnsNames(f('dns_names'), e.dnsNames),
    canAssertPrincipal: e.canAssertPrincipal,
  };
  if (e.parentId !== '') out.parentId = validateParentId(f('parent_id'), e.parentId, ctx);
  requireSelectorsUnderParent(field, out);
  if (e.expiresAt) out.expiresAt = validateExpiry(f('expires_at'), e.expiresAt, ctx);
  if (e.federatesWith.length > 0) {
    out.federatesWith = validateFederatesWith(f('federates_with'), e.federatesWith, ctx);
  }
  return out;
}

/**
 * Foreign trust domain names, not our own (its bundle is always handed out). That each has a federation
 * relationship is checked in the transaction that writes the entry (registration/federation.ts).
 */
export function validateFederatesWith(
  field: string,
  names: readonly string[],
  ctx: ValidationContext,
): string[] {
  if (names.length > LIMITS.maxFederatesWith) {
    throw invalid(field, `at most ${LIMITS.maxFederatesWith} trust domains`);
  }
  unique(field, names);
  return names.map((n, i) => {
    let td: TrustDomain;
    try {
      td = TrustDomain.parse(n);
    } catch (e) {
      throw invalid(`${field}[${i}]`, e instanceof Error ? e.message : String(e));
    }
    if (td.equals(ctx.trustDomain)) {
      throw invalid(`${field}[${i}]`, `"${n}" is this server's own trust domain, not a federated one`);
    }
    return td.name;
  });
}

function parseSpiffeId(field: string, value: string): SpiffeId {
  try {
    return SpiffeId.parse(value);
  } catch (e) {
    throw invalid(field, e instanceof Error ? e.message : String(e));
  }
}

function validateParentId(field: string, value: string, ctx: ValidationContext): string {
  const id = parseSpiffeId(field, value);
  if (!id.memberOf(ctx.trustDomain)) throw invalid(field, `must be in trust domain ${ctx.trustDomain.name}`);
  return id.toString();
}

/**
 * An entry without selectors can only be reached through a join token bound to it: selector matching
 * (attestation, the store's subset filter, the agent's cache) never matches an empty set. It must then be
 * issued by the server directly, since a node agent hands out entries by selector only.
 */
export function requireSelectorsUnderParent(
  field: string,
  entry: { selectors: readonly unknown[]; parentId?: string },
): void {
  if (entry.selectors.length === 0 && entry.parentId !== undefined) {
    throw invalid(
      `${field}.selectors`,
      `at least one selector is required for an entry under a node agent (parent_id ${entry.parentId}); only an entry without parent_id (join tokens only) may have none`,
    );
  }
}

function validateSelectors(
  field: string,
  selectors: readonly ProtoSelector[],
  allowEmpty = false,
): Selector[] {
  if (selectors.length === 0 && allowEmpty) return [];
  if (selectors.length === 0) throw invalid(field, 'at least one selector is required');
  if (selectors.length > LIMITS.maxSelectors)
    throw invalid(field, `at most ${LIMITS.maxSelectors} selectors`);
  const seen = new Set<string>();
  return selectors.map((s, i) => {
    const at = `${field}[${i}]`;
    if (!LIMITS.selectorType.test(s.type)) {
      throw invalid(
        `${at}.type`,
        'must be 1-64 characters of a-z 0-9 _ . - (no ":"), starting with a letter or digit',
      );
    }
    if (s.value === '') throw invalid(`${at}.value`, 'required');
    // Spaces are allowed here (label values may contain them); control characters never are.
    if (s.value.length > LIMITS.maxSelectorValueLength || !/^[\x20-\x7e]+$/.test(s.value)) {
      throw invalid(
        `${at}.value`,
        `must be printable ASCII of at most ${LIMITS.maxSelectorValueLength} characters`,
      );
    }
    const key = `${s.type}:${s.value}`;
    if (seen.has(key)) throw invalid(at, `duplicate selector ${key}`);
    seen.add(key);
    return { type: s.type, value: s.value };
  });
}

function validateSvidTtl(field: string, ttl: number): number {
  if (ttl === 0) return 0;
  if (!Number.isInteger(ttl) || ttl < LIMITS.minX509SvidTtlSeconds || ttl > LIMITS.maxX509SvidTtlSeconds) {
    throw invalid(
      field,
      `must be 0 (server default) or between ${LIMITS.minX509SvidTtlSeconds} and ${LIMITS.maxX509SvidTtlSeconds} seconds`,
    );
  }
  return ttl;
}

function validateScopes(field: string, scopes: readonly string[]): string[] {
  if (scopes.length > LIMITS.maxScopes) throw invalid(field, `at most ${LIMITS.maxScopes} scopes`);
  unique(field, scopes);
  scopes.forEach((s, i) => {
    if (s.length === 0 || s.length > LIMITS.maxScopeLength || !isPrintableAscii(s)) {
      throw invalid(
        `${field}[${i}]`,
        `must be 1-${LIMITS.maxScopeLength} printable ASCII characters without spaces`,
      );
    }
  });
  return [...scopes];
}

function validateDepth(field: string, depth: number): number {
  if (!Number.isInteger(depth) || depth < 0 || depth > LIMITS.maxDelegationDepth) {
    throw invalid(field, `must be between 0 and ${LIMITS.maxDelegationDepth}`);
  }
  return depth;
}

function validateDelegates(field: string, ids: readonly string[]): string[] {
  if (ids.length > LIMITS.maxDelegates) throw invalid(field, `at most ${LIMITS.maxDelegates} delegates`);
  unique(field, ids);
  // Any trust domain: handing work to a federated agent is a policy decision, not a syntax error.
  return ids.map((id, i) => parseSpiffeId(`${field}[${i}]`, id).toString());
}

function validateDnsNames(field: string, names: readonly string[]): string[] {
  if (names.length > LIMITS.maxDnsNames) throw invalid(field, `at most ${LIMITS.maxDnsNames} DNS names`);
  unique(field, names);
  names.forEach((n, i) => {
    if (!isDnsName(n)) {
      throw invalid(
        `${field}[${i}]`,
        `${JSON.stringify(n)} is not a DNS name (labels of a-z 0-9 -, optional leading "*.")`,
      );
    }
  });
  return [...names];
}

function validateExpiry(field: string, at: Date, ctx: ValidationContext): Date {
  if (Number.isNaN(at.getTime())) throw invalid(field, 'not a valid timestamp');
  if (at.getTime() <= ctx.now.getTime()) throw invalid(field, `${at.toISOString()} is not in the future`);
  return at;
}

function matchMode(field: string, m: SelectorMatch): SelectorMatchMode {
  switch (m) {
    case SelectorMatch.SELECTOR_MATCH_UNSPECIFIED:
    case SelectorMatch.SELECTOR_MATCH_SUPERSET:
      return 'superset';
    case SelectorMatch.SELECTOR_MATCH_EXACT:
      return 'exact';
    case SelectorMatch.SELECTOR_MATCH_SUBSET:
      return 'subset';
    case SelectorMatch.SELECTOR_MATCH_ANY:
      return 'any';
    default:
      throw invalid(field, `unknown match value ${String(m)}`);
  }
}

function maskPath(field: string, p: string): MutableField {
  const snake = p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  if ((MUTABLE_FIELDS as readonly string[]).includes(snake)) return snake as MutableField;
  throw invalid(
    field,
    `${JSON.stringify(p)} is not a mutable entry field (one of ${MUTABLE_FIELDS.join(', ')})`,
  );
}

function unique(field: string, values: readonly string[]): void {
  const seen = new Set<string>();
  values.forEach((v, i) => {
    if (seen.has(v)) throw invalid(`${field}[${i}]`, `duplicate ${JSON.stringify(v)}`);
    seen.add(v);
  });
}

/** Visible ASCII, 0x21-0x7E: no spaces, no control characters. */
function isPrintableAscii(s: string): boolean {
  return /^[\x21-\x7e]*$/.test(s);
}

function isDnsName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every(
    (label, i) =>
      (i === 0 && label === '*' && labels.length > 1) ||
      /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label),
  );
}
