/**
 * Where a chain lives. Two implementations: the server's store (src/store/sqlite/audit.ts) and a local file
 * (file-log.ts) for services that use the hop helpers. `append` resolves only once the record is durable:
 * the caller may acknowledge the action it describes after that, and not before.
 */
import type { ChainHead } from './chain';
import type { AuditCheckpoint } from './checkpoint';
import type { AuditEvent, AuditRecord } from './record';

/** The keys an investigator searches by; each has an index in the store. */
export type AuditQueryKey = 'sessionId' | 'rootSessionId' | 'serial' | 'principal' | 'agentId';

export const AUDIT_QUERY_KEYS: readonly AuditQueryKey[] = [
  'sessionId',
  'rootSessionId',
  'serial',
  'principal',
  'agentId',
];

export interface AuditQuery {
  key: AuditQueryKey;
  value: string;
  /** Only this chain; every chain (the server's and the shipped ones) when absent. */
  chain?: string;
  /** At most this many records (capped at MAX_AUDIT_PAGE). */
  pageSize?: number;
  /** From a previous page's nextPageToken. */
  pageToken?: string;
}

export const MAX_AUDIT_PAGE = 1000;

export interface AuditPage {
  /** In time order, then chain and sequence. */
  records: AuditRecord[];
  /** Empty when this was the last page. */
  nextPageToken: string;
}

export interface AuditLog {
  /** The chain's name (the server's SPIFFE ID, or a service's for a file chain). */
  readonly chain: string;
  /** Appends one record after the current head; resolves once it is durable. */
  append(event: AuditEvent): Promise<AuditRecord>;
  head(): Promise<ChainHead>;
  /** Stores a checkpoint of this chain (signed by the caller). */
  addCheckpoint(checkpoint: AuditCheckpoint): Promise<void>;
  checkpoints(): Promise<AuditCheckpoint[]>;
  /** Records with seq > afterSeq in storage order, at most `limit`. */
  readRecords(afterSeq: number, limit: number): Promise<AuditRecord[]>;
}

/** A chain's name, its head, and the public key pinned for it (shipped chains). */
export interface AuditChainInfo {
  chain: string;
  headSeq: number;
  /** The shipper's audit public key (JWK JSON) pinned at its first ingest; undefined for the server's chain. */
  publicJwk?: string;
}

/**
 * The audit part of a Store: several chains (the server's own and one per shipper), each appended under the
 * store's write lock with a durable commit, plus indexed queries across all of them.
 */
export interface AuditStore {
  /** Appends after the chain's current head, in one transaction; resolves once committed (durable). */
  append(chain: string, event: AuditEvent, now: Date): Promise<AuditRecord>;
  /**
   * Appends records verified by the caller, in one transaction. The first must follow the stored head (seq
   * and prevHash); records at or below the head must be the stored ones (a re-shipped prefix).
   * @throws AuditError(ERR_AUDIT_CHAIN_BROKEN) when they diverge from what is stored
   */
  appendRecords(
    chain: string,
    records: readonly AuditRecord[],
    checkpoints: readonly AuditCheckpoint[],
  ): Promise<number>;
  head(chain: string): Promise<ChainHead>;
  addCheckpoint(checkpoint: AuditCheckpoint): Promise<void>;
  checkpoints(chain: string): Promise<AuditCheckpoint[]>;
  /**
   * A chain's checkpoints in the order `checkpoints` gives (seq, then time), after `after` (the last one of the
   * previous page; the start when absent), at most `limit` (capped as for readRecords): for a reader that goes
   * through a chain of any number of checkpoints without holding them all (an export).
   */
  readCheckpoints(
    chain: string,
    after: AuditCheckpointCursor | undefined,
    limit: number,
  ): Promise<AuditCheckpoint[]>;
  /** The last of `checkpoints` (highest seq, then latest time), without reading the others. */
  latestCheckpoint(chain: string): Promise<AuditCheckpoint | undefined>;
  /**
   * Records stored after `afterPosition` (0 = from the start), in storage order, at most `limit`, and the
   * position to continue from. Positions, not the records' own seq: a tampered record cannot skew paging.
   */
  readRecords(
    chain: string,
    afterPosition: number,
    limit: number,
  ): Promise<{ records: AuditRecord[]; nextPosition: number }>;
  /**
   * readRecords as stored, unparsed: each row's canonical body and hash, for a reader that passes records on
   * without looking into them (an export: whoever reads the export verifies it). Same positions and paging.
   */
  readStoredRecords(
    chain: string,
    afterPosition: number,
    limit: number,
  ): Promise<{ rows: StoredAuditRecord[]; nextPosition: number }>;
  /** @throws LanyardError(ERR_INVALID_ARGUMENT) for a malformed page token */
  query(q: AuditQuery): Promise<AuditPage>;
  chains(): Promise<AuditChainInfo[]>;
  /** Pins `publicJwk` for `chain` unless one is pinned already; returns the pinned one. */
  pinChainKey(chain: string, publicJwk: string, now: Date): Promise<string>;
  /**
   * Records the audit key history (its signed introductions, key-history.ts, as JSON) of the server
   * `serverId`, replacing the one recorded before: several servers on one database append to one chain, each
   * signing checkpoints with its own key, and a verifier needs every server's keys.
   */
  putServerKeyHistory(serverId: string, introductionsJson: string, now: Date): Promise<void>;
  /** Every server's recorded key history, as stored (the reader checks it: the database is not trusted). */
  serverKeyHistories(): Promise<ServerKeyHistory[]>;
}

/** Where a page of checkpoints ends: checkpoints are stored once per chain, sequence number and time. */
export type AuditCheckpointCursor = Pick<AuditCheckpoint, 'seq' | 'time'>;

/** A record as a store keeps it: its storage position, its body as hashed (canonical JSON) and its hash. */
export interface StoredAuditRecord {
  position: number;
  body: string;
  hash: string;
}

export interface ServerKeyHistory {
  serverId: string;
  introductionsJson: string;
}

/** One chain of an AuditStore as an AuditLog. */
export function storeAuditLog(
  store: AuditStore,
  chain: string,
  clock: () => Date = () => new Date(),
): AuditLog {
  return {
    chain,
    append: (event) => store.append(chain, event, clock()),
    head: () => store.head(chain),
    addCheckpoint: (c) => store.addCheckpoint(c),
    checkpoints: () => store.checkpoints(chain),
    readRecords: async (afterSeq, limit) => {
      const { records } = await store.readRecords(chain, afterSeq, limit);
      return records;
    },
  };
}
