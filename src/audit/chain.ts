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
import { checkEvent, type AuditEvent, type AuditRecord } from './record';
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
  const e = checkEvent(event);
  const { time, ...fields } = e;
  const unhashed: Omit<AuditRecord, 'hash'> = {
    ...fields,
    chain: head.chain,
    seq: head.seq + 1,
    time: (time ?? now).toISOString(),
    prevHash: head.hash,
  };
  return { ...unhashed, hash: recordHash(unhashed) };
}

/** A record as one JSON line (canonical, with its hash), the form of file chains and exports. */
export function recordLine(r: AuditRecord): string {
  return canonicalRecordLine(r);
}
