/**
 * A chain in a local file, for services that verify peers with the hop helpers: append-only JSON lines
 * (jsonl.ts), each append written and fdatasync'ed before it resolves, signed with the service's own audit
 * key (a 0600 file beside the chain). The header names the chain and its public key, so the file can be
 * verified anywhere and shipped to the server (AuditService.Ingest).
 *
 * On open the file is verified; a torn last line (a crash in the middle of an append, never acknowledged)
 * is cut off; any other break refuses the open, so nothing is ever appended after a break.
 */
import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ioStep } from '../ca/secure-file';
import { AuditError, ErrorCode } from '../errors';
import { AsyncMutex } from '../store/async-mutex';
import { AuditPublicKey, AuditSigningKey } from './audit-key';
import { emptyHead, nextRecord, recordLine, type ChainHead } from './chain';
import { checkpointLine, signCheckpoint, type AuditCheckpoint } from './checkpoint';
import { chainLines, headerLine, parseChainText } from './jsonl';
import type { AuditLog } from './log';
import type { AuditEvent, AuditRecord } from './record';
import { verifyChain } from './verify-chain';

export interface FileAuditLogOptions {
  file: string;
  /** The chain's name: the service's SPIFFE ID. Must match the header of an existing file. */
  chain: string;
  /** The audit key file (created 0600 when missing); default `<file>.key`. */
  keyFile?: string;
  clock?: () => Date;
}

export class FileAuditLog implements AuditLog {
  readonly chain: string;
  readonly file: string;
  readonly key: AuditSigningKey;
  private readonly clock: () => Date;
  private readonly mutex = new AsyncMutex();
  private current: ChainHead;
  private closed = false;

  private constructor(
    file: string,
    chain: string,
    key: AuditSigningKey,
    head: ChainHead,
    private readonly fh: fsp.FileHandle,
    clock: () => Date,
  ) {
    this.file = file;
    this.chain = chain;
    this.key = key;
    this.current = head;
    this.clock = clock;
  }

  static async open(options: FileAuditLogOptions): Promise<FileAuditLog> {
    const { file, chain } = options;
    const key = AuditSigningKey.loadOrCreate(options.keyFile ?? `${file}.key`);
    ioStep(`cannot create ${path.dirname(file)}`, () =>
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 }),
    );
    let head = emptyHead(chain);
    const exists = fs.existsSync(file);
    if (exists) {
      const text = await fsp.readFile(file, 'utf8');
      const parsed = parseChainText(text);
      if (parsed.chain !== chain) {
        throw new AuditError(
          ErrorCode.AUDIT_CHAIN_BROKEN,
          `${file} holds chain "${parsed.chain}", not "${chain}"`,
        );
      }
      const result = verifyChain(chain, parsed.records, parsed.checkpoints, key.publicKey);
      if (!result.ok) {
        throw new AuditError(
          ErrorCode.AUDIT_CHAIN_BROKEN,
          `${file}: ${result.break!.kind} at ${result.break!.seq}: ${result.break!.message}; not appending to a broken chain`,
        );
      }
      if (parsed.tornTail) {
        // The last append never completed (so was never acknowledged): drop its partial line.
        await fsp.truncate(file, text.lastIndexOf('\n') + 1);
      }
      head = { chain, seq: result.headSeq, hash: result.headHash };
    }
    const fh = await fsp.open(file, 'a', 0o600);
    try {
      if (!exists || (await fh.stat()).size === 0) {
        await fh.write(`${headerLine(chain, key.publicKey.jwk())}\n`);
        await fh.sync();
        await syncDir(path.dirname(file));
      }
    } catch (e) {
      await fh.close();
      throw e;
    }
    return new FileAuditLog(file, chain, key, head, fh, options.clock ?? (() => new Date()));
  }

  append(event: AuditEvent): Promise<AuditRecord> {
    return this.mutex.run(async () => {
      this.assertOpen();
      const record = nextRecord(this.current, event, this.clock());
      await this.writeLine(recordLine(record));
      this.current = { chain: this.chain, seq: record.seq, hash: record.hash };
      return record;
    });
  }

  head(): Promise<ChainHead> {
    return Promise.resolve({ ...this.current });
  }

  /** Signs the current head with this chain's key and appends the checkpoint. */
  checkpoint(): Promise<AuditCheckpoint> {
    return this.mutex.run(async () => {
      this.assertOpen();
      const c = signCheckpoint(this.current, this.key, this.clock());
      await this.writeLine(checkpointLine(c));
      return c;
    });
  }

  addCheckpoint(checkpoint: AuditCheckpoint): Promise<void> {
    return this.mutex.run(async () => {
      this.assertOpen();
      await this.writeLine(checkpointLine(checkpoint));
    });
  }

  async checkpoints(): Promise<AuditCheckpoint[]> {
    return (await this.readAll()).checkpoints;
  }

  async readRecords(afterSeq: number, limit: number): Promise<AuditRecord[]> {
    return (await this.readAll()).records.filter((r) => r.seq > afterSeq).slice(0, limit);
  }

  /** The whole chain as JSON lines (header, records, checkpoints), as `lanyard audit export` writes it. */
  async exportLines(): Promise<string[]> {
    const { records, checkpoints } = await this.readAll();
    return chainLines(this.chain, records, checkpoints, this.key.publicKey.jwk());
  }

  /**
   * The chain ready to ship: a checkpoint over the current head is written first, because the server only
   * accepts a shipment whose last record a checkpoint signed with this chain's key covers.
   */
  async shipmentLines(): Promise<string[]> {
    await this.checkpoint();
    return this.exportLines();
  }

  /**
   * For `lanyard audit ship` while the service may still have the file open: signs the head of the file as
   * it stands and appends that checkpoint (one O_APPEND write, so it cannot interleave inside the service's
   * own lines). Refuses a torn or broken file rather than repairing it under a live writer.
   * @returns the checkpoint, or undefined when the last record already has one
   */
  static async checkpointFile(file: string, keyFile = `${file}.key`): Promise<AuditCheckpoint | undefined> {
    const parsed = parseChainText(await fsp.readFile(file, 'utf8'));
    if (parsed.tornTail) {
      throw new AuditError(
        ErrorCode.AUDIT_WRITE_FAILED,
        `${file} ends in a partial line (being written, or torn by a crash): retry, or let the service reopen it`,
      );
    }
    if (parsed.publicJwk === undefined) {
      throw new AuditError(ErrorCode.AUDIT_RECORD_INVALID, `${file}: the header names no audit public key`);
    }
    const publicKey = AuditPublicKey.fromJwk(parsed.publicJwk);
    const result = verifyChain(parsed.chain, parsed.records, parsed.checkpoints, publicKey);
    if (!result.ok) {
      throw new AuditError(
        ErrorCode.AUDIT_CHAIN_BROKEN,
        `${file}: ${result.break!.kind} at ${result.break!.seq}: ${result.break!.message}`,
      );
    }
    if (result.checkpointedSeq === result.headSeq) return undefined;
    if (!fs.existsSync(keyFile)) {
      throw new AuditError(
        ErrorCode.AUDIT_WRITE_FAILED,
        `${file} has no checkpoint over its last record and there is no audit key at ${keyFile} to sign one`,
      );
    }
    const key = AuditSigningKey.loadOrCreate(keyFile);
    if (key.publicKey.keyId !== publicKey.keyId) {
      throw new AuditError(
        ErrorCode.AUDIT_CHAIN_BROKEN,
        `${keyFile} is not the audit key named in the header of ${file}`,
      );
    }
    const head = { chain: parsed.chain, seq: result.headSeq, hash: result.headHash };
    const c = signCheckpoint(head, key, new Date());
    const fh = await fsp.open(file, 'a');
    try {
      await fh.write(`${checkpointLine(c)}\n`);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    return c;
  }

  /** Writes a final checkpoint and closes the file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.checkpoint();
    await this.mutex.run(async () => {
      this.closed = true;
      await this.fh.close();
    });
  }

  private async readAll(): Promise<{ records: AuditRecord[]; checkpoints: AuditCheckpoint[] }> {
    return parseChainText(await fsp.readFile(this.file, 'utf8'));
  }

  private async writeLine(line: string): Promise<void> {
    try {
      await this.fh.write(`${line}\n`);
      await this.fh.datasync();
    } catch (e) {
      // A line may be half written: appending after it would corrupt the chain. Reopening repairs the tail.
      this.closed = true;
      throw new AuditError(ErrorCode.AUDIT_WRITE_FAILED, `cannot append to ${this.file}`, { cause: e });
    }
  }

  private assertOpen(): void {
    if (this.closed)
      throw new AuditError(ErrorCode.AUDIT_WRITE_FAILED, `${this.file}: the audit log is closed`);
  }
}

/** The new file's directory entry must be durable too, or a crash could lose the whole file. */
async function syncDir(dir: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch {
    // Some file systems cannot fsync a directory; the data itself is synced.
  } finally {
    await fh?.close();
  }
}
