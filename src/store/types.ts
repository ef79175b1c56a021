/**
 * The records the store keeps. These are the store's own types, not the generated protobuf ones, so the
 * store (and a future PostgreSQL store) does not depend on the wire format; the server maps between them.
 */

/** One attested property, e.g. { type: 'k8s', value: 'ns:payments' }. */
export interface Selector {
  type: string;
  value: string;
}

/** The fields of a registration entry that a caller sets. */
export interface EntryFields {
  spiffeId: string;
  /** SPIFFE ID of the node agent that may issue this identity; undefined = none. */
  parentId?: string;
  /** Never empty. Stored and returned in canonical order (by type, then value). */
  selectors: Selector[];
  /** 0 = the server's default SVID TTL. */
  x509SvidTtlSeconds: number;
  allowedScopes: string[];
  maxDelegationDepth: number;
  allowedDelegates: string[];
  admin: boolean;
  dnsNames: string[];
  expiresAt?: Date;
  canAssertPrincipal: boolean;
  /**
   * Trust domain names whose federated bundles the entry's workloads receive. Absent = none; stored and
   * returned sorted, without duplicates.
   */
  federatesWith?: string[];
}

export interface Entry extends EntryFields {
  id: string;
  createdAt: Date;
  updatedAt: Date;
  /** 1 on create, +1 on every update. */
  revision: number;
}

export interface NewEntry extends EntryFields {
  /** Chosen by the caller, or a random UUID when undefined. */
  id?: string;
}

/**
 * The fields to change. An absent key leaves the field as it is; `parentId: null` and `expiresAt: null`
 * clear the optional fields.
 */
export type EntryPatch = Partial<Omit<EntryFields, 'parentId' | 'expiresAt'>> & {
  parentId?: string | null;
  expiresAt?: Date | null;
};

/**
 * How an entry's selector set S is compared with the filter's set F:
 * exact S = F; subset S ⊆ F (what attestation uses: every selector of the entry was attested);
 * superset S ⊇ F; any S ∩ F ≠ ∅.
 */
export type SelectorMatchMode = 'exact' | 'subset' | 'superset' | 'any';

/** Every set field must hold. */
export interface EntryFilter {
  /** Exactly this SPIFFE ID. */
  spiffeId?: string;
  /** Plain string prefix of the SPIFFE ID. */
  spiffeIdPrefix?: string;
  parentId?: string;
  selectors?: { selectors: Selector[]; match: SelectorMatchMode };
  /** Only entries without an expiry or expiring after this instant. */
  notExpiredAt?: Date;
}

export interface PageRequest {
  /** At least 1; the store caps it at MAX_PAGE_SIZE. */
  pageSize: number;
  /** From a previous page; undefined or '' for the first page. */
  pageToken?: string;
}

export interface EntryPage {
  /** Ordered by SPIFFE ID, then id. */
  entries: Entry[];
  /** '' on the last page. */
  nextPageToken: string;
}

/** A join token as stored: only the SHA-256 of the secret is kept, and it is never returned. */
export interface NewJoinToken {
  /** Non-secret handle for logs and audit. */
  id: string;
  /** SHA-256 of the token (see hashJoinToken). */
  tokenHash: Buffer;
  /** The one registration entry an attestation with this token gets. */
  entryId: string;
  /** The entry's SPIFFE ID when the token was created: a later change of the entry's ID refuses the token. */
  spiffeId: string;
  expiresAt: Date;
}

export interface JoinTokenRecord {
  id: string;
  /** Absent only for a token created before tokens named their entry and whose SPIFFE ID was ambiguous. */
  entryId?: string;
  spiffeId: string;
  createdAt: Date;
  expiresAt: Date;
  /** Set once, by the one consume that succeeded. */
  spentAt?: Date;
}

/** Lifecycle of a CA key pair, as in SPIRE: prepared ahead of time, then active, then kept until unused. */
export type CaAuthorityStatus = 'prepared' | 'active' | 'retired';

/** One signing CA. The private key stays with the key manager; the store holds only its reference. */
export interface CaAuthorityRecord {
  id: string;
  status: CaAuthorityStatus;
  /** The CA certificate that signs SVIDs (self-signed root, or intermediate from an upstream CA), DER. */
  certDer: Buffer;
  /** Certificates above certDer up to, not including, the upstream root (empty for a self-signed root). */
  upstreamChainDer: Buffer[];
  /** Key-manager handle of the private key. */
  keyRef: string;
  notBefore: Date;
  notAfter: Date;
  createdAt: Date;
  activatedAt?: Date;
}

/** The trust bundle of one trust domain as last published. */
export interface BundleRecord {
  trustDomain: string;
  /** 1 for the first bundle; the store adds one on every change (spiffe_sequence). */
  sequence: number;
  /** Root certificates, DER. */
  x509AuthoritiesDer: Buffer[];
  refreshHintSeconds: number;
  updatedAt: Date;
}

export interface BundleUpdate {
  x509AuthoritiesDer: Buffer[];
  refreshHintSeconds: number;
}

/** How the originating principal of a session was established (as in the agent context). */
export interface SessionPrincipal {
  id: string;
  issuer: string;
  /** 'verified' | 'workload' | 'asserted-by:<spiffe id>' */
  provenance: string;
}

/** A task session: started by StartSession (a root) or by redeeming a grant (delegated from a parent). */
export interface NewSession {
  /** Fresh and unguessable; the session SVIDs carry it as sessionId. */
  id: string;
  /** Registration entry of the agent that holds the session (agentId of its SVIDs). */
  entryId: string;
  spiffeId: string;
  /** Equals id for a root session. */
  rootSessionId: string;
  /** The session this one was delegated from; undefined for a root session. */
  parentSessionId?: string;
  principal: SessionPrincipal;
  intent: string;
  scopes: string[];
  /** Delegation hops above this session: 0 for a root session. */
  depth: number;
  /** Deepest chain this session may still delegate to (the smaller of the limits of every delegator so far). */
  depthLimit: number;
  /** No SVID of the session outlives this; renewal stops here. */
  expiresAt: Date;
  /**
   * Serial of the SVID that opened the session: the workload SVID that called StartSession, or the one that
   * redeemed the grant. Revoking it ends what the session may do at the server. Absent only for sessions
   * stored before it was recorded, which session-aware calls refuse.
   */
  openerSerial?: string;
  /** For a delegated session: serial of the parent's session SVID that signed the grant. */
  parentCertSerial?: string;
}

export interface SessionRecord extends NewSession {
  createdAt: Date;
  /** Set once, when the session (or one it was delegated from) ended. */
  endedAt?: Date;
  endReason?: string;
  /** Serials (hex) of every SVID issued for the session, in issuance order. */
  certSerials: string[];
}

/** What `listSessions` selects; every field given must match. */
export interface SessionQuery {
  /** The agent's SPIFFE ID. */
  spiffeId?: string;
  /** Sessions of this chain (its root session and every session delegated from it). */
  rootSessionId?: string;
  /** Only sessions neither ended nor expired at this time. */
  liveAt?: Date;
  limit: number;
}

/** A single-use delegation grant, as CreateGrant stored it. */
export interface NewGrant {
  /** The binding's childKeySha256, hex: one grant per child key. */
  id: string;
  parentSessionId: string;
  childSpiffeId: string;
  scopes: string[];
  notAfter: Date;
  redeemBy: Date;
  /** The DelegationBinding DER the parent signed, its signature, and the parent certificate it names. */
  bindingDer: Buffer;
  signature: Buffer;
  parentCertDer: Buffer;
  /**
   * How many further delegations the child may make below itself (0: none), as the parent asked at CreateGrant;
   * absent: no bound beyond the parent's own. Held here, not in the signed binding.
   */
  maxDepth?: number;
}

export interface GrantRecord extends NewGrant {
  createdAt: Date;
  redeemedAt?: Date;
  /** The session the redemption created. */
  redeemedSessionId?: string;
}

export type RevocationKind = 'certificate' | 'session';

/** One revoked certificate (by serial) or session. Kept until what it names has expired. */
export interface RevocationRecord {
  /** Grows by one for every revocation ever recorded, never reused (also after pruning). */
  sequence: number;
  kind: RevocationKind;
  /** Serial (lower-case hex, no leading zeros) or session id. */
  id: string;
  /** '' when `causeSequence` is set: the cause's reason applies. */
  reason: string;
  revokedAt: Date;
  /** After this instant nothing it names is valid any more, so the record can be dropped. */
  expiresAt: Date;
  /** For a session ended by a cascade: the sequence of the revocation that ended its ancestor. */
  causeSequence?: number;
}

export interface NewRevocation {
  kind: RevocationKind;
  id: string;
  reason: string;
  expiresAt: Date;
  causeSequence?: number;
}

/** What the per-agent session limits count for one registration entry. */
export interface AgentSessionCounts {
  /** Sessions of the entry that have neither ended nor expired. */
  live: number;
  /** Sessions of the entry that ended (by any caller, by cascade too) at or after the window's start. */
  endedInWindow: number;
}

/** Serials a CRL must list, from the revocations after a sequence: what an incremental CRL build adds. */
export interface RevokedSerialsDelta {
  serials: RevokedSerialRecord[];
  /** The highest revocation sequence the read covered: the next delta starts after it. */
  throughSequence: number;
}

/** A certificate serial that a CRL must list: revoked by itself, or issued to a session that ended. */
export interface RevokedSerialRecord {
  /** Lower-case hex, no leading zeros. */
  serialHex: string;
  revokedAt: Date;
  /** When the entry may leave the CRL: the certificate's notAfter, or the revocation's expiry. */
  expiresAt: Date;
}

/** How a foreign bundle endpoint authenticates (SPIFFE Trust Domain and Bundle §5.2). */
export type BundleEndpointProfile = 'https_web' | 'https_spiffe';

/** The fields of a federation relationship that the platform team sets. */
export interface FederationRelationshipFields {
  /** The foreign trust domain's name. */
  trustDomain: string;
  /** https:// URL of its bundle endpoint. */
  bundleEndpointUrl: string;
  profile: BundleEndpointProfile;
  /** https_spiffe: the SPIFFE ID the endpoint's SVID must carry. */
  endpointSpiffeId?: string;
  /** https_web: PEM roots to check the endpoint with instead of the system's. */
  webTrustRootsPem?: string;
}

export interface FederationRelationshipRecord extends FederationRelationshipFields {
  createdAt: Date;
  updatedAt: Date;
  /** 1 on create, +1 on every update. */
  revision: number;
}

/** Absent keys stay; `null` clears an optional field. */
export type FederationRelationshipPatch = Partial<
  Omit<FederationRelationshipFields, 'trustDomain' | 'endpointSpiffeId' | 'webTrustRootsPem'>
> & {
  endpointSpiffeId?: string | null;
  webTrustRootsPem?: string | null;
};

/** A foreign trust domain's bundle as last accepted, with what happened on the latest fetch. */
export interface FederatedBundleRecord {
  trustDomain: string;
  /** The SPIFFE bundle document as received (JSON text). */
  bundleJson: string;
  /** Its spiffe_sequence; undefined when the publisher sets none. */
  sequence?: number;
  /** Its spiffe_refresh_hint, seconds. */
  refreshHintSeconds?: number;
  /** When this document was stored (a fetch, or the bootstrap bundle). */
  updatedAt: Date;
  lastSuccessAt?: Date;
  lastAttemptAt?: Date;
  /** The last fetch's failure, '' after a success. */
  lastError: string;
}

/** A bundle to store: refused when its sequence is lower than the stored one. */
export interface FederatedBundleUpdate {
  bundleJson: string;
  sequence?: number;
  refreshHintSeconds?: number;
  /** true: a successful fetch (sets lastSuccessAt, clears lastError); false: a bootstrap bundle. */
  fetched: boolean;
}
