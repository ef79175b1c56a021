/**
 * Verifies a chain: every record's own hash, every link, the sequence, and every checkpoint's signature and
 * head. Reports the first break with the sequence number where it is and what kind of change explains it.
 *
 * Kinds, as an investigator reads them:
 * - edited: a record's content no longer matches its hash, or a record was replaced by one with a recomputed
 *   hash (the next record no longer links to it).
 * - deleted: sequence numbers are missing (the first missing one is reported).
 * - reordered: a record is stored before one with a lower sequence number.
 * - inserted: a record that is not part of the chain sits between two that link to each other.
 * - checkpoint_signature: a checkpoint is not signed by the audit key (forged or altered).
 * - checkpoint_mismatch: the chain's hash at a checkpoint's sequence is not the signed head: everything up
 *   to it was rewritten, hashes and all.
 * - truncated: a signed checkpoint is beyond the last record: records were cut off the end.
 * - checkpoint_key: a checkpoint names a key that was not the signing key at the checkpoint's time (a retired
 *   or stolen key vouching outside its window).
 * - unsigned_tail: the last records are covered by no signed checkpoint. Anyone who read the head can append
 *   records that link, and cutting a chain's end together with its last checkpoint leaves exactly this, so a
 *   chain only verifies when a checkpoint covers its last record (unless the caller accepts an unsigned tail,
 *   as a live file chain between checkpoints must).
 * - witness: an external witness (witness-check.ts) holds a checkpoint, a pinned key or an audit key that the
 *   chain as stored disagrees with.
 */
import { AuditPublicKey } from './audit-key';
import { genesisHash, recordHash } from './chain';
import type { AuditCheckpoint } from './checkpoint';
import { AuditKeyRing } from './key-ring';
import type { AuditRecord } from './record';

export type ChainBreakKind =
  | 'edited'
  | 'deleted'
  | 'reordered'
  | 'inserted'
  | 'checkpoint_signature'
  | 'checkpoint_mismatch'
  | 'truncated'
  | 'checkpoint_key'
  | 'unsigned_tail'
  | 'witness';

export interface ChainBreak {
  kind: ChainBreakKind;
  /** Sequence number of the record (or checkpoint) where the chain stops being trustworthy. */
  seq: number;
  message: string;
}

export interface ChainVerification {
  chain: string;
  ok: boolean;
  /** Records and checkpoints examined. */
  records: number;
  checkpoints: number;
  /** Last sequence number and hash of the valid prefix. */
  headSeq: number;
  headHash: string;
  /** Highest checkpoint that verified (signature and head), 0 when none. */
  checkpointedSeq: number;
  /** Time of that checkpoint, when one verified. */
  checkpointedAt?: string;
  break?: ChainBreak;
}

export interface VerifyAuditChainOptions {
  /**
   * Accept records after the last signed checkpoint (and a chain with no checkpoint at all). Default false:
   * only a chain whose last record a checkpoint covers verifies. A live file chain between checkpoints, and an
   * investigator who knowingly reads a chain still being written, pass true.
   */
  allowUnsignedTail?: boolean;
}

/**
 * @param records in storage order (file line order; ascending storage position in the database)
 * @param keys the audit key, or every audit key with its window (a rotating key); without any, checkpoints are
 *   not accepted (any checkpoint is a break).
 */
export function verifyAuditChain(
  chain: string,
  records: readonly AuditRecord[],
  checkpoints: readonly AuditCheckpoint[],
  keys: AuditPublicKey | AuditKeyRing | undefined,
  options: VerifyAuditChainOptions = {},
): ChainVerification {
  const ring = keys instanceof AuditPublicKey ? AuditKeyRing.of(keys) : keys;
  let prevSeq = 0;
  let prevHash = genesisHash(chain);
  // Hash before the previous record: tells an inserted record apart from an edited one.
  let beforePrev = prevHash;
  const hashAt = new Map<number, string>([[0, prevHash]]);
  let recordBreak: ChainBreak | undefined;

  const positions = new Set<number>();
  for (const r of records) positions.add(r.seq);

  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const brk = (kind: ChainBreakKind, seq: number, message: string): ChainBreak => ({ kind, seq, message });
    if (r.chain !== chain) {
      recordBreak = brk('inserted', r.seq, `record ${r.seq} belongs to chain "${r.chain}", not "${chain}"`);
      break;
    }
    if (recordHash(r) !== r.hash) {
      recordBreak = brk('edited', r.seq, `record ${r.seq}: content does not match its hash`);
      break;
    }
    if (r.seq === prevSeq + 1) {
      if (r.prevHash !== prevHash) {
        recordBreak =
          prevSeq === 0
            ? brk('inserted', 1, 'record 1 does not start from the genesis of this chain')
            : brk('edited', prevSeq, `record ${prevSeq} was replaced: record ${r.seq} does not link to it`);
        break;
      }
    } else if (r.seq <= prevSeq) {
      // Same predecessor as the record before it: that one was slipped in ahead of the real record.
      recordBreak =
        r.seq === prevSeq && r.prevHash === beforePrev
          ? brk(
              'inserted',
              prevSeq,
              `record ${prevSeq} is not part of the chain: it was inserted before the real record ${r.seq}`,
            )
          : brk('reordered', r.seq, `record ${r.seq} is stored after record ${prevSeq}`);
      break;
    } else {
      const missing = prevSeq + 1;
      recordBreak = positions.has(missing)
        ? brk('reordered', r.seq, `record ${r.seq} is stored before record ${missing}`)
        : brk(
            'deleted',
            missing,
            r.seq - 1 === missing
              ? `record ${missing} is missing`
              : `records ${missing}..${r.seq - 1} are missing`,
          );
      break;
    }
    beforePrev = prevHash;
    prevSeq = r.seq;
    prevHash = r.hash;
    hashAt.set(r.seq, r.hash);
  }

  let checkpointedSeq = 0;
  let checkpointedAt: string | undefined;
  let checkpointBreak: ChainBreak | undefined;
  const sorted = [...checkpoints].sort((a, b) => a.seq - b.seq);
  for (const c of sorted) {
    if (c.chain !== chain) {
      checkpointBreak = {
        kind: 'checkpoint_signature',
        seq: c.seq,
        message: `checkpoint at ${c.seq} is of chain "${c.chain}", not "${chain}"`,
      };
      break;
    }
    const problem =
      ring === undefined
        ? {
            kind: 'checkpoint_signature' as const,
            message: `checkpoint at ${c.seq}: no audit public key to check it with`,
          }
        : ring.checkCheckpoint(c);
    if (problem !== undefined) {
      checkpointBreak = { kind: problem.kind, seq: c.seq, message: problem.message };
      break;
    }
    // Beyond a record break the chain is already untrusted; that break is what gets reported.
    if (recordBreak !== undefined && c.seq >= recordBreak.seq) continue;
    if (c.seq > prevSeq) {
      checkpointBreak = {
        kind: 'truncated',
        seq: prevSeq + 1,
        message: `a checkpoint signed record ${c.seq}, but the chain ends at ${prevSeq}: records ${prevSeq + 1}..${c.seq} were cut off`,
      };
      break;
    }
    if (hashAt.get(c.seq) !== c.headHash) {
      checkpointBreak = {
        kind: 'checkpoint_mismatch',
        seq: c.seq,
        message: `the chain's hash at ${c.seq} is not the one the checkpoint of ${c.time} signed: records up to ${c.seq} were rewritten`,
      };
      break;
    }
    if (c.seq >= checkpointedSeq) {
      checkpointedSeq = c.seq;
      checkpointedAt = c.time;
    }
  }

  let tailBreak: ChainBreak | undefined;
  if (options.allowUnsignedTail !== true && recordBreak === undefined && checkpointBreak === undefined) {
    if (checkpointedAt === undefined) {
      tailBreak = {
        kind: 'unsigned_tail',
        seq: records.length > 0 ? 1 : 0,
        message:
          records.length > 0
            ? `no signed checkpoint covers records 1..${prevSeq}: nothing proves who wrote them or that the chain ends there`
            : 'the chain has no record and no signed checkpoint: nothing proves it is complete',
      };
    } else if (checkpointedSeq < prevSeq) {
      tailBreak = {
        kind: 'unsigned_tail',
        seq: checkpointedSeq + 1,
        message: `records ${checkpointedSeq + 1}..${prevSeq} come after the last signed checkpoint (${checkpointedAt}): anyone can append linking records, and a chain whose end was cut off with its last checkpoint looks the same`,
      };
    }
  }

  const first = [recordBreak, checkpointBreak, tailBreak]
    .filter((b): b is ChainBreak => b !== undefined)
    .sort((a, b) => a.seq - b.seq)[0];
  return {
    chain,
    ok: first === undefined,
    records: records.length,
    checkpoints: checkpoints.length,
    headSeq: prevSeq,
    headHash: prevHash,
    checkpointedSeq,
    ...(checkpointedAt !== undefined && { checkpointedAt }),
    ...(first !== undefined && { break: first }),
  };
}
