/**
 * The server's AuditRecorder: appends to the server's own chain in the store (durable before it resolves)
 * and signs a checkpoint of the head at a fixed interval and on shutdown, with the audit key from the data
 * dir (`audit/audit-key.pem`, 0600). Handlers record inside the transaction of their state change (`recordIn`)
 * or, for the rest, after it committed and before they answer; when recording fails the call fails (ERR_AUDIT_WRITE_FAILED) instead of acknowledging an
 * unrecorded action.
 */
import * as path from 'node:path';
import type { AuditSigningKey } from '../../audit/audit-key';
import { signCheckpoint, type AuditCheckpoint } from '../../audit/checkpoint';
import type { AuditEvent, AuditRecord } from '../../audit/record';
import { AuditError, ErrorCode, isLanyardError } from '../../errors';
import type { Store, StoreOps } from '../../store/store';
import type { Logger } from '../logging';

/** The audit key's file inside the data dir. */
export const AUDIT_KEY_FILE = path.join('audit', 'audit-key.pem');

export interface AuditRecorderOptions {
  store: Store;
  key: AuditSigningKey;
  /** The server's chain: its SPIFFE ID. */
  chain: string;
  clock: () => Date;
  logger: Logger;
  /** Seconds between checkpoints (config audit.checkpoint_interval). */
  checkpointIntervalSeconds: number;
}

export class AuditRecorder {
  readonly chain: string;
  readonly key: AuditSigningKey;
  private readonly options: AuditRecorderOptions;
  private timer: NodeJS.Timeout | undefined;
  /** Head sequence of the last checkpoint written, so an idle server does not sign the same head again. */
  private checkpointedSeq = -1;
  private running: Promise<unknown> = Promise.resolve();

  constructor(options: AuditRecorderOptions) {
    this.options = options;
    this.chain = options.chain;
    this.key = options.key;
  }

  /** Appends one record to the server's chain; resolves once it is committed. */
  record(event: AuditEvent): Promise<AuditRecord> {
    return this.appendThrough(this.options.store, event);
  }

  /**
   * Appends one record through a store transaction handle: it commits with that transaction. The store reads
   * the chain head inside the transaction, so this and `record` share one chain and one source of seq/prevHash.
   */
  recordIn(tx: Pick<StoreOps, 'audit'>, event: AuditEvent): Promise<AuditRecord> {
    return this.appendThrough(tx, event);
  }

  private async appendThrough(target: Pick<StoreOps, 'audit'>, event: AuditEvent): Promise<AuditRecord> {
    try {
      return await target.audit.append(this.chain, event, this.options.clock());
    } catch (e) {
      if (isLanyardError(e) && e.code === ErrorCode.AUDIT_RECORD_INVALID) throw e;
      this.options.logger.error({ err: e, event: event.event }, 'audit record could not be written');
      throw new AuditError(
        ErrorCode.AUDIT_WRITE_FAILED,
        'the audit trail could not be written; nothing was acknowledged',
        {
          cause: e,
        },
      );
    }
  }

  /** Signs and stores a checkpoint of the current head, unless that head is checkpointed already. */
  checkpoint(): Promise<AuditCheckpoint | undefined> {
    const run = this.running.then(async () => {
      const head = await this.options.store.audit.head(this.chain);
      if (head.seq === this.checkpointedSeq) return undefined;
      const c = signCheckpoint(head, this.key, this.options.clock());
      await this.options.store.audit.addCheckpoint(c);
      this.checkpointedSeq = head.seq;
      this.options.logger.debug({ seq: c.seq, keyId: c.keyId }, 'audit checkpoint signed');
      return c;
    });
    this.running = run.catch(() => undefined);
    return run;
  }

  /** Starts the checkpoint timer (unref'd: it never keeps the process alive). */
  start(): void {
    const ms = this.options.checkpointIntervalSeconds * 1000;
    this.timer = setInterval(() => {
      this.checkpoint().catch((e: unknown) =>
        this.options.logger.warn({ err: e }, 'audit checkpoint failed; retrying at the next interval'),
      );
    }, ms);
    this.timer.unref();
  }

  /** Stops the timer and signs a last checkpoint (graceful shutdown), before the store closes. */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    try {
      await this.checkpoint();
    } catch (e) {
      this.options.logger.warn({ err: e }, 'final audit checkpoint failed');
    }
  }
}
