import type { AuditStore } from '../audit/log';
import type {
  BundleRecord,
  BundleUpdate,
  CaAuthorityRecord,
  Entry,
  EntryFilter,
  EntryPage,
  EntryPatch,
  GrantRecord,
  JoinTokenRecord,
  NewEntry,
  NewGrant,
  NewJoinToken,
  NewRevocation,
  NewSession,
  PageRequest,
  SessionQuery,
  RevocationKind,
  RevocationRecord,
  RevokedSerialRecord,
  RevokedSerialsDelta,
  SessionRecord,
  AgentSessionCounts,
  FederatedBundleRecord,
  FederatedBundleUpdate,
  FederationRelationshipFields,
  FederationRelationshipPatch,
  FederationRelationshipRecord,
} from './types';

/** Page size used when a caller asks for more. */
export const MAX_PAGE_SIZE = 1000;

/**
 * Everything the server persists. Each method that changes state is atomic on its own: when it throws,
 * nothing changed. Several methods that must succeed or fail together go through `Store.transaction`.
 *
 * Errors are typed (src/errors.ts): NotFoundError, AlreadyExistsError, RevisionConflictError,
 * JoinTokenError (ERR_TOKEN_INVALID / ERR_TOKEN_EXPIRED / ERR_TOKEN_SPENT), LanyardError(ERR_INVALID_ARGUMENT)
 * for a malformed page token, StoreError(ERR_STORE_CLOSED) after close.
 *
 * The store checks only what it needs for its own invariants (uniqueness, revisions, single use); the
 * syntax of SPIFFE IDs, selectors and scopes is the caller's job.
 */
export interface StoreOps {
  /**
   * Audit appends. On the store, each append is its own durable transaction. On a `transaction` handle the
   * record is written inside that transaction (head read and insert there too, so the chain stays linear):
   * it commits with the state change it describes, or neither does.
   */
  readonly audit: Pick<AuditStore, 'append'>;

  // --- registration entries ---
  /** @throws AlreadyExistsError for a taken id, or the same SPIFFE ID + parent ID + selector set. */
  createEntry(entry: NewEntry): Promise<Entry>;
  /** @throws NotFoundError */
  getEntry(id: string): Promise<Entry>;
  listEntries(filter: EntryFilter, page: PageRequest): Promise<EntryPage>;
  /**
   * Applies `patch` when the stored revision equals `expectedRevision`; the result has revision + 1.
   * @throws NotFoundError, RevisionConflictError, AlreadyExistsError (the patch collides with another entry)
   */
  updateEntry(id: string, patch: EntryPatch, expectedRevision: number): Promise<Entry>;
  /**
   * @param expectedRevision when given, deletes only at that revision.
   * @throws NotFoundError, RevisionConflictError
   */
  deleteEntry(id: string, expectedRevision?: number): Promise<void>;

  // --- join tokens (only the SHA-256 of the secret reaches the store) ---
  /** @throws AlreadyExistsError when the id or hash is taken. */
  createJoinToken(token: NewJoinToken): Promise<JoinTokenRecord>;
  /**
   * Marks the token spent and returns it, atomically: of several concurrent calls for one token, across
   * connections and processes, exactly one succeeds.
   * @throws JoinTokenError ERR_TOKEN_INVALID (unknown), ERR_TOKEN_SPENT (checked first: a replay is reported
   *   as a replay even after expiry), ERR_TOKEN_EXPIRED (expiresAt <= now)
   */
  consumeJoinToken(tokenHash: Buffer, now: Date): Promise<JoinTokenRecord>;
  /** Deletes tokens that expired before `before` (spent or not). Returns how many. */
  pruneJoinTokens(before: Date): Promise<number>;

  // --- CA state (the CA engine owns the semantics; the store keeps the records) ---
  /** Inserts or replaces by id. At most one authority is 'active': @throws AlreadyExistsError otherwise. */
  putCaAuthority(record: CaAuthorityRecord): Promise<void>;
  /** @throws NotFoundError */
  getCaAuthority(id: string): Promise<CaAuthorityRecord>;
  /** Ordered by notBefore, then id. */
  listCaAuthorities(): Promise<CaAuthorityRecord[]>;
  /** @throws NotFoundError */
  deleteCaAuthority(id: string): Promise<void>;
  getBundle(trustDomain: string): Promise<BundleRecord | undefined>;
  /** Replaces the bundle and increments its sequence (1 for the first), in one step. */
  setBundle(trustDomain: string, update: BundleUpdate): Promise<BundleRecord>;

  // --- task sessions, delegation grants, revocations ---
  /** @throws AlreadyExistsError for a taken id or a parentSessionId that does not exist. */
  createSession(session: NewSession): Promise<SessionRecord>;
  /** @throws NotFoundError */
  getSession(id: string): Promise<SessionRecord>;
  /** Sessions matching `q`, newest first (then by id), at most `q.limit`. */
  listSessions(q: SessionQuery): Promise<SessionRecord[]>;
  /** Records the serial of an SVID issued for the session (a serial recorded twice is kept once). */
  addSessionCertificate(sessionId: string, serialHex: string, notAfter: Date): Promise<void>;
  /** What the per-agent session limits count for `entryId` at `now` (see AgentSessionCounts). */
  countAgentSessions(entryId: string, now: Date, endedSince: Date): Promise<AgentSessionCounts>;
  /** Sessions of every agent neither ended nor expired at `now` (the metrics' active sessions). */
  countLiveSessions(now: Date): Promise<number>;
  /**
   * Ends the session and every session delegated from it, transitively, and records one session revocation
   * for each session it ended (expiring with the session), atomically. Already-ended sessions are not ended
   * again. The first revocation carries `reason`; the others name it as their cause and carry none.
   * @throws NotFoundError
   */
  endSessionTree(
    id: string,
    now: Date,
    reason: string,
  ): Promise<{ ended: SessionRecord[]; revocations: RevocationRecord[] }>;
  /** @throws AlreadyExistsError when the id (the child key's hash) was granted before. */
  createGrant(grant: NewGrant): Promise<GrantRecord>;
  /** @throws SessionError(ERR_GRANT_NOT_FOUND) */
  getGrant(id: string): Promise<GrantRecord>;
  /**
   * Marks the grant redeemed by `sessionId`, atomically: of concurrent calls exactly one succeeds.
   * @throws SessionError(ERR_GRANT_NOT_FOUND), SessionError(ERR_GRANT_REPLAYED)
   */
  markGrantRedeemed(id: string, now: Date, sessionId: string): Promise<GrantRecord>;
  /** Records a revocation with the next sequence; revoking the same target again returns the first record. */
  addRevocation(revocation: NewRevocation, now: Date): Promise<RevocationRecord>;
  getRevocation(kind: RevocationKind, id: string): Promise<RevocationRecord | undefined>;
  /** Revocations with a sequence above `afterSequence`, in sequence order; at most `limit` when given. */
  listRevocations(afterSequence: number, limit?: number): Promise<RevocationRecord[]>;
  /** The highest sequence ever assigned (0 before the first), even when that record was pruned since. */
  lastRevocationSequence(): Promise<number>;
  /** Drops revocations whose expiresAt is before `before`. Returns how many. */
  pruneRevocations(before: Date): Promise<number>;
  /**
   * Every serial a CRL must list at `now`: certificate revocations, and each recorded certificate of a
   * revoked session, that have not expired yet. A serial listed both ways appears once, with the earlier
   * revocation time. Ordered by serial.
   */
  listRevokedSerials(now: Date): Promise<RevokedSerialRecord[]>;
  /**
   * The serials the revocations with a sequence above `afterSequence` add to a CRL at `now` (unexpired
   * certificate revocations, and each unexpired recorded certificate of a revoked session), not merged: a
   * serial may appear twice. For building the CRL incrementally.
   */
  listRevokedSerialsAfter(afterSequence: number, now: Date): Promise<RevokedSerialsDelta>;
  /**
   * Drops grants that can no longer be redeemed: their redeemBy is before `before`. Safe for replay
   * protection because CreateGrant refuses a binding whose redeemBy has passed, so a pruned grant's binding
   * cannot come back. Returns how many.
   */
  pruneGrants(before: Date): Promise<number>;
  /**
   * Drops sessions that expired before `expiredBefore`, with their recorded serials and grants, keeping any
   * session with a certificate still valid at `now` and every ancestor of a kept session. Returns how many.
   */
  pruneSessions(expiredBefore: Date, now: Date): Promise<number>;
  /**
   * The next cRLNumber (RFC 5280 §5.2.3), persisted before it is returned: it grows with every call, across
   * restarts and CA rotations, and is never handed out twice.
   */
  nextCrlNumber(): Promise<bigint>;

  // --- SPIFFE federation ---
  /**
   * Creates the relationship and, when `bootstrap` is given, its first bundle, together.
   * @throws AlreadyExistsError when the trust domain has one.
   */
  createFederationRelationship(
    fields: FederationRelationshipFields,
    bootstrap?: FederatedBundleUpdate,
  ): Promise<FederationRelationshipRecord>;
  /** @throws NotFoundError */
  getFederationRelationship(trustDomain: string): Promise<FederationRelationshipRecord>;
  /** Ordered by trust domain. */
  listFederationRelationships(): Promise<FederationRelationshipRecord[]>;
  /** @throws NotFoundError, RevisionConflictError */
  updateFederationRelationship(
    trustDomain: string,
    patch: FederationRelationshipPatch,
    expectedRevision: number,
  ): Promise<FederationRelationshipRecord>;
  /**
   * Deletes the relationship and its stored bundle.
   * @throws NotFoundError, RevisionConflictError, FederationError(ERR_FEDERATION_RELATIONSHIP_IN_USE) while an
   *   entry names the trust domain in federatesWith.
   */
  deleteFederationRelationship(trustDomain: string, expectedRevision?: number): Promise<void>;
  getFederatedBundle(trustDomain: string): Promise<FederatedBundleRecord | undefined>;
  /**
   * Stores the bundle of a trust domain that has a relationship.
   * @throws NotFoundError without a relationship; FederationError(ERR_BUNDLE_SEQUENCE_REGRESSED) when the
   *   stored bundle has a higher sequence (an equal one replaces it: a publisher may re-send its current one).
   */
  putFederatedBundle(
    trustDomain: string,
    update: FederatedBundleUpdate,
    now: Date,
  ): Promise<FederatedBundleRecord>;
  /** Records a failed fetch; the stored bundle is kept. No-op without a stored bundle row or relationship. */
  recordFederatedFetchFailure(trustDomain: string, error: string, now: Date): Promise<void>;
}

/**
 * What other servers sharing the store changed, for a store that several servers share (PostgreSQL). Listeners
 * hear only other servers' changes: a server learns its own as it makes them.
 */
export interface StoreChanges {
  /** Another server published a bundle for `trustDomain`; '' after a lost connection: one may have been missed. */
  onBundleChanged(listener: (trustDomain: string) => void): () => void;
  /** Another server recorded revocations with these sequences; [] after a lost connection: some may be missed. */
  onRevoked(listener: (sequences: number[]) => void): () => void;
}

export interface Store extends StoreOps {
  /** 'sqlite' or 'postgres': for logs and diagnostics. */
  readonly kind: string;
  /** Present on a store several servers share; absent on SQLite (one server). */
  readonly changes?: StoreChanges;
  /**
   * The audit trail's chains (src/audit). Appends here are their own durable transactions; not usable
   * inside `transaction` (use `tx.audit.append` there, which commits with the transaction).
   */
  readonly audit: AuditStore;
  /**
   * Runs `fn` in one transaction: every write through `tx` commits together when `fn` resolves, or none does
   * when it throws (the error is rethrown). Use `tx`, not the store, inside `fn`: the store refuses calls
   * made from inside its own transaction rather than deadlock. Keep `fn` short: it holds the write lock.
   */
  transaction<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T>;
  /**
   * As `transaction`, but the transaction is shared with the other calls queued meanwhile and committed
   * durably once for all of them (group commit); `fn`'s writes still commit or roll back as a unit of their own.
   * Resolves only after the commit that holds them. For the issuance path, where one fsync per call was the
   * bound. Optional: a store without it is used through `transaction` (see `sharedTransaction` below).
   */
  sharedTransaction?<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T>;
  /** Present with `sharedTransaction`: the shared transactions run so far and the calls they held. */
  groupCommitStats?(): GroupCommitStats;
  /**
   * What caller authentication needs of the store, read in one consistent snapshot (one statement, or one read
   * transaction) and answered after one wait: see CallerQuery and CallerRecords. Reads only.
   */
  readCaller(query: CallerQuery): Promise<CallerRecords>;
  /** Waits for running calls, then closes. Later calls fail with ERR_STORE_CLOSED. Idempotent. */
  close(): Promise<void>;
}

/** Which records a caller's SVID names: its serial, and (from its agent context) its session and entry. */
export interface CallerQuery {
  /** The client certificate's serial, lowercase hex. */
  serialHex: string;
  /** The session its agent context names; absent for an SVID without one (nothing else is then read). */
  sessionId?: string;
  /** The registration entry its agent context names. */
  entryId?: string;
  /** How many ancestors of the session to read at most (the walk's bound against a loop in a corrupt store). */
  maxAncestors: number;
}

/** The records of a CallerQuery as they stood at one instant. The caller decides what they mean. */
export interface CallerRecords {
  /** The serial has a certificate revocation. */
  certificateRevoked: boolean;
  /**
   * The stored session, then each one it was delegated from, nearest first: ends at a root, at a parent that is
   * not stored, or after `maxAncestors` ancestors. Empty when the session is not stored.
   */
  sessions: SessionRecord[];
  /** Of the serials these sessions hang on (openerSerial, parentCertSerial), those with a certificate revocation. */
  revokedSessionSerials: ReadonlySet<string>;
  /** The entry as stored now; undefined when there is none. */
  entry?: Entry;
}

/** How well group commit groups: `calls / batches` is the calls per durable commit. */
export interface GroupCommitStats {
  batches: number;
  calls: number;
}

/** `store.sharedTransaction` when the store groups commits, else a transaction of its own. */
export function sharedTransaction<T>(store: Store, fn: (tx: StoreOps) => Promise<T>): Promise<T> {
  return store.sharedTransaction !== undefined ? store.sharedTransaction(fn) : store.transaction(fn);
}
