/**
 * The hash chain. Record n holds `prevHash` = hash of record n-1, so editing, removing, reordering or inserting
 * any record changes a hash that a later record (or a signed checkpoint) has fixed.
 *
 *   hash(record)   = SHA-256( canonicalJson(record without `hash`) )             (hex)
 *   genesis(chain) = SHA-256( "lanyard-audit-v1 genesis\n" + chain )            (record 1's prevHash)
 *
 * The genesis depends on the chain's name, so records cannot be spliced from one chain into another.
 */
import { sha256Hex } from './canonical';
import { checkEventApart, type AuditEvent, type AuditRecord } from './record';
import { canonicalRecordBody, canonicalRecordLine } from './record-json';

export const GENESIS_LABEL = 'lanyard-audit-v1 genesis\n';

export function genesisHash(chain: string): string {
  return sha256Hex(GENESIS_LABEL + chain);
}

/** Where a chain ends: the last record's sequence number and hash (seq 0 and the genesis when empty). */
export interface ChainHead {
  chain: string;
  seq: number;
  hash: string;
}

export function emptyHead(chain: string): ChainHead {
  return { chain, seq: 0, hash: genesisHash(chain) };
}

/** The canonical text of a record without its hash: what `hash` covers and what the stores keep. */
export function recordBody(r: Omit<AuditRecord, 'hash'>): string {
  return canonicalRecordBody(r);
}

export function recordHash(r: Omit<AuditRecord, 'hash'>): string {
  return sha256Hex(recordBody(r));
}

/** The record that follows `head` for `event` at `now` (when the event has no time of its own). */
export function nextRecord(head: ChainHead, event: AuditEvent, now: Date): AuditRecord {
  return chainRecord(head, event, now).record;
}

/** A record just chained, with its canonical body (what its hash covers and what a store keeps). */
export interface ChainedRecord {
  record: AuditRecord;
  body: string;
}

/**
 * nextRecord, with the body it hashed: a store writes that body as it is instead of serialising the record a
 * second time. The checked copy of the event is new and ours, so it is completed into the record in place.
 */
export function chainRecord(head: ChainHead, event: AuditEvent, now: Date): ChainedRecord {
  const { fields, time } = checkEventApart(event);
  const record = fields as unknown as AuditRecord;
  record.chain = head.chain;
  record.seq = head.seq + 1;
  record.time = (time ?? now).toISOString();
  record.prevHash = head.hash;
  const body = recordBody(record);
  record.hash = sha256Hex(body);
  return { record, body };
}

/** A record as one JSON line (canonical, with its hash), the form of file chains and exports. */
export function recordLine(r: AuditRecord): string {
  return canonicalRecordLine(r);
}
