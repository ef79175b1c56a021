/**
 * The server's AuditRecorder: appends to the server's own chain in the store (durable before it resolves),
 * signs checkpoints of the head with the audit key (`audit/audit-key.pem` in the data dir, 0600, rotating:
 * rotating-key.ts) at start-up, at a fixed interval, before every export and on shutdown, and copies every
 * checkpoint, pinned shipper key and audit key introduction to the witnesses outside the database.
 *
 * Handlers record inside the transaction of their state change (`recordIn`) or, for the rest, after it
 * committed and before they answer; when recording fails the call fails (ERR_AUDIT_WRITE_FAILED) instead of
 * acknowledging an unrecorded action.
 *
 * Several servers on one PostgreSQL database append to one shared chain, each signing checkpoints with its
 * own key: each records its key history (the signed introductions) in the database, and `fleetRing` gives a
 * verifier every server's keys (docs/operator/ha.md, "The audit trail").
 *
 * The recorder never signs over history it did not write: before each checkpoint it checks that the stored
 * chain still holds the head of the last checkpoint it signed (or that a witness holds) and that every record
 * after it links on. A database rewritten behind its back gets no signature (ERR_AUDIT_CHAIN_BROKEN, logged).
 */
import * as path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { AuditSigningKey } from '../../audit/audit-key';
import { canonicalJson } from '../../audit/canonical';
import { recordHash, type ChainHead } from '../../audit/chain';
import { signCheckpoint, type AuditCheckpoint } from '../../audit/checkpoint';
import {
  parseKeyIntroduction,
  ringFromIntroductions,
  type AuditKeyIntroduction,
} from '../../audit/key-history';
import { AuditKeyRing, type AuditKeyEntry } from '../../audit/key-ring';
import type { AuditEvent, AuditRecord } from '../../audit/record';
import type { RotatingAuditKey } from '../../audit/rotating-key';
import {
  parseWitnessLines,
  signChainKeyPin,
  witnessLine,
  type AuditWitness,
  type WitnessEntry,
} from '../../audit/witness';
import {
  AuditChainBrokenError,
  AuditError,
  AuditWriteFailedError,
  ErrorCode,
  isLanyardError,
} from '../../errors';
import type { Store, StoreOps } from '../../store/store';
import type { Logger } from '../../internal/logging';

/** The audit key's directory inside the data dir (the key, its history, the local witness). */
export const AUDIT_DIR = 'audit';
/** The audit key's file inside the data dir. */
export const AUDIT_KEY_FILE = path.join(AUDIT_DIR, 'audit-key.pem');
/** The witness the server always keeps, beside its key: checkpoints and pins outside the database. */
export const LOCAL_WITNESS_FILE = path.join(AUDIT_DIR, 'witness.jsonl');

/** Records read per page when checking that the chain continues the last signed head. */
const CONTINUITY_PAGE = 1000;

export interface AuditRecorderOptions {
  store: Store;
  keys: RotatingAuditKey;
  /** The server's chain: its SPIFFE ID. */
  chain: string;
  /**
   * This server among those sharing the database (`<data_dir>/server-id`): its key history is recorded in
   * the database under it. Absent: not recorded (a store no other server reads).
   */
  serverId?: string;
  clock: () => Date;
  logger: Logger;
  /** Seconds between checkpoints (config audit.checkpoint_interval). */
  checkpointIntervalSeconds: number;
  /** Seconds a key signs before it is replaced (audit.key_rotation_interval); absent: never rotated. */
  keyRotationSeconds?: number;
  /** Where checkpoints, pins and key introductions are copied; the local file witness first. */
  witnesses?: readonly AuditWitness[];
  /**
   * Told how long each append took and whether it was written: `direct` until committed, `transaction` the
   * append inside the caller's transaction (its commit is the caller's). For the metrics.
   */
  onAppend?: (mode: AuditAppendMode, seconds: number, ok: boolean) => void;
}

export type AuditAppendMode = 'direct' | 'transaction';

export class AuditRecorder {
  readonly chain: string;
  readonly witnesses: readonly AuditWitness[];
  private readonly options: AuditRecorderOptions;
  private readonly keys: RotatingAuditKey;
  private timer: NodeJS.Timeout | undefined;
  /** The newest checkpoint of this chain known good: the chain must continue its head. */
  private lastSigned: AuditCheckpoint | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private readonly keyListeners = new Set<() => void>();

  constructor(options: AuditRecorderOptions) {
    this.options = options;
    this.chain = options.chain;
    this.keys = options.keys;
    this.witnesses = options.witnesses ?? [];
  }

  /** The key that signs now. */
  get key(): AuditSigningKey {
    return this.keys.signing;
  }

  /** Every audit key with its window, retired ones included (what verify checks checkpoints with). */
  ring(): AuditKeyRing {
    return this.keys.ring();
  }

  /**
   * The keys of every server writing the shared chain: this server's own (from its data dir), then each other
   * server's key history recorded in the database, accepted only when its introductions verify (each key
   * introduced by its predecessor). A history that does not verify is left out and logged, so the checkpoints
   * it would vouch for fail verification: nothing is trusted that its own history does not prove.
   */
  async fleetRing(): Promise<{ ring: AuditKeyRing; servers: number; refused: string[] }> {
    const own = this.ring();
    const entries: AuditKeyEntry[] = [...own.entries];
    const known = new Set(entries.map((e) => e.key.keyId));
    const refused: string[] = [];
    let servers = 1;
    for (const h of await this.options.store.audit.serverKeyHistories()) {
      if (h.serverId === this.options.serverId) continue;
      let ring: AuditKeyRing;
      try {
        const parsed: unknown = JSON.parse(h.introductionsJson);
        if (!Array.isArray(parsed)) throw new Error('not a JSON array');
        ring = ringFromIntroductions(parsed.map(parseKeyIntroduction));
      } catch (e) {
        refused.push(h.serverId);
        this.options.logger.error(
          { err: e, serverId: h.serverId },
          "another server's audit key history in the database does not verify: its checkpoints are not trusted",
        );
        continue;
      }
      servers++;
      for (const e of ring.entries) {
        if (known.has(e.key.keyId)) continue;
        known.add(e.key.keyId);
        entries.push(e);
      }
    }
    return { ring: new AuditKeyRing(entries), servers, refused };
  }

  /** Records this server's key history in the database (at start and after each rotation). */
  private async recordKeyHistory(): Promise<void> {
    const serverId = this.options.serverId;
    if (serverId === undefined) return;
    try {
      await this.options.store.audit.putServerKeyHistory(
        serverId,
        JSON.stringify(this.keys.introductions),
        this.options.clock(),
      );
    } catch (e) {
      this.options.logger.error(
        { err: e },
        'audit key history could not be recorded in the database: the other servers cannot verify this one',
      );
    }
  }

  get keyIntroductions(): readonly AuditKeyIntroduction[] {
    return this.keys.introductions;
  }

  /** Appends one record to the server's chain; resolves once it is committed. */
  record(event: AuditEvent): Promise<AuditRecord> {
    return this.appendThrough(this.options.store, event, 'direct');
  }

  /**
   * Appends one record through a store transaction handle: it commits with that transaction. The store reads
   * the chain head inside the transaction, so this and `record` share one chain and one source of seq/prevHash.
   */
  recordIn(tx: Pick<StoreOps, 'audit'>, event: AuditEvent): Promise<AuditRecord> {
    return this.appendThrough(tx, event, 'transaction');
  }

  private async appendThrough(
    target: Pick<StoreOps, 'audit'>,
    event: AuditEvent,
    mode: AuditAppendMode,
  ): Promise<AuditRecord> {
    const started = process.hrtime.bigint();
    const took = (): number => Number(process.hrtime.bigint() - started) / 1e9;
    try {
      const record = await target.audit.append(this.chain, event, this.options.clock());
      this.options.onAppend?.(mode, took(), true);
      return record;
    } catch (e) {
      this.options.onAppend?.(mode, took(), false);
      if (isLanyardError(e) && e.code === ErrorCode.AUDIT_RECORD_INVALID) throw e;
      this.options.logger.error({ err: e, event: event.event }, 'audit record could not be written');
      throw new AuditWriteFailedError('the audit trail could not be written; nothing was acknowledged', {
        cause: e,
      });
    }
  }

  /** Signs, stores and witnesses a checkpoint of the current head, unless that head is checkpointed already. */
  checkpoint(): Promise<AuditCheckpoint | undefined> {
    return this.serial(async () => (await this.signHeadLocked()).fresh);
  }

  /**
   * The checkpoint that covers the current head, signed now when the head moved since the last one. What
   * `lanyard audit export` and `verify --server` get first, so a healthy chain always verifies.
   * @throws AuditError(ERR_AUDIT_CHAIN_BROKEN) when the stored chain no longer continues the last signed head.
   */
  signHead(): Promise<AuditCheckpoint> {
    return this.serial(async () => (await this.signHeadLocked()).covering);
  }

  /**
   * Replaces the audit key now: the head is signed with the outgoing key first, the new key is introduced by
   * it (and the introduction witnessed), and a `key.rotate` record names both.
   */
  rotateKey(): Promise<AuditKeyIntroduction> {
    return this.serial(async () => {
      const outgoing = this.keys.signing.publicKey.keyId;
      try {
        await this.signHeadLocked();
      } catch (e) {
        // A chain that cannot be signed must not keep the old key alive: rotate anyway, loudly.
        this.options.logger.error({ err: e }, 'audit checkpoint before key rotation failed');
      }
      const last = this.lastSigned !== undefined ? new Date(Date.parse(this.lastSigned.time) + 1) : undefined;
      const intro = this.keys.rotate(this.options.clock(), last);
      this.options.logger.info(
        { keyId: intro.keyId, previousKeyId: outgoing, validFrom: intro.validFrom },
        'audit key rotated',
      );
      await this.publish({ type: 'audit-key', introduction: intro });
      // Before the new key signs anything: a checkpoint by a key no history introduces would not verify.
      await this.recordKeyHistory();
      for (const l of this.keyListeners) {
        try {
          l();
        } catch (e) {
          this.options.logger.error({ err: e }, 'audit key listener threw');
        }
      }
      await this.record({
        event: 'key.rotate',
        decision: 'allow',
        actor: this.chain,
        subject: intro.keyId,
        action: 'audit',
        reason: `audit key ${outgoing} -> ${intro.keyId} from ${intro.validFrom}`,
      });
      return intro;
    });
  }

  /** Called after the audit key rotated (the published keys changed). Returns an unsubscribe. */
  onKeysChange(listener: () => void): () => void {
    this.keyListeners.add(listener);
    return () => this.keyListeners.delete(listener);
  }

  /** Rotates when the current key has signed for `keyRotationSeconds`. @returns the introduction, if any. */
  async rotateKeyIfDue(): Promise<AuditKeyIntroduction | undefined> {
    const every = this.options.keyRotationSeconds;
    if (every === undefined || every <= 0) return undefined;
    if (this.options.clock().getTime() < this.keys.currentSince.getTime() + every * 1000) return undefined;
    return this.rotateKey();
  }

  /**
   * A shipped chain's key was pinned: the pin, signed with the audit key, goes to the witnesses so a database
   * writer cannot re-pin the chain unseen.
   */
  async witnessPin(chain: string, x: string): Promise<void> {
    await this.publish({ type: 'chain-key', pin: signChainKeyPin(chain, x, this.signingTime(), this.key) });
  }

  /** A checkpoint of a shipped chain, accepted with its shipment. */
  async witnessCheckpoint(c: AuditCheckpoint): Promise<void> {
    await this.publish({ type: 'checkpoint', checkpoint: c });
  }

  /** Every readable witness's lines, for `lanyard audit verify --server`. */
  async readWitnesses(): Promise<{ name: string; lines: string[] }[]> {
    const out: { name: string; lines: string[] }[] = [];
    for (const w of this.witnesses)
      if (w.readLines !== undefined) out.push({ name: w.name, lines: await w.readLines() });
    return out;
  }

  /**
   * Start-up: finds the last good checkpoint (in a witness or the store), brings the witnesses up to date with
   * the key history and the pins, rotates the key when due, signs the head (so a chain left unsigned by a
   * crash is signed at once), and starts the timer (unref'd: it never keeps the process alive).
   */
  async start(): Promise<void> {
    await this.serial(() => this.loadLastSigned());
    await this.recordKeyHistory();
    await this.syncWitnesses();
    try {
      await this.rotateKeyIfDue();
    } catch (e) {
      this.options.logger.error({ err: e }, 'audit key rotation failed; retrying at the next interval');
    }
    try {
      await this.checkpoint();
    } catch (e) {
      this.options.logger.error({ err: e }, 'start-up audit checkpoint failed');
    }
    const ms = this.options.checkpointIntervalSeconds * 1000;
    this.timer = setInterval(() => {
      this.rotateKeyIfDue()
        .then(() => this.checkpoint())
        .catch((e: unknown) =>
          this.options.logger.warn({ err: e }, 'audit checkpoint failed; retrying at the next interval'),
        );
    }, ms);
    this.timer.unref();
  }

  /** Stops the timer, signs a last checkpoint (graceful shutdown) and closes the witnesses. */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    try {
      await this.checkpoint();
    } catch (e) {
      this.options.logger.warn({ err: e }, 'final audit checkpoint failed');
    }
    await this.running.catch(() => undefined);
    for (const w of this.witnesses) await w.close().catch(() => undefined);
  }

  // --- internals ---

  /** Runs `fn` after every earlier checkpoint or rotation: one signer at a time. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.running.then(fn);
    this.running = run.catch(() => undefined);
    return run;
  }

  /** Never before the current key's window: a clock stepped back must not date a checkpoint outside it. */
  private signingTime(): Date {
    return new Date(Math.max(this.options.clock().getTime(), this.keys.currentSince.getTime()));
  }

  private async signHeadLocked(): Promise<{ covering: AuditCheckpoint; fresh?: AuditCheckpoint }> {
    const head = await this.options.store.audit.head(this.chain);
    const last = this.lastSigned;
    if (last !== undefined && last.seq === head.seq && last.headHash === head.hash) return { covering: last };
    await this.checkContinues(head);
    const c = signCheckpoint(head, this.key, this.signingTime());
    await this.options.store.audit.addCheckpoint(c);
    this.lastSigned = c;
    this.options.logger.debug({ seq: c.seq, keyId: c.keyId }, 'audit checkpoint signed');
    await this.publish({ type: 'checkpoint', checkpoint: c });
    return { covering: c, fresh: c };
  }

  /** The stored chain holds the last signed head and every record after it links on to `head`. */
  private async checkContinues(head: ChainHead): Promise<void> {
    const last = this.lastSigned;
    if (last === undefined) return;
    const broken = (why: string): AuditError => {
      const e = new AuditChainBrokenError(
        `the server's audit chain in the database does not continue the checkpoint signed at ${last.seq} (${last.time}): ${why}; refusing to sign it (lanyard audit verify --server shows where)`,
      );
      this.options.logger.error({ seq: last.seq, headSeq: head.seq }, e.message);
      return e;
    };
    if (head.seq < last.seq) throw broken(`the chain ends at ${head.seq}`);
    let prevSeq = last.seq;
    let prevHash = last.headHash;
    let position = Math.max(0, last.seq - 1);
    let first = last.seq > 0;
    // Records appended after `head` was read are the next checkpoint's: the walk stops at the head. Calls go on
    // during its turns (below), so under steady issuance the pages past the head never run short.
    let reachedHead = false;
    for (;;) {
      const { records, nextPosition } = await this.options.store.audit.readRecords(
        this.chain,
        position,
        CONTINUITY_PAGE,
      );
      for (const r of records) {
        if (!first && r.seq > head.seq) {
          reachedHead = true;
          break;
        }
        if (first) {
          first = false;
          if (r.seq !== last.seq || r.hash !== last.headHash || recordHash(r) !== r.hash)
            throw broken(`record ${last.seq} is not the one it signed`);
          continue;
        }
        if (r.seq !== prevSeq + 1 || r.prevHash !== prevHash || recordHash(r) !== r.hash) {
          throw broken(`record ${r.seq} does not follow record ${prevSeq}`);
        }
        prevSeq = r.seq;
        prevHash = r.hash;
      }
      if (reachedHead || records.length < CONTINUITY_PAGE) break;
      position = nextPosition;
      // SQLite's reads settle in microtasks, so without a turn of the event loop a long unsigned tail (a
      // checkpoint interval of busy issuance, or history seeded in bulk) would hold the server's thread for
      // the whole check: every Renew and EndSession would wait behind it.
      await nextTurn();
    }
    if (first) throw broken(`record ${last.seq} is missing`);
    if (prevSeq !== head.seq || prevHash !== head.hash)
      throw broken(`the head ${head.seq} is not reached by links`);
  }

  /**
   * The newest checkpoint of this chain that verifies, from the witnesses and the store. The store's newest is
   * read alone: when it verifies no older one can be newer, so a chain of millions of checkpoints is not read
   * whole at every start. Only when it does not (a forged row) are the others read, a page at a time.
   */
  private async loadLastSigned(): Promise<void> {
    const ring = this.ring();
    const consider = (c: AuditCheckpoint): void => {
      if (ring.checkCheckpoint(c) !== undefined) return;
      const l = this.lastSigned;
      if (l === undefined || c.seq > l.seq || (c.seq === l.seq && c.time > l.time)) this.lastSigned = c;
    };
    const audit = this.options.store.audit;
    const latest = await audit.latestCheckpoint(this.chain);
    if (latest !== undefined) consider(latest);
    if (latest !== undefined && this.lastSigned === undefined) {
      for (let after: AuditCheckpoint | undefined; ;) {
        const page = await audit.readCheckpoints(this.chain, after, CONTINUITY_PAGE);
        for (const c of page) consider(c);
        if (page.length < CONTINUITY_PAGE) break;
        after = page[page.length - 1];
      }
    }
    for (const w of this.witnesses) {
      if (w.readLines === undefined) continue;
      try {
        for (const c of parseWitnessLines(w.name, await w.readLines()).checkpoints)
          if (c.chain === this.chain) consider(c);
      } catch (e) {
        this.options.logger.error({ err: e, witness: w.name }, 'audit witness unreadable');
      }
    }
  }

  /** Puts the key history and every pinned key into each witness that lacks them. */
  private async syncWitnesses(): Promise<void> {
    const pins = (await this.options.store.audit.chains()).filter((c) => c.publicJwk !== undefined);
    for (const w of this.witnesses) {
      try {
        if (w.readLines === undefined) {
          // Write-only: it cannot say what it has; the key history is small, so it gets it at every start.
          for (const introduction of this.keys.introductions)
            await w.append(witnessLine({ type: 'audit-key', introduction }));
          continue;
        }
        const held = parseWitnessLines(w.name, await w.readLines());
        for (const introduction of this.keys.introductions) {
          if (!held.introductions.some((i) => i.keyId === introduction.keyId)) {
            await w.append(witnessLine({ type: 'audit-key', introduction }));
          }
        }
        for (const p of pins) {
          const x = jwkX(p.publicJwk!);
          const pinned = held.pins.filter((h) => h.chain === p.chain);
          if (pinned.length === 0) {
            await w.append(
              witnessLine({
                type: 'chain-key',
                pin: signChainKeyPin(p.chain, x, this.signingTime(), this.key),
              }),
            );
          } else if (pinned.some((h) => h.x !== x)) {
            this.options.logger.error(
              { chain: p.chain, witness: w.name },
              'the database pins another key for this shipped chain than the witness does',
            );
          }
        }
      } catch (e) {
        this.options.logger.error(
          { err: e, witness: w.name },
          'audit witness could not be brought up to date',
        );
      }
    }
  }

  /** To every witness; a witness that fails is logged and skipped (the next entry tries it again). */
  private async publish(entry: WitnessEntry): Promise<void> {
    const line = witnessLine(entry);
    for (const w of this.witnesses) {
      try {
        await w.append(line);
      } catch (e) {
        this.options.logger.warn(
          { err: e, witness: w.name, entry: entry.type },
          'audit witness append failed',
        );
      }
    }
  }
}

/** The `x` of a pinned JWK as the store keeps it (canonical JSON of kty, crv, x). */
export function jwkX(publicJwk: string): string {
  const x = (JSON.parse(publicJwk) as { x?: unknown }).x;
  return typeof x === 'string' ? x : '';
}

/** The pinned form the store keeps for a shipper's key. */
export function pinnedJwkText(x: string): string {
  return canonicalJson({ kty: 'OKP', crv: 'Ed25519', x });
}
