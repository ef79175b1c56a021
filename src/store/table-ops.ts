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

type SessionMethods =
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
  | 'nextCrlNumber';

/** The table modules of one store, on one connection or transaction. */
export interface StoreTables {
  readonly entries: {
    create: TableMethod<StoreOps['createEntry']>;
    get: TableMethod<StoreOps['getEntry']>;
    list: TableMethod<StoreOps['listEntries']>;
    update: TableMethod<StoreOps['updateEntry']>;
    delete: TableMethod<StoreOps['deleteEntry']>;
  };
  readonly joinTokens: {
    create: TableMethod<StoreOps['createJoinToken']>;
    consume: TableMethod<StoreOps['consumeJoinToken']>;
    prune: TableMethod<StoreOps['pruneJoinTokens']>;
  };
  readonly ca: {
    putAuthority: TableMethod<StoreOps['putCaAuthority']>;
    getAuthority: TableMethod<StoreOps['getCaAuthority']>;
    listAuthorities: TableMethod<StoreOps['listCaAuthorities']>;
    deleteAuthority: TableMethod<StoreOps['deleteCaAuthority']>;
    getBundle: TableMethod<StoreOps['getBundle']>;
    setBundle: TableMethod<StoreOps['setBundle']>;
  };
  readonly sessions: { [K in SessionMethods]: TableMethod<StoreOps[K]> };
  readonly federation: {
    create: TableMethod<StoreOps['createFederationRelationship']>;
    get: TableMethod<StoreOps['getFederationRelationship']>;
    list: TableMethod<StoreOps['listFederationRelationships']>;
    update: TableMethod<StoreOps['updateFederationRelationship']>;
    delete: TableMethod<StoreOps['deleteFederationRelationship']>;
    getBundle: TableMethod<StoreOps['getFederatedBundle']>;
    put: TableMethod<StoreOps['putFederatedBundle']>;
    recordFailure: TableMethod<StoreOps['recordFederatedFetchFailure']>;
  };
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
    return this.call(() => this.tables.entries.create(entry));
  }
  getEntry(id: string): Promise<T.Entry> {
    return this.call(() => this.tables.entries.get(id));
  }
  listEntries(filter: T.EntryFilter, page: T.PageRequest): Promise<T.EntryPage> {
    return this.call(() => this.tables.entries.list(filter, page));
  }
  updateEntry(id: string, patch: T.EntryPatch, expectedRevision: number): Promise<T.Entry> {
    return this.call(() => this.tables.entries.update(id, patch, expectedRevision));
  }
  deleteEntry(id: string, expectedRevision?: number): Promise<void> {
    return this.call(() => this.tables.entries.delete(id, expectedRevision));
  }
  createJoinToken(token: T.NewJoinToken): Promise<T.JoinTokenRecord> {
    return this.call(() => this.tables.joinTokens.create(token));
  }
  consumeJoinToken(tokenHash: Buffer, now: Date): Promise<T.JoinTokenRecord> {
    return this.call(() => this.tables.joinTokens.consume(tokenHash, now));
  }
  pruneJoinTokens(before: Date): Promise<number> {
    return this.call(() => this.tables.joinTokens.prune(before));
  }
  putCaAuthority(record: T.CaAuthorityRecord): Promise<void> {
    return this.call(() => this.tables.ca.putAuthority(record));
  }
  getCaAuthority(id: string): Promise<T.CaAuthorityRecord> {
    return this.call(() => this.tables.ca.getAuthority(id));
  }
  listCaAuthorities(): Promise<T.CaAuthorityRecord[]> {
    return this.call(() => this.tables.ca.listAuthorities());
  }
  deleteCaAuthority(id: string): Promise<void> {
    return this.call(() => this.tables.ca.deleteAuthority(id));
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
    return this.call(() => this.tables.federation.create(fields, bootstrap));
  }
  getFederationRelationship(trustDomain: string): Promise<T.FederationRelationshipRecord> {
    return this.call(() => this.tables.federation.get(trustDomain));
  }
  listFederationRelationships(): Promise<T.FederationRelationshipRecord[]> {
    return this.call(() => this.tables.federation.list());
  }
  updateFederationRelationship(
    trustDomain: string,
    patch: T.FederationRelationshipPatch,
    expectedRevision: number,
  ): Promise<T.FederationRelationshipRecord> {
    return this.call(() => this.tables.federation.update(trustDomain, patch, expectedRevision));
  }
  deleteFederationRelationship(trustDomain: string, expectedRevision?: number): Promise<void> {
    return this.call(() => this.tables.federation.delete(trustDomain, expectedRevision));
  }
  getFederatedBundle(trustDomain: string): Promise<T.FederatedBundleRecord | undefined> {
    return this.call(() => this.tables.federation.getBundle(trustDomain));
  }
  putFederatedBundle(
    trustDomain: string,
    update: T.FederatedBundleUpdate,
    now: Date,
  ): Promise<T.FederatedBundleRecord> {
    return this.call(() => this.tables.federation.put(trustDomain, update, now));
  }
  recordFederatedFetchFailure(trustDomain: string, error: string, now: Date): Promise<void> {
    return this.call(() => this.tables.federation.recordFailure(trustDomain, error, now));
  }
}
