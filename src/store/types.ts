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
  spiffeId: string;
  expiresAt: Date;
}

export interface JoinTokenRecord {
  id: string;
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
