/**
 * The decoded-row layer both stores share. A decoded row has the table's column names and the values a
 * database with rich types returns: instants as Date, lists as arrays, booleans as booleans, bytes as Buffer,
 * absent values as null. PostgreSQL returns these rows as they are; SQLite decodes its integers and JSON text
 * into them (src/store/sqlite/codec.ts). Every mapping from a row to a domain record, and the record logic
 * both stores apply before writing, is written once here.
 */
import { randomUUID } from 'node:crypto';
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
  GrantNotFoundError,
  GrantReplayedError,
  InvalidArgumentError,
  NotFoundError,
  TokenExpiredError,
  TokenInvalidError,
  TokenSpentError,
} from '../errors';
import { decodePageToken, encodePageToken } from './page-token';
import { assertRevision } from './revision';
import { canonicalSelectors } from './selectors';
import { columnValues, fieldsOf, recordFromRow, type RowOf } from './record-columns';
import type {
  BundleRecord,
  CaAuthorityRecord,
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
  NewEntry,
  NewGrant,
  NewJoinToken,
  NewRevocation,
  NewSession,
  RevocationRecord,
  Selector,
  SessionRecord,
} from './types';

// ---------------------------------------------------------------------------------------------------------
// Registration entries

const ENTRY_FIELDS = fieldsOf<Entry>()(
  'id spiffeId selectors x509SvidTtlSeconds allowedScopes maxDelegationDepth allowedDelegates admin dnsNames canAssertPrincipal createdAt updatedAt revision parentId federatesWith expiresAt',
);

/** An entry's row: '' is no parent and [] federates with none (the uniqueness rule and the filters need values). */
export type EntryRow = RowOf<
  Entry,
  Exclude<(typeof ENTRY_FIELDS)[number], 'selectors' | 'parentId' | 'federatesWith'>
> & { parent_id: string; federates_with: string[] };

const entryRecord = recordFromRow<Entry, EntryRow & { selectors: readonly Selector[] }>(
  ENTRY_FIELDS,
  (row) => ({
    // Sorted again in code-unit order: the one order every store returns.
    selectors: canonicalSelectors(row.selectors),
    parentId: row.parent_id === '' ? undefined : row.parent_id,
    federatesWith: row.federates_with.length > 0 ? row.federates_with : undefined,
  }),
);

/** As entryRecord, for selectors already canonical (the row's own selectors_key: selectorSetKey's pairs). */
const entryRecordFromKey = recordFromRow<Entry, EntryRow & { selectors: Selector[] }>(
  ENTRY_FIELDS,
  (row) => ({
    selectors: row.selectors,
    parentId: row.parent_id === '' ? undefined : row.parent_id,
    federatesWith: row.federates_with.length > 0 ? row.federates_with : undefined,
  }),
);

export function entryFromRow(row: EntryRow, selectors: readonly Selector[]): Entry {
  return entryRecord({ ...row, selectors });
}

/**
 * The entry of a row, its selectors read from the row's `selectors_key` column: the canonical JSON of the set
 * (selectorSetKey), written with the selector rows in the same statement of every write and the key the exact
 * selector-set filter and the uniqueness rule already compare. It lists the pairs deduplicated and in code-unit
 * order, the order entryFromRow sorts into, so the entry equals entryFromRow's over the selector rows without
 * reading them (the caller's one statement, src/store/sqlite/caller-read.ts).
 */
export function entryFromRowWithKey(row: EntryRow & { selectors_key: string }): Entry {
  const pairs = JSON.parse(row.selectors_key) as [string, string][];
  const selectors = pairs.map(([type, value]) => ({ type, value }));
  return entryRecordFromKey({ ...row, selectors });
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

/** A new entry from the caller's fields, at revision 1, with a random id when the caller gives none. */
export function newEntry(input: NewEntry, now: Date): Entry {
  return {
    ...normaliseEntryFields(input),
    id: input.id ?? randomUUID(),
    createdAt: now,
    updatedAt: now,
    revision: 1,
  };
}

/**
 * `current` with `patch` applied, at the next revision.
 * @throws RevisionConflictError when `current` is not at `expectedRevision`.
 */
export function patchEntry(current: Entry, patch: EntryPatch, expectedRevision: number, now: Date): Entry {
  assertRevision(`entry ${JSON.stringify(current.id)}`, current, expectedRevision, 're-read it and retry');
  return {
    id: current.id,
    createdAt: current.createdAt,
    ...normaliseEntryFields(applyEntryPatch(current, patch)),
    updatedAt: now,
    revision: current.revision + 1,
  };
}

/**
 * Refuses `entry` unless it is unique: `idTaken` (when creating: an entry already has its id), and `holder` (the
 * entry with its SPIFFE ID, parent and selector set, if any) is no other entry.
 */
export function assertEntryUnique(entry: Entry, holder: { id: string } | undefined, idTaken = false): void {
  if (idTaken) throw new AlreadyExistsError(`an entry with id ${JSON.stringify(entry.id)} already exists`);
  if (holder && holder.id !== entry.id) {
    throw new AlreadyExistsError(
      `entry ${JSON.stringify(holder.id)} already has SPIFFE ID ${entry.spiffeId}` +
        `${entry.parentId ? `, parent ${entry.parentId}` : ''} and the same selectors`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Join tokens

const JOIN_TOKEN_FIELDS = fieldsOf<JoinTokenRecord>()('id spiffeId createdAt expiresAt entryId spentAt');

export type JoinTokenRow = RowOf<JoinTokenRecord, (typeof JOIN_TOKEN_FIELDS)[number]>;

export const joinTokenFromRow = recordFromRow<JoinTokenRecord, JoinTokenRow>(JOIN_TOKEN_FIELDS);

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

const CA_FIELDS = fieldsOf<CaAuthorityRecord>()(
  'id status certDer upstreamChainDer keyRef notBefore notAfter createdAt activatedAt',
);

const BUNDLE_FIELDS = fieldsOf<BundleRecord>()(
  'trustDomain sequence x509AuthoritiesDer refreshHintSeconds updatedAt',
);

export type CaRow = RowOf<CaAuthorityRecord, (typeof CA_FIELDS)[number]>;
export type BundleRow = RowOf<BundleRecord, (typeof BUNDLE_FIELDS)[number]>;

// A copy of the certificate: the record's owner may keep it longer than the driver's buffer.
export const caFromRow = recordFromRow<CaAuthorityRecord, CaRow>(CA_FIELDS, (row) => ({
  certDer: Buffer.from(row.cert_der),
}));

export const bundleFromRow = recordFromRow<BundleRecord, BundleRow>(BUNDLE_FIELDS);

// ---------------------------------------------------------------------------------------------------------
// Federation

const RELATIONSHIP_FIELDS = fieldsOf<FederationRelationshipRecord>()(
  'trustDomain bundleEndpointUrl profile createdAt updatedAt revision endpointSpiffeId webTrustRootsPem',
);

const FEDERATED_BUNDLE_FIELDS = fieldsOf<FederatedBundleRecord>()(
  'trustDomain bundleJson updatedAt lastError sequence refreshHintSeconds lastSuccessAt lastAttemptAt',
);

export type RelationshipRow = RowOf<FederationRelationshipRecord, (typeof RELATIONSHIP_FIELDS)[number]>;
export type FederatedBundleRow = RowOf<FederatedBundleRecord, (typeof FEDERATED_BUNDLE_FIELDS)[number]>;

export const relationshipFromRow = recordFromRow<FederationRelationshipRecord, RelationshipRow>(
  RELATIONSHIP_FIELDS,
);

export const federatedBundleFromRow = recordFromRow<FederatedBundleRecord, FederatedBundleRow>(
  FEDERATED_BUNDLE_FIELDS,
);

/** The columns of a relationship's row, for an INSERT or UPDATE. */
export function relationshipColumns(r: FederationRelationshipRecord): Record<string, unknown> {
  return columnValues(r, RELATIONSHIP_FIELDS);
}

/** The columns of a federated bundle's row, for its upsert. */
export function federatedBundleColumns(r: FederatedBundleRecord): Record<string, unknown> {
  return columnValues(r, FEDERATED_BUNDLE_FIELDS);
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

const SESSION_FIELDS = fieldsOf<SessionRecord>()(
  'id entryId spiffeId rootSessionId principal intent scopes depth depthLimit expiresAt createdAt certSerials parentSessionId endedAt endReason openerSerial parentCertSerial',
);

const GRANT_FIELDS = fieldsOf<GrantRecord>()(
  'id parentSessionId childSpiffeId scopes notAfter redeemBy bindingDer signature parentCertDer createdAt redeemedAt redeemedSessionId maxDepth',
);

const REVOCATION_FIELDS = fieldsOf<RevocationRecord>()(
  'sequence kind id reason revokedAt expiresAt causeSequence',
);

/** A session's row: its principal in three columns; the serials of its certificates are another table's. */
export type SessionRow = RowOf<
  SessionRecord,
  Exclude<(typeof SESSION_FIELDS)[number], 'principal' | 'certSerials'>
> & { principal_id: string; principal_issuer: string; principal_provenance: string };
export type GrantRow = RowOf<GrantRecord, (typeof GRANT_FIELDS)[number]>;
/** A revocation's row: the revoked session or certificate is its target_id. */
export type RevocationRow = RowOf<RevocationRecord, Exclude<(typeof REVOCATION_FIELDS)[number], 'id'>> & {
  target_id: string;
};

const NEW_SESSION_FIELDS = fieldsOf<NewSession & SessionPrincipalColumns & { createdAt: Date }>()(
  'id entryId spiffeId rootSessionId parentSessionId principalId principalIssuer principalProvenance intent scopes depth depthLimit createdAt expiresAt openerSerial parentCertSerial',
);

interface SessionPrincipalColumns {
  principalId: string;
  principalIssuer: string;
  principalProvenance: string;
}

/** The columns of a new session's row. */
export function newSessionColumns(s: NewSession, createdAt: Date): Record<string, unknown> {
  const { id, issuer, provenance } = s.principal;
  return columnValues(
    { ...s, principalId: id, principalIssuer: issuer, principalProvenance: provenance, createdAt },
    NEW_SESSION_FIELDS,
  );
}

const NEW_GRANT_FIELDS = fieldsOf<GrantRecord>()(
  'id parentSessionId childSpiffeId scopes notAfter redeemBy bindingDer signature parentCertDer createdAt maxDepth',
);

/** The columns of a new grant's row. */
export function newGrantColumns(g: NewGrant, createdAt: Date): Record<string, unknown> {
  return columnValues({ ...g, createdAt }, NEW_GRANT_FIELDS);
}

export function sessionExists(id: string): AlreadyExistsError {
  return new AlreadyExistsError(`session ${id} already exists (or its parent does not)`);
}

export function sessionNotFound(id: string): NotFoundError {
  return new NotFoundError(`session ${id} does not exist`);
}

export function grantExists(id: string): AlreadyExistsError {
  return new AlreadyExistsError(
    `grant ${id} already exists (a child key is granted once) or its session does not`,
  );
}

export function grantNotFound(id: string): GrantNotFoundError {
  return new GrantNotFoundError(`grant ${id} does not exist`);
}

export function grantReplayed(id: string): GrantReplayedError {
  return new GrantReplayedError(`grant ${id} was already redeemed`);
}

/**
 * The revocation of session `id` (ending at `expiresAt`: every SVID of a session expires by then) that ending a
 * session tree records. Only the first of the tree (`cause` undefined) holds the reason: a cascade over many
 * descendants must not copy it into each of them, they name the first as their cause.
 */
export function sessionTreeRevocation(
  id: string,
  expiresAt: Date,
  reason: string,
  cause: RevocationRecord | undefined,
): NewRevocation {
  return {
    kind: 'session',
    id,
    reason: cause === undefined ? reason : '',
    expiresAt,
    ...(cause !== undefined ? { causeSequence: cause.sequence } : {}),
  };
}

export const REVOCATION_COLUMNS = 'sequence, kind, target_id, reason, revoked_at, expires_at, cause_sequence';

const sessionRecord = recordFromRow<SessionRecord, SessionRow & { cert_serials: string[] }>(
  SESSION_FIELDS,
  (row) => ({
    principal: { id: row.principal_id, issuer: row.principal_issuer, provenance: row.principal_provenance },
  }),
);

/** A session from its row and the serials of the certificates issued to it, oldest first. */
export function sessionFromRow(row: SessionRow, certSerials: string[]): SessionRecord {
  return sessionRecord({ ...row, cert_serials: certSerials });
}

export const grantFromRow = recordFromRow<GrantRecord, GrantRow>(GRANT_FIELDS);

export const revocationFromRow = recordFromRow<RevocationRecord, RevocationRow>(REVOCATION_FIELDS, (row) => ({
  id: row.target_id,
}));

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

const AUDIT_CHECKPOINT_FIELDS = fieldsOf<AuditCheckpoint>()('chain seq headHash time keyId signature');

export type AuditCheckpointRow = RowOf<AuditCheckpoint, (typeof AUDIT_CHECKPOINT_FIELDS)[number]>;

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

export const auditCheckpointFromRow = recordFromRow<AuditCheckpoint, AuditCheckpointRow>(
  AUDIT_CHECKPOINT_FIELDS,
);

/** The columns an audit record is written to, in the order of auditRecordValues. */
export const AUDIT_RECORD_COLUMNS =
  'chain, seq, time, event, session_id, root_session_id, serial, principal, agent_id, body, hash';

/**
 * The values of an audit_records row, in the column order of AUDIT_RECORD_COLUMNS.
 * @param body the record's canonical body when the caller has it already (chainRecord gives it)
 */
export function auditRecordValues(r: AuditRecord, body?: string): (string | number | null)[] {
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
    body ?? recordBody(r),
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
