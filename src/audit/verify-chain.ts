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
 * Hashes a streaming verifier keeps of the latest records, for checkpoints read after their record: a chain's
 * lines put each checkpoint right after the record it signs (chainLines, the server's export, FileAuditLog), so
 * this much slack only covers appends that raced a checkpoint.
 */
export const STREAM_HASH_WINDOW = 4096;

/** What became of a checkpoint's head when it was read: compared at finish(), with the batch's rules. */
type HeadCheck = 'match' | 'mismatch' | 'pending' | 'forgotten';

/**
 * The chain verifier, fed one record or checkpoint at a time in storage order, holding no record: its memory is
 * the last `window` hashes and the checkpoints (a few per chain), whatever the chain's length. `finish()` gives
 * exactly what verifyAuditChain gives for the same records and checkpoints, except a checkpoint read more than
 * `window` records after the record it signs, which is a break (fail closed: its head can no longer be compared).
 */
export class AuditChainVerifier {
  private chainName: string | undefined;
  private prevSeq = 0;
  private prevHash = '';
  // Hash before the previous record: tells an inserted record apart from an edited one.
  private beforePrev = '';
  private recordCount = 0;
  private recordBreak: ChainBreak | undefined;
  /** A gap in the sequence: deleted, unless the missing record turns up later (then reordered). */
  private gap: { missing: number; at: number; seenLater: boolean } | undefined;
  private readonly recent = new Map<number, string>();
  private readonly read: { c: AuditCheckpoint; head: HeadCheck }[] = [];
  private readonly pending = new Map<number, { c: AuditCheckpoint; head: HeadCheck }[]>();

  /** @param window hashes kept for checkpoints read after their record; Infinity keeps every one. */
  constructor(
    private readonly options: VerifyAuditChainOptions = {},
    private readonly window = STREAM_HASH_WINDOW,
  ) {}

  /** The chain's name (a file's header); without it, the first record's chain is the chain. */
  setChain(chain: string): void {
    if (this.chainName !== undefined || this.recordCount > 0) {
      throw new Error('the chain name is set once, before the first record');
    }
    this.start(chain);
  }

  get chain(): string | undefined {
    return this.chainName;
  }

  /** Every checkpoint read so far, in the order read. */
  get checkpoints(): AuditCheckpoint[] {
    return this.read.map((r) => r.c);
  }

  addRecord(r: AuditRecord): void {
    if (this.chainName === undefined) this.start(r.chain);
    const chain = this.chainName!;
    this.recordCount++;
    if (this.recordBreak !== undefined) {
      if (this.gap !== undefined && r.seq === this.gap.missing) this.gap.seenLater = true;
      return;
    }
    const brk = (kind: ChainBreakKind, seq: number, message: string): void => {
      this.recordBreak = { kind, seq, message };
    };
    const { prevSeq, prevHash } = this;
    if (r.chain !== chain) {
      brk('inserted', r.seq, `record ${r.seq} belongs to chain "${r.chain}", not "${chain}"`);
      return;
    }
    if (recordHash(r) !== r.hash) {
      brk('edited', r.seq, `record ${r.seq}: content does not match its hash`);
      return;
    }
    if (r.seq === prevSeq + 1) {
      if (r.prevHash !== prevHash) {
        if (prevSeq === 0) brk('inserted', 1, 'record 1 does not start from the genesis of this chain');
        else brk('edited', prevSeq, `record ${prevSeq} was replaced: record ${r.seq} does not link to it`);
        return;
      }
    } else if (r.seq <= prevSeq) {
      // Same predecessor as the record before it: that one was slipped in ahead of the real record.
      if (r.seq === prevSeq && r.prevHash === this.beforePrev) {
        brk(
          'inserted',
          prevSeq,
          `record ${prevSeq} is not part of the chain: it was inserted before the real record ${r.seq}`,
        );
      } else {
        brk('reordered', r.seq, `record ${r.seq} is stored after record ${prevSeq}`);
      }
      return;
    } else {
      // Deleted or reordered: told apart at finish(), once it is known whether the missing record comes later.
      this.gap = { missing: prevSeq + 1, at: r.seq, seenLater: false };
      brk('deleted', prevSeq + 1, '');
      return;
    }
    this.beforePrev = prevHash;
    this.prevSeq = r.seq;
    this.prevHash = r.hash;
    this.recent.set(r.seq, r.hash);
    if (this.recent.size > this.window) this.recent.delete(this.recent.keys().next().value!);
    const waiting = this.pending.get(r.seq);
    if (waiting !== undefined) {
      for (const w of waiting) w.head = w.c.headHash === r.hash ? 'match' : 'mismatch';
      this.pending.delete(r.seq);
    }
  }

  addCheckpoint(c: AuditCheckpoint): void {
    const entry: { c: AuditCheckpoint; head: HeadCheck } = { c, head: 'pending' };
    this.read.push(entry);
    if (this.recordBreak === undefined && c.seq > this.prevSeq) {
      const list = this.pending.get(c.seq) ?? [];
      list.push(entry);
      this.pending.set(c.seq, list);
      return;
    }
    if (c.seq > this.prevSeq) return; // beyond a record break: judged at finish()
    const hash = c.seq === 0 ? this.genesis() : this.recent.get(c.seq);
    entry.head = hash === undefined ? 'forgotten' : hash === c.headHash ? 'match' : 'mismatch';
  }

  /**
   * @param keys the audit key, or every audit key with its window (a rotating key); without any, checkpoints are
   *   not accepted (any checkpoint is a break).
   */
  finish(keys: AuditPublicKey | AuditKeyRing | undefined): ChainVerification {
    const chain = this.chainName;
    if (chain === undefined) throw new Error('no chain name and no record: nothing to verify');
    const ring = keys instanceof AuditPublicKey ? AuditKeyRing.of(keys) : keys;
    const prevSeq = this.prevSeq;
    let recordBreak = this.recordBreak;
    if (this.gap !== undefined) {
      const { missing, at, seenLater } = this.gap;
      recordBreak = seenLater
        ? { kind: 'reordered', seq: at, message: `record ${at} is stored before record ${missing}` }
        : {
            kind: 'deleted',
            seq: missing,
            message:
              at - 1 === missing
                ? `record ${missing} is missing`
                : `records ${missing}..${at - 1} are missing`,
          };
    }

    let checkpointedSeq = 0;
    let checkpointedAt: string | undefined;
    let checkpointBreak: ChainBreak | undefined;
    const sorted = [...this.read].sort((a, b) => a.c.seq - b.c.seq);
    for (const { c, head } of sorted) {
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
      if (head === 'forgotten') {
        checkpointBreak = {
          kind: 'checkpoint_mismatch',
          seq: c.seq,
          message: `the checkpoint of ${c.time} over record ${c.seq} is stored more than ${this.window} records after it, out of chain order: its head cannot be checked in one pass (export the chain again)`,
        };
        break;
      }
      if (head !== 'match') {
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
    if (
      this.options.allowUnsignedTail !== true &&
      recordBreak === undefined &&
      checkpointBreak === undefined
    ) {
      if (checkpointedAt === undefined) {
        tailBreak = {
          kind: 'unsigned_tail',
          seq: this.recordCount > 0 ? 1 : 0,
          message:
            this.recordCount > 0
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
      records: this.recordCount,
      checkpoints: this.read.length,
      headSeq: prevSeq,
      headHash: this.prevHash,
      checkpointedSeq,
      ...(checkpointedAt !== undefined && { checkpointedAt }),
      ...(first !== undefined && { break: first }),
    };
  }

  private start(chain: string): void {
    this.chainName = chain;
    this.prevHash = genesisHash(chain);
    this.beforePrev = this.prevHash;
  }

  private genesis(): string {
    return genesisHash(this.chainName!);
  }
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
  // Every hash kept: the checkpoints come after all the records here, whatever their order in a file.
  const v = new AuditChainVerifier(options, Infinity);
  v.setChain(chain);
  for (const r of records) v.addRecord(r);
  for (const c of checkpoints) v.addCheckpoint(c);
  return v.finish(keys);
}
