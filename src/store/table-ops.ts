import type { AuditStore } from '../audit/log';
import type { StoreOps } from './store';
import type * as T from './types';

/**
 * A StoreOps method as a table module implements it: the SQLite modules return the value (their connection is
 * synchronous), the PostgreSQL ones a promise.
 */
type TableMethod<F> = F extends (...args: infer A) => Promise<infer R>
  ? (...args: A) => R | Promise<R>
  : never;

/** A table module's share of StoreOps: the methods `M`, under their StoreOps names. */
type Table<M extends keyof StoreOps> = { readonly [K in M]: TableMethod<StoreOps[K]> };

/** The table modules of one store, on one connection or transaction. */
export interface StoreTables {
  readonly entries: Table<'createEntry' | 'getEntry' | 'listEntries' | 'updateEntry' | 'deleteEntry'>;
  readonly joinTokens: Table<'createJoinToken' | 'consumeJoinToken' | 'pruneJoinTokens'>;
  readonly ca: Table<
    | 'putCaAuthority'
    | 'getCaAuthority'
    | 'listCaAuthorities'
    | 'deleteCaAuthority'
    | 'getBundle'
    | 'setBundle'
  >;
  readonly sessions: Table<
    | 'createSession'
    | 'getSession'
    | 'listSessions'
    | 'addSessionCertificate'
    | 'countAgentSessions'
    | 'countLiveSessions'
    | 'endSessionTree'
    | 'createGrant'
    | 'getGrant'
    | 'markGrantRedeemed'
    | 'addRevocation'
    | 'getRevocation'
    | 'listRevocations'
    | 'lastRevocationSequence'
    | 'pruneRevocations'
    | 'listRevokedSerials'
    | 'listRevokedSerialsAfter'
    | 'pruneGrants'
    | 'pruneSessions'
    | 'nextCrlNumber'
  >;
  readonly federation: Table<
    | 'createFederationRelationship'
    | 'getFederationRelationship'
    | 'listFederationRelationships'
    | 'updateFederationRelationship'
    | 'deleteFederationRelationship'
    | 'getFederatedBundle'
    | 'putFederatedBundle'
    | 'recordFederatedFetchFailure'
  >;
}

/**
 * How a store runs one table call: SQLite takes its connection lock (or checks that a transaction handle is
 * still open), PostgreSQL only makes the result a promise (its Runner guards each statement).
 */
export type TableCall = <R>(op: () => R | Promise<R>) => Promise<R>;

/** StoreOps over the table modules: both stores share this routing and differ only in `call`. */
export class TableOps implements StoreOps {
  constructor(
    protected readonly tables: StoreTables,
    private readonly call: TableCall,
    readonly audit: Pick<AuditStore, 'append'>,
  ) {}

  createEntry(entry: T.NewEntry): Promise<T.Entry> {
    return this.call(() => this.tables.entries.createEntry(entry));
  }
  getEntry(id: string): Promise<T.Entry> {
    return this.call(() => this.tables.entries.getEntry(id));
  }
  listEntries(filter: T.EntryFilter, page: T.PageRequest): Promise<T.EntryPage> {
    return this.call(() => this.tables.entries.listEntries(filter, page));
  }
  updateEntry(id: string, patch: T.EntryPatch, expectedRevision: number): Promise<T.Entry> {
    return this.call(() => this.tables.entries.updateEntry(id, patch, expectedRevision));
  }
  deleteEntry(id: string, expectedRevision?: number): Promise<void> {
    return this.call(() => this.tables.entries.deleteEntry(id, expectedRevision));
  }
  createJoinToken(token: T.NewJoinToken): Promise<T.JoinTokenRecord> {
    return this.call(() => this.tables.joinTokens.createJoinToken(token));
  }
  consumeJoinToken(tokenHash: Buffer, now: Date): Promise<T.JoinTokenRecord> {
    return this.call(() => this.tables.joinTokens.consumeJoinToken(tokenHash, now));
  }
  pruneJoinTokens(before: Date): Promise<number> {
    return this.call(() => this.tables.joinTokens.pruneJoinTokens(before));
  }
  putCaAuthority(record: T.CaAuthorityRecord): Promise<void> {
    return this.call(() => this.tables.ca.putCaAuthority(record));
  }
  getCaAuthority(id: string): Promise<T.CaAuthorityRecord> {
    return this.call(() => this.tables.ca.getCaAuthority(id));
  }
  listCaAuthorities(): Promise<T.CaAuthorityRecord[]> {
    return this.call(() => this.tables.ca.listCaAuthorities());
  }
  deleteCaAuthority(id: string): Promise<void> {
    return this.call(() => this.tables.ca.deleteCaAuthority(id));
  }
  getBundle(trustDomain: string): Promise<T.BundleRecord | undefined> {
    return this.call(() => this.tables.ca.getBundle(trustDomain));
  }
  setBundle(trustDomain: string, update: T.BundleUpdate): Promise<T.BundleRecord> {
    return this.call(() => this.tables.ca.setBundle(trustDomain, update));
  }
  createSession(session: T.NewSession): Promise<T.SessionRecord> {
    return this.call(() => this.tables.sessions.createSession(session));
  }
  getSession(id: string): Promise<T.SessionRecord> {
    return this.call(() => this.tables.sessions.getSession(id));
  }
  listSessions(q: T.SessionQuery): Promise<T.SessionRecord[]> {
    return this.call(() => this.tables.sessions.listSessions(q));
  }
  addSessionCertificate(sessionId: string, serialHex: string, notAfter: Date): Promise<void> {
    return this.call(() => this.tables.sessions.addSessionCertificate(sessionId, serialHex, notAfter));
  }
  countAgentSessions(entryId: string, now: Date, endedSince: Date): Promise<T.AgentSessionCounts> {
    return this.call(() => this.tables.sessions.countAgentSessions(entryId, now, endedSince));
  }
  countLiveSessions(now: Date): Promise<number> {
    return this.call(() => this.tables.sessions.countLiveSessions(now));
  }
  endSessionTree(
    id: string,
    now: Date,
    reason: string,
  ): Promise<{ ended: T.SessionRecord[]; revocations: T.RevocationRecord[] }> {
    return this.call(() => this.tables.sessions.endSessionTree(id, now, reason));
  }
  createGrant(grant: T.NewGrant): Promise<T.GrantRecord> {
    return this.call(() => this.tables.sessions.createGrant(grant));
  }
  getGrant(id: string): Promise<T.GrantRecord> {
    return this.call(() => this.tables.sessions.getGrant(id));
  }
  markGrantRedeemed(id: string, now: Date, sessionId: string): Promise<T.GrantRecord> {
    return this.call(() => this.tables.sessions.markGrantRedeemed(id, now, sessionId));
  }
  addRevocation(revocation: T.NewRevocation, now: Date): Promise<T.RevocationRecord> {
    return this.call(() => this.tables.sessions.addRevocation(revocation, now));
  }
  getRevocation(kind: T.RevocationKind, id: string): Promise<T.RevocationRecord | undefined> {
    return this.call(() => this.tables.sessions.getRevocation(kind, id));
  }
  listRevocations(afterSequence: number, limit?: number): Promise<T.RevocationRecord[]> {
    return this.call(() => this.tables.sessions.listRevocations(afterSequence, limit));
  }
  lastRevocationSequence(): Promise<number> {
    return this.call(() => this.tables.sessions.lastRevocationSequence());
  }
  pruneRevocations(before: Date): Promise<number> {
    return this.call(() => this.tables.sessions.pruneRevocations(before));
  }
  listRevokedSerials(now: Date): Promise<T.RevokedSerialRecord[]> {
    return this.call(() => this.tables.sessions.listRevokedSerials(now));
  }
  listRevokedSerialsAfter(afterSequence: number, now: Date): Promise<T.RevokedSerialsDelta> {
    return this.call(() => this.tables.sessions.listRevokedSerialsAfter(afterSequence, now));
  }
  pruneGrants(before: Date): Promise<number> {
    return this.call(() => this.tables.sessions.pruneGrants(before));
  }
  pruneSessions(expiredBefore: Date, now: Date): Promise<number> {
    return this.call(() => this.tables.sessions.pruneSessions(expiredBefore, now));
  }
  nextCrlNumber(): Promise<bigint> {
    return this.call(() => this.tables.sessions.nextCrlNumber());
  }
  createFederationRelationship(
    fields: T.FederationRelationshipFields,
    bootstrap?: T.FederatedBundleUpdate,
  ): Promise<T.FederationRelationshipRecord> {
    return this.call(() => this.tables.federation.createFederationRelationship(fields, bootstrap));
  }
  getFederationRelationship(trustDomain: string): Promise<T.FederationRelationshipRecord> {
    return this.call(() => this.tables.federation.getFederationRelationship(trustDomain));
  }
  listFederationRelationships(): Promise<T.FederationRelationshipRecord[]> {
    return this.call(() => this.tables.federation.listFederationRelationships());
  }
  updateFederationRelationship(
    trustDomain: string,
    patch: T.FederationRelationshipPatch,
    expectedRevision: number,
  ): Promise<T.FederationRelationshipRecord> {
    return this.call(() =>
      this.tables.federation.updateFederationRelationship(trustDomain, patch, expectedRevision),
    );
  }
  deleteFederationRelationship(trustDomain: string, expectedRevision?: number): Promise<void> {
    return this.call(() =>
      this.tables.federation.deleteFederationRelationship(trustDomain, expectedRevision),
    );
  }
  getFederatedBundle(trustDomain: string): Promise<T.FederatedBundleRecord | undefined> {
    return this.call(() => this.tables.federation.getFederatedBundle(trustDomain));
  }
  putFederatedBundle(
    trustDomain: string,
    update: T.FederatedBundleUpdate,
    now: Date,
  ): Promise<T.FederatedBundleRecord> {
    return this.call(() => this.tables.federation.putFederatedBundle(trustDomain, update, now));
  }
  recordFederatedFetchFailure(trustDomain: string, error: string, now: Date): Promise<void> {
    return this.call(() => this.tables.federation.recordFederatedFetchFailure(trustDomain, error, now));
  }
}
