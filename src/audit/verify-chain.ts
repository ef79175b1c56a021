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

/**
 * Checkpoints a streaming verifier holds while their record has not been read yet. A chain's lines never put a
 * checkpoint before its record; a stream with more of them than this is refused (fail closed) rather than held.
 */
export const STREAM_PENDING_CHECKPOINTS = 1024;

/** Who signs a chain's checkpoints: one key, every key with its window, or none (any checkpoint is a break). */
export type AuditChainKeys = AuditPublicKey | AuditKeyRing | undefined;

export interface AuditChainVerifierOptions extends VerifyAuditChainOptions {
  /**
   * The keys checkpoints are checked with as they are read, or a function giving them, called once, when the
   * first checkpoint arrives (a file chain's header, read by then, may name them).
   */
  keys?: AuditChainKeys | (() => AuditChainKeys);
  /** Hashes kept for checkpoints read after their record (default STREAM_HASH_WINDOW); Infinity keeps all. */
  window?: number;
  /** Checkpoints held before their record (default STREAM_PENDING_CHECKPOINTS); Infinity holds all. */
  maxPending?: number;
  /** Told of every checkpoint read, in read order (a witness cross-check looks for its own among them). */
  onCheckpoint?: (c: AuditCheckpoint) => void;
}

/** What a streaming verifier holds, for tests that show it does not grow with the chain. */
export interface AuditChainVerifierState {
  /** Record hashes kept (at most the window). */
  hashes: number;
  /** Checkpoints held because their record has not been read yet (at most maxPending). */
  pendingCheckpoints: number;
  /** Checkpoints held in any other way: none, whatever the number read. */
  heldCheckpoints: number;
}

/** A checkpoint's verdict for the first break among checkpoints: the lowest seq wins. */
function lower(a: ChainBreak | undefined, b: ChainBreak): ChainBreak {
  return a === undefined || b.seq < a.seq ? b : a;
}

/**
 * The chain verifier, fed one record or checkpoint at a time in storage order, holding no record and no
 * checkpoint: each checkpoint's signature and key window are checked as it is read, its head as soon as its
 * record has been read (at once, in chain order), and only the best checkpoint so far and the first break are
 * kept. Its memory is the last `window` hashes and at most `maxPending` checkpoints read ahead of their record,
 * whatever the number of records and checkpoints. `finish()` gives exactly what verifyAuditChain gives for the
 * same records and checkpoints, except a checkpoint read more than `window` records after the record it signs
 * (or more than `maxPending` ahead of theirs), which is a break: fail closed, its head can no longer be compared.
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
  private readonly window: number;
  private readonly maxPending: number;
  private keysGiven: AuditChainVerifierOptions['keys'];
  private ring: AuditKeyRing | undefined;
  private ringResolved = false;
  private checkpointCount = 0;
  /** Checkpoints whose signature verified, read before their record (and no record break yet). */
  private readonly pending = new Map<number, AuditCheckpoint[]>();
  private pendingCount = 0;
  /** The highest checkpoint whose signature and head verified. */
  private best: { seq: number; time: string } | undefined;
  /** The lowest-seq checkpoint that is forged, of another chain, or whose head does not match. */
  private checkpointBreak: ChainBreak | undefined;
  /** Lowest seq of a checkpoint read beyond the valid prefix after a record break (judged at finish). */
  private beyondBreak: number | undefined;

  /**
   * @param options what verifyAuditChain takes, the keys, and the stream's bounds
   * @param window hashes kept for checkpoints read after their record (overrides options.window)
   */
  constructor(
    private readonly options: AuditChainVerifierOptions = {},
    window?: number,
  ) {
    this.window = window ?? options.window ?? STREAM_HASH_WINDOW;
    this.maxPending = options.maxPending ?? STREAM_PENDING_CHECKPOINTS;
    this.keysGiven = options.keys;
  }

  /** The chain's name (a file's header); without it, the first record's chain is the chain. */
  setChain(chain: string): void {
    if (this.chainName !== undefined || this.recordCount > 0) {
      throw new Error('the chain name is set once, before the first record');
    }
    this.start(chain);
  }

  /** The keys checkpoints are checked with; only before the first checkpoint is read. */
  setKeys(keys: AuditChainVerifierOptions['keys']): void {
    if (this.ringResolved) throw new Error('the keys are set before the first checkpoint');
    this.keysGiven = keys;
  }

  get chain(): string | undefined {
    return this.chainName;
  }

  /** What the verifier holds now (constant in the chain's records and checkpoints). */
  get state(): AuditChainVerifierState {
    return { hashes: this.recent.size, pendingCheckpoints: this.pendingCount, heldCheckpoints: 0 };
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
      this.pending.delete(r.seq);
      this.pendingCount -= waiting.length;
      for (const c of waiting) this.judgeHead(c, r.hash);
    }
  }

  addCheckpoint(c: AuditCheckpoint): void {
    this.checkpointCount++;
    // A headerless chain that starts with a checkpoint: the checkpoint names the chain its records must be of.
    if (this.chainName === undefined) this.start(c.chain);
    const chain = this.chainName!;
    this.options.onCheckpoint?.(c);
    if (c.chain !== chain) {
      this.failCheckpoint({
        kind: 'checkpoint_signature',
        seq: c.seq,
        message: `checkpoint at ${c.seq} is of chain "${c.chain}", not "${chain}"`,
      });
      return;
    }
    const ring = this.keys();
    const problem =
      ring === undefined
        ? {
            kind: 'checkpoint_signature' as const,
            message: `checkpoint at ${c.seq}: no audit public key to check it with`,
          }
        : ring.checkCheckpoint(c);
    if (problem !== undefined) {
      this.failCheckpoint({ kind: problem.kind, seq: c.seq, message: problem.message });
      return;
    }
    if (this.recordBreak === undefined && c.seq > this.prevSeq) {
      // Read ahead of its record: judged when the record comes, or at finish() (truncated) if it never does.
      if (this.pendingCount >= this.maxPending) {
        this.failCheckpoint({
          kind: 'checkpoint_mismatch',
          seq: c.seq,
          message: `the checkpoint of ${c.time} over record ${c.seq} is one of more than ${this.maxPending} stored ahead of their records, out of chain order: it is not held to be checked in one pass (export the chain again)`,
        });
        return;
      }
      const list = this.pending.get(c.seq) ?? [];
      list.push(c);
      this.pending.set(c.seq, list);
      this.pendingCount++;
      return;
    }
    if (c.seq > this.prevSeq) {
      // Beyond a record break: only whether it lies before that break matters, at finish().
      if (this.beyondBreak === undefined || c.seq < this.beyondBreak) this.beyondBreak = c.seq;
      return;
    }
    const hash = c.seq === 0 ? genesisHash(chain) : this.recent.get(c.seq);
    if (hash === undefined) {
      this.failCheckpoint({
        kind: 'checkpoint_mismatch',
        seq: c.seq,
        message: `the checkpoint of ${c.time} over record ${c.seq} is stored more than ${this.window} records after it, out of chain order: its head cannot be checked in one pass (export the chain again)`,
      });
      return;
    }
    this.judgeHead(c, hash);
  }

  /** The verdict on everything read: the first break by sequence number, or OK. */
  finish(): ChainVerification {
    const chain = this.chainName;
    if (chain === undefined) throw new Error('no chain name and no record: nothing to verify');
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

    let checkpointBreak = this.checkpointBreak;
    // Checkpoints never reached by a record: beyond the chain's end (truncated) unless past a record break.
    let beyond = this.beyondBreak;
    for (const seq of this.pending.keys()) if (beyond === undefined || seq < beyond) beyond = seq;
    if (beyond !== undefined && (recordBreak === undefined || beyond < recordBreak.seq)) {
      checkpointBreak = lower(checkpointBreak, {
        kind: 'truncated',
        seq: prevSeq + 1,
        message: `a checkpoint signed record ${beyond}, but the chain ends at ${prevSeq}: records ${prevSeq + 1}..${beyond} were cut off`,
      });
    }
    const best = this.best;
    const checkpointedSeq = best?.seq ?? 0;
    const checkpointedAt = best?.time;

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
      checkpoints: this.checkpointCount,
      headSeq: prevSeq,
      headHash: this.prevHash,
      checkpointedSeq,
      ...(checkpointedAt !== undefined && { checkpointedAt }),
      ...(first !== undefined && { break: first }),
    };
  }

  private keys(): AuditKeyRing | undefined {
    if (!this.ringResolved) {
      this.ringResolved = true;
      const given = typeof this.keysGiven === 'function' ? this.keysGiven() : this.keysGiven;
      this.ring = given instanceof AuditPublicKey ? AuditKeyRing.of(given) : given;
    }
    return this.ring;
  }

  /** A checkpoint whose signature verified, against the chain's hash at its seq. */
  private judgeHead(c: AuditCheckpoint, hash: string): void {
    if (hash !== c.headHash) {
      this.failCheckpoint({
        kind: 'checkpoint_mismatch',
        seq: c.seq,
        message: `the chain's hash at ${c.seq} is not the one the checkpoint of ${c.time} signed: records up to ${c.seq} were rewritten`,
      });
      return;
    }
    // Among checkpoints of one seq, the one read last (a store reads them in time order).
    if (this.best === undefined || c.seq >= this.best.seq) this.best = { seq: c.seq, time: c.time };
  }

  private failCheckpoint(b: ChainBreak): void {
    this.checkpointBreak = lower(this.checkpointBreak, b);
  }

  private start(chain: string): void {
    this.chainName = chain;
    this.prevHash = genesisHash(chain);
    this.beforePrev = this.prevHash;
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
  const v = new AuditChainVerifier({ ...options, keys, window: Infinity, maxPending: Infinity });
  v.setChain(chain);
  for (const r of records) v.addRecord(r);
  for (const c of checkpoints) v.addCheckpoint(c);
  return v.finish();
}
