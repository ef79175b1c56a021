/**
 * The decoded-row layer both stores share. A decoded row has the table's column names and the values a
 * database with rich types returns: instants as Date, lists as arrays, booleans as booleans, bytes as Buffer,
 * absent values as null. PostgreSQL returns these rows as they are; SQLite decodes its integers and JSON text
 * into them (src/store/sqlite/codec.ts). Every mapping from a row to a domain record, and the record logic
 * both stores apply before writing, is written once here.
 */
import type { AuditCheckpoint } from '../audit/checkpoint';
import {
  MAX_AUDIT_PAGE,
  type AuditChainInfo,
  type AuditPage,
  type AuditQuery,
  type AuditQueryKey,
} from '../audit/log';
import { recordBody } from '../audit/chain';
import { parseRecord, type AuditRecord } from '../audit/record';
import {
  AlreadyExistsError,
  AuditChainBrokenError,
  BundleSequenceRegressedError,
  FederationRelationshipInUseError,
  InvalidArgumentError,
  NotFoundError,
  TokenExpiredError,
  TokenInvalidError,
  TokenSpentError,
} from '../errors';
import { decodePageToken, encodePageToken } from './page-token';
import { assertRevision } from './revision';
import { canonicalSelectors } from './selectors';
import type {
  BundleRecord,
  CaAuthorityRecord,
  CaAuthorityStatus,
  Entry,
  EntryFields,
  EntryPatch,
  FederatedBundleRecord,
  FederatedBundleUpdate,
  FederationRelationshipFields,
  FederationRelationshipPatch,
  FederationRelationshipRecord,
  GrantRecord,
  JoinTokenRecord,
  NewJoinToken,
  RevocationKind,
  RevocationRecord,
  Selector,
  SessionRecord,
} from './types';

// ---------------------------------------------------------------------------------------------------------
// Registration entries

export interface EntryRow {
  id: string;
  spiffe_id: string;
  parent_id: string;
  x509_svid_ttl_seconds: number;
  allowed_scopes: string[];
  max_delegation_depth: number;
  allowed_delegates: string[];
  admin: boolean;
  dns_names: string[];
  expires_at: Date | null;
  can_assert_principal: boolean;
  federates_with: string[];
  created_at: Date;
  updated_at: Date;
  revision: number;
}

export function entryFromRow(row: EntryRow, selectors: readonly Selector[]): Entry {
  const entry: Entry = {
    id: row.id,
    spiffeId: row.spiffe_id,
    // Sorted again in code-unit order: the one order every store returns.
    selectors: canonicalSelectors(selectors),
    x509SvidTtlSeconds: row.x509_svid_ttl_seconds,
    allowedScopes: row.allowed_scopes,
    maxDelegationDepth: row.max_delegation_depth,
    allowedDelegates: row.allowed_delegates,
    admin: row.admin,
    dnsNames: row.dns_names,
    canAssertPrincipal: row.can_assert_principal,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    revision: row.revision,
  };
  if (row.parent_id !== '') entry.parentId = row.parent_id;
  if (row.federates_with.length > 0) entry.federatesWith = row.federates_with;
  if (row.expires_at !== null) entry.expiresAt = row.expires_at;
  return entry;
}

/** The fields of `current` with `patch` applied: undefined keeps a field, null clears an optional one. */
export function applyEntryPatch(current: Entry, patch: EntryPatch): EntryFields {
  const { parentId, expiresAt, ...rest } = patch;
  const defined = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
  const next: EntryFields = { ...current, ...defined };
  if (parentId === null) delete next.parentId;
  else if (parentId !== undefined) next.parentId = parentId;
  if (expiresAt === null) delete next.expiresAt;
  else if (expiresAt !== undefined) next.expiresAt = expiresAt;
  return next;
}

/** Copies the caller's fields, so later changes to their arrays do not reach a returned Entry. */
export function normaliseEntryFields(fields: EntryFields): EntryFields {
  const out: EntryFields = {
    spiffeId: fields.spiffeId,
    selectors: canonicalSelectors(fields.selectors),
    x509SvidTtlSeconds: fields.x509SvidTtlSeconds,
    allowedScopes: [...fields.allowedScopes],
    maxDelegationDepth: fields.maxDelegationDepth,
    allowedDelegates: [...fields.allowedDelegates],
    admin: fields.admin,
    dnsNames: [...fields.dnsNames],
    canAssertPrincipal: fields.canAssertPrincipal,
  };
  if (fields.parentId) out.parentId = fields.parentId;
  if (fields.federatesWith !== undefined && fields.federatesWith.length > 0) {
    out.federatesWith = [...new Set(fields.federatesWith)].sort();
  }
  if (fields.expiresAt) out.expiresAt = new Date(fields.expiresAt.getTime());
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Join tokens

export interface JoinTokenRow {
  id: string;
  entry_id: string | null;
  spiffe_id: string;
  created_at: Date;
  expires_at: Date;
  spent_at: Date | null;
}

export function joinTokenFromRow(row: JoinTokenRow): JoinTokenRecord {
  const record: JoinTokenRecord = {
    id: row.id,
    spiffeId: row.spiffe_id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
  if (row.entry_id !== null) record.entryId = row.entry_id;
  if (row.spent_at !== null) record.spentAt = row.spent_at;
  return record;
}

/** The record of a token just stored (it holds no hash: only the store keeps that). */
export function newJoinTokenRecord(token: NewJoinToken, createdAt: Date): JoinTokenRecord {
  return {
    id: token.id,
    entryId: token.entryId,
    spiffeId: token.spiffeId,
    createdAt,
    expiresAt: new Date(token.expiresAt.getTime()),
  };
}

export function joinTokenExists(id: string): AlreadyExistsError {
  return new AlreadyExistsError(`join token ${id} (or its hash) already exists`);
}

/**
 * The token a hash found (`row`, if any), when it may be consumed at `now`.
 * @throws TokenInvalidError when no token has the hash; TokenSpentError / TokenExpiredError.
 */
export function consumableJoinToken(row: JoinTokenRow | undefined, now: Date): JoinTokenRecord {
  if (!row) throw new TokenInvalidError('join token is not valid');
  const record = joinTokenFromRow(row);
  if (record.spentAt) {
    throw new TokenSpentError(`join token ${record.id} was already used at ${record.spentAt.toISOString()}`);
  }
  if (record.expiresAt.getTime() <= now.getTime()) {
    throw new TokenExpiredError(`join token ${record.id} expired at ${record.expiresAt.toISOString()}`);
  }
  return record;
}

/** The single-use write found the token spent meanwhile. */
export function joinTokenSpent(id: string): TokenSpentError {
  return new TokenSpentError(`join token ${id} was already used`);
}

// ---------------------------------------------------------------------------------------------------------
// CA authorities and the trust bundle

export interface CaRow {
  id: string;
  status: CaAuthorityStatus;
  cert_der: Buffer;
  upstream_chain_der: Buffer[];
  key_ref: string;
  not_before: Date;
  not_after: Date;
  created_at: Date;
  activated_at: Date | null;
}

export interface BundleRow {
  trust_domain: string;
  sequence: number;
  x509_authorities_der: Buffer[];
  refresh_hint_seconds: number;
  updated_at: Date;
}

export function caFromRow(row: CaRow): CaAuthorityRecord {
  const record: CaAuthorityRecord = {
    id: row.id,
    status: row.status,
    certDer: Buffer.from(row.cert_der),
    upstreamChainDer: row.upstream_chain_der,
    keyRef: row.key_ref,
    notBefore: row.not_before,
    notAfter: row.not_after,
    createdAt: row.created_at,
  };
  if (row.activated_at !== null) record.activatedAt = row.activated_at;
  return record;
}

export function bundleFromRow(row: BundleRow): BundleRecord {
  return {
    trustDomain: row.trust_domain,
    sequence: row.sequence,
    x509AuthoritiesDer: row.x509_authorities_der,
    refreshHintSeconds: row.refresh_hint_seconds,
    updatedAt: row.updated_at,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Federation

export interface RelationshipRow {
  trust_domain: string;
  bundle_endpoint_url: string;
  profile: FederationRelationshipRecord['profile'];
  endpoint_spiffe_id: string | null;
  web_trust_roots_pem: string | null;
  created_at: Date;
  updated_at: Date;
  revision: number;
}

export interface FederatedBundleRow {
  trust_domain: string;
  bundle_json: string;
  sequence: number | null;
  refresh_hint_seconds: number | null;
  updated_at: Date;
  last_success_at: Date | null;
  last_attempt_at: Date | null;
  last_error: string;
}

export function relationshipFromRow(row: RelationshipRow): FederationRelationshipRecord {
  const r: FederationRelationshipRecord = {
    trustDomain: row.trust_domain,
    bundleEndpointUrl: row.bundle_endpoint_url,
    profile: row.profile,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    revision: row.revision,
  };
  if (row.endpoint_spiffe_id !== null) r.endpointSpiffeId = row.endpoint_spiffe_id;
  if (row.web_trust_roots_pem !== null) r.webTrustRootsPem = row.web_trust_roots_pem;
  return r;
}

export function federatedBundleFromRow(row: FederatedBundleRow): FederatedBundleRecord {
  const r: FederatedBundleRecord = {
    trustDomain: row.trust_domain,
    bundleJson: row.bundle_json,
    updatedAt: row.updated_at,
    lastError: row.last_error,
  };
  if (row.sequence !== null) r.sequence = row.sequence;
  if (row.refresh_hint_seconds !== null) r.refreshHintSeconds = row.refresh_hint_seconds;
  if (row.last_success_at !== null) r.lastSuccessAt = row.last_success_at;
  if (row.last_attempt_at !== null) r.lastAttemptAt = row.last_attempt_at;
  return r;
}

/** Copies the caller's fields of a relationship, without any extra keys they may carry. */
export function copyRelationshipFields(f: FederationRelationshipFields): FederationRelationshipFields {
  const out: FederationRelationshipFields = {
    trustDomain: f.trustDomain,
    bundleEndpointUrl: f.bundleEndpointUrl,
    profile: f.profile,
  };
  if (f.endpointSpiffeId !== undefined) out.endpointSpiffeId = f.endpointSpiffeId;
  if (f.webTrustRootsPem !== undefined) out.webTrustRootsPem = f.webTrustRootsPem;
  return out;
}

/** A new relationship from the caller's fields, at revision 1. */
export function newRelationship(
  fields: FederationRelationshipFields,
  now: Date,
): FederationRelationshipRecord {
  return { ...copyRelationshipFields(fields), createdAt: now, updatedAt: now, revision: 1 };
}

export function relationshipExists(trustDomain: string): AlreadyExistsError {
  return new AlreadyExistsError(
    `a federation relationship with trust domain "${trustDomain}" already exists`,
  );
}

export function relationshipNotFound(trustDomain: string): NotFoundError {
  return new NotFoundError(`no federation relationship with trust domain "${trustDomain}"`);
}

/**
 * `current` with `patch` applied, at the next revision: undefined keeps a field, null clears an optional one.
 * @throws RevisionConflictError when `current` is not at `expectedRevision`.
 */
export function patchRelationship(
  current: FederationRelationshipRecord,
  patch: FederationRelationshipPatch,
  expectedRevision: number,
  now: Date,
): FederationRelationshipRecord {
  assertRevision(
    `federation relationship "${current.trustDomain}"`,
    current,
    expectedRevision,
    're-read it and retry',
  );
  const { endpointSpiffeId, webTrustRootsPem, ...rest } = patch;
  const next: FederationRelationshipRecord = {
    ...current,
    ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
    updatedAt: now,
    revision: current.revision + 1,
  };
  if (endpointSpiffeId === null) delete next.endpointSpiffeId;
  else if (endpointSpiffeId !== undefined) next.endpointSpiffeId = endpointSpiffeId;
  if (webTrustRootsPem === null) delete next.webTrustRootsPem;
  else if (webTrustRootsPem !== undefined) next.webTrustRootsPem = webTrustRootsPem;
  return next;
}

/**
 * Refuses to delete a relationship that entries still federate with (`users`: up to 11 of their ids): such an
 * entry would hand its workloads nothing, silently.
 */
export function assertRelationshipUnused(trustDomain: string, users: readonly string[]): void {
  if (users.length > 0) {
    throw new FederationRelationshipInUseError(
      `entries federate with "${trustDomain}" (${users.slice(0, 10).join(', ')}${users.length > 10 ? ', ...' : ''}): remove it from their federates_with first`,
    );
  }
}

/**
 * The record a bundle update stores over `previous` (the stored row, if any). A publisher's sequence only grows
 * (bundle spec §4.1.1): a lower one is an old bundle replayed, and a bundle without a sequence cannot be
 * ordered, so it is accepted only when none is stored yet. Fails with BundleSequenceRegressedError, the stored
 * bundle kept.
 */
export function nextFederatedBundle(
  trustDomain: string,
  previous: FederatedBundleRow | undefined,
  update: FederatedBundleUpdate,
  now: Date,
): FederatedBundleRecord {
  if (previous !== undefined && previous.sequence !== null) {
    if (update.sequence === undefined || update.sequence < previous.sequence) {
      throw new BundleSequenceRegressedError(
        `bundle of "${trustDomain}" has spiffe_sequence ${update.sequence ?? '(none)'}, lower than the stored ${previous.sequence}: refused, the stored bundle is kept`,
      );
    }
  }
  const record: FederatedBundleRecord = {
    trustDomain,
    bundleJson: update.bundleJson,
    updatedAt: now,
    lastError: update.fetched ? '' : (previous?.last_error ?? ''),
  };
  if (update.sequence !== undefined) record.sequence = update.sequence;
  if (update.refreshHintSeconds !== undefined) record.refreshHintSeconds = update.refreshHintSeconds;
  const lastSuccess = update.fetched ? now : (previous?.last_success_at ?? null);
  if (lastSuccess !== null) record.lastSuccessAt = lastSuccess;
  const lastAttempt = update.fetched ? now : (previous?.last_attempt_at ?? null);
  if (lastAttempt !== null) record.lastAttemptAt = lastAttempt;
  return record;
}

// ---------------------------------------------------------------------------------------------------------
// Sessions, grants, revocations

export interface SessionRow {
  id: string;
  entry_id: string;
  spiffe_id: string;
  root_session_id: string;
  parent_session_id: string | null;
  principal_id: string;
  principal_issuer: string;
  principal_provenance: string;
  intent: string;
  scopes: string[];
  depth: number;
  depth_limit: number;
  created_at: Date;
  expires_at: Date;
  ended_at: Date | null;
  end_reason: string | null;
  opener_serial: string | null;
  parent_cert_serial: string | null;
}

export interface GrantRow {
  id: string;
  parent_session_id: string;
  child_spiffe_id: string;
  scopes: string[];
  not_after: Date;
  redeem_by: Date;
  binding_der: Buffer;
  signature: Buffer;
  parent_cert_der: Buffer;
  created_at: Date;
  redeemed_at: Date | null;
  redeemed_session_id: string | null;
  max_depth: number | null;
}

export interface RevocationRow {
  sequence: number;
  kind: RevocationKind;
  target_id: string;
  reason: string;
  revoked_at: Date;
  expires_at: Date;
  cause_sequence: number | null;
}

export const REVOCATION_COLUMNS = 'sequence, kind, target_id, reason, revoked_at, expires_at, cause_sequence';

/** A session from its row and the serials of the certificates issued to it, oldest first. */
export function sessionFromRow(row: SessionRow, certSerials: string[]): SessionRecord {
  const s: SessionRecord = {
    id: row.id,
    entryId: row.entry_id,
    spiffeId: row.spiffe_id,
    rootSessionId: row.root_session_id,
    principal: { id: row.principal_id, issuer: row.principal_issuer, provenance: row.principal_provenance },
    intent: row.intent,
    scopes: row.scopes,
    depth: row.depth,
    depthLimit: row.depth_limit,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    certSerials,
  };
  if (row.parent_session_id !== null) s.parentSessionId = row.parent_session_id;
  if (row.ended_at !== null) s.endedAt = row.ended_at;
  if (row.end_reason !== null) s.endReason = row.end_reason;
  if (row.opener_serial !== null) s.openerSerial = row.opener_serial;
  if (row.parent_cert_serial !== null) s.parentCertSerial = row.parent_cert_serial;
  return s;
}

export function grantFromRow(row: GrantRow): GrantRecord {
  const g: GrantRecord = {
    id: row.id,
    parentSessionId: row.parent_session_id,
    childSpiffeId: row.child_spiffe_id,
    scopes: row.scopes,
    notAfter: row.not_after,
    redeemBy: row.redeem_by,
    bindingDer: row.binding_der,
    signature: row.signature,
    parentCertDer: row.parent_cert_der,
    createdAt: row.created_at,
  };
  if (row.redeemed_at !== null) g.redeemedAt = row.redeemed_at;
  if (row.redeemed_session_id !== null) g.redeemedSessionId = row.redeemed_session_id;
  if (row.max_depth !== null) g.maxDepth = row.max_depth;
  return g;
}

export function revocationFromRow(row: RevocationRow): RevocationRecord {
  return {
    sequence: row.sequence,
    kind: row.kind,
    id: row.target_id,
    reason: row.reason,
    revokedAt: row.revoked_at,
    expiresAt: row.expires_at,
    ...(row.cause_sequence !== null ? { causeSequence: row.cause_sequence } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Audit chains

/** The indexed column of each audit query key. */
export const AUDIT_KEY_COLUMN: Record<AuditQueryKey, string> = {
  sessionId: 'session_id',
  rootSessionId: 'root_session_id',
  serial: 'serial',
  principal: 'principal',
  agentId: 'agent_id',
};

export interface AuditRecordRow {
  chain: string;
  seq: number;
  time: string;
  body: string;
  hash: string;
}

export interface AuditCheckpointRow {
  chain: string;
  seq: number;
  head_hash: string;
  time: string;
  key_id: string;
  signature: string;
}

/** The record as hashed (the stored canonical body) with its stored hash; verification checks the two agree. */
export function auditRecordFromRow(row: AuditRecordRow): AuditRecord {
  let body: unknown;
  try {
    body = JSON.parse(row.body);
  } catch {
    throw new AuditChainBrokenError(`audit record at ${row.chain}#${row.seq} is not JSON`);
  }
  return parseRecord({ ...(body as object), hash: row.hash });
}

export function auditCheckpointFromRow(row: AuditCheckpointRow): AuditCheckpoint {
  return {
    chain: row.chain,
    seq: row.seq,
    headHash: row.head_hash,
    time: row.time,
    keyId: row.key_id,
    signature: row.signature,
  };
}

/** The values of an audit_records row, in the column order of AUDIT_RECORD_COLUMNS. */
export const AUDIT_RECORD_COLUMNS =
  'chain, seq, time, event, session_id, root_session_id, serial, principal, agent_id, body, hash';

export function auditRecordValues(r: AuditRecord): (string | number | null)[] {
  return [
    r.chain,
    r.seq,
    r.time,
    r.event,
    r.sessionId ?? null,
    r.rootSessionId ?? null,
    r.serial ?? null,
    r.principal ?? null,
    r.agentId ?? null,
    recordBody(r),
    r.hash,
  ];
}

/** How many records one readRecords call returns at most, whatever the caller asks. */
export function auditReadLimit(limit: number): number {
  return Math.max(1, Math.min(limit, 100_000));
}

/**
 * What an audit query reads: the indexed column, the page size, and the (time, chain, seq) position after
 * which the page starts.
 * @throws InvalidArgumentError for an unknown key or a malformed page token.
 */
export function auditQueryPlan(q: AuditQuery): {
  column: string;
  size: number;
  after: readonly [string, string, number] | undefined;
} {
  const column = AUDIT_KEY_COLUMN[q.key];
  if (column === undefined) throw new InvalidArgumentError(`cannot query audit records by ${String(q.key)}`);
  const after = q.pageToken
    ? decodePageToken(q.pageToken, ['string', 'string', 'number'] as const)
    : undefined;
  return { column, size: Math.max(1, Math.min(q.pageSize ?? 100, MAX_AUDIT_PAGE)), after };
}

/** The page of `rows` (read with a limit of size + 1, so one more says there is a next page). */
export function auditPage(rows: readonly AuditRecordRow[], size: number): AuditPage {
  const more = rows.length > size;
  const page = rows.slice(0, size);
  const last = page[page.length - 1];
  return {
    records: page.map(auditRecordFromRow),
    nextPageToken: more && last !== undefined ? encodePageToken([last.time, last.chain, last.seq]) : '',
  };
}

export function auditChainFromRow(row: { chain: string; head: number; jwk: string | null }): AuditChainInfo {
  return { chain: row.chain, headSeq: row.head, ...(row.jwk !== null && { publicJwk: row.jwk }) };
}
