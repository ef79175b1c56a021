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
import { ioStep } from '../internal/secure-file';
import { AuditChainBrokenError, AuditRecordInvalidError, AuditWriteFailedError } from '../errors';
import { AsyncMutex } from '../internal/async-mutex';
import { AuditPublicKey, AuditSigningKey } from './audit-key';
import { emptyHead, nextRecord, recordLine, type ChainHead } from './chain';
import { checkpointLine, signCheckpoint, type AuditCheckpoint } from './checkpoint';
import { chainLines, headerLine, parseChainText } from './jsonl';
import type { AuditLog } from './log';
import type { AuditEvent, AuditRecord } from './record';
import { verifyAuditChain } from './verify-chain';

export interface FileAuditLogOptions {
  file: string;
  /** The chain's name: the service's SPIFFE ID. Must match the header of an existing file. */
  chain: string;
  /** The audit key file (created 0600 when missing); default `<file>.key`. */
  keyFile?: string;
  clock?: () => Date;
  /**
   * Opens the chain file for appending; default `fs.promises.open`. For fault injection in tests (a disk that
   * fills up); production code leaves it alone.
   */
  openForAppend?: (file: string) => Promise<AppendHandle>;
}

/** What the log needs of an open file: a FileHandle, or a test's wrapper around one. */
export interface AppendHandle {
  write(data: string): Promise<unknown>;
  datasync(): Promise<void>;
  sync(): Promise<void>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

export class FileAuditLog implements AuditLog {
  readonly chain: string;
  readonly file: string;
  readonly key: AuditSigningKey;
  private readonly clock: () => Date;
  private readonly mutex = new AsyncMutex();
  private current: ChainHead;
  private closed = false;
  /** A write failed: the file may end in a partial line, so it is repaired before the next append. */
  private damaged = false;

  private constructor(
    file: string,
    chain: string,
    key: AuditSigningKey,
    head: ChainHead,
    private fh: AppendHandle,
    clock: () => Date,
    private readonly openForAppend: (file: string) => Promise<AppendHandle>,
  ) {
    this.file = file;
    this.chain = chain;
    this.key = key;
    this.current = head;
    this.clock = clock;
  }

  /** False from a failed write until the next append has repaired the file and succeeded. */
  get healthy(): boolean {
    return !this.damaged && !this.closed;
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
      // Only complete lines count: an unterminated last line (even one that parses) was never acknowledged,
      // and the next append would run on from it.
      const kept = text.endsWith('\n') ? text : text.slice(0, text.lastIndexOf('\n') + 1);
      const parsed = parseChainText(kept);
      if (parsed.chain !== chain) {
        throw new AuditChainBrokenError(`${file} holds chain "${parsed.chain}", not "${chain}"`);
      }
      // A live chain has records after its last checkpoint; it is signed when shipped or closed.
      const result = verifyAuditChain(chain, parsed.records, parsed.checkpoints, key.publicKey, {
        allowUnsignedTail: true,
      });
      if (!result.ok) {
        throw new AuditChainBrokenError(
          `${file}: ${result.break!.kind} at ${result.break!.seq}: ${result.break!.message}; not appending to a broken chain`,
        );
      }
      if (kept !== text) {
        // The last append never completed (so was never acknowledged): drop its partial line. In bytes: the
        // records may hold non-ASCII text.
        await fsp.truncate(file, Buffer.byteLength(kept, 'utf8'));
      }
      head = { chain, seq: result.headSeq, hash: result.headHash };
    }
    const openForAppend = options.openForAppend ?? ((f: string) => fsp.open(f, 'a', 0o600));
    const fh = await openForAppend(file);
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
    return new FileAuditLog(file, chain, key, head, fh, options.clock ?? (() => new Date()), openForAppend);
  }

  append(event: AuditEvent): Promise<AuditRecord> {
    return this.mutex.run(async () => {
      await this.ready();
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
      await this.ready();
      const c = signCheckpoint(this.current, this.key, this.clock());
      await this.writeLine(checkpointLine(c));
      return c;
    });
  }

  addCheckpoint(checkpoint: AuditCheckpoint): Promise<void> {
    return this.mutex.run(async () => {
      await this.ready();
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
      throw new AuditWriteFailedError(
        `${file} ends in a partial line (being written, or torn by a crash): retry, or let the service reopen it`,
      );
    }
    if (parsed.publicJwk === undefined) {
      throw new AuditRecordInvalidError(`${file}: the header names no audit public key`);
    }
    const publicKey = AuditPublicKey.fromJwk(parsed.publicJwk);
    // The tail it is about to sign is unsigned by definition; everything else must verify.
    const result = verifyAuditChain(parsed.chain, parsed.records, parsed.checkpoints, publicKey, {
      allowUnsignedTail: true,
    });
    if (!result.ok) {
      throw new AuditChainBrokenError(
        `${file}: ${result.break!.kind} at ${result.break!.seq}: ${result.break!.message}`,
      );
    }
    if (result.checkpointedSeq === result.headSeq) return undefined;
    if (!fs.existsSync(keyFile)) {
      throw new AuditWriteFailedError(
        `${file} has no checkpoint over its last record and there is no audit key at ${keyFile} to sign one`,
      );
    }
    const key = AuditSigningKey.loadOrCreate(keyFile);
    if (key.publicKey.keyId !== publicKey.keyId) {
      throw new AuditChainBrokenError(`${keyFile} is not the audit key named in the header of ${file}`);
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
    try {
      await this.checkpoint();
    } finally {
      await this.mutex.run(async () => {
        if (this.closed) return;
        this.closed = true;
        await this.fh.close().catch(() => undefined);
      });
    }
  }

  private async readAll(): Promise<{ records: AuditRecord[]; checkpoints: AuditCheckpoint[] }> {
    return parseChainText(await fsp.readFile(this.file, 'utf8'));
  }

  private async writeLine(line: string): Promise<void> {
    try {
      await this.fh.write(`${line}\n`);
      await this.fh.datasync();
    } catch (e) {
      // A line may be half written: appending after it would corrupt the chain. The next append repairs
      // the tail first (ready()), so one full disk or I/O error does not silence the log for good.
      this.damaged = true;
      throw new AuditWriteFailedError(`cannot append to ${this.file}`, { cause: e });
    }
  }

  private async ready(): Promise<void> {
    if (this.closed) throw new AuditWriteFailedError(`${this.file}: the audit log is closed`);
    if (this.damaged) await this.repair();
  }

  /**
   * After a failed write: cut the file back to its last complete line (the failed append was never
   * acknowledged), check that what remains is this chain and verifies, take its head, and reopen. Stays
   * damaged (and every append fails) while the file cannot be read, cut or verified.
   */
  private async repair(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
      if (!text.endsWith('\n')) {
        text = text.slice(0, text.lastIndexOf('\n') + 1);
        await fsp.truncate(this.file, Buffer.byteLength(text, 'utf8'));
      }
    } catch (e) {
      throw new AuditWriteFailedError(`cannot repair ${this.file}`, { cause: e });
    }
    const parsed = parseChainText(text);
    const result = verifyAuditChain(this.chain, parsed.records, parsed.checkpoints, this.key.publicKey, {
      allowUnsignedTail: true,
    });
    if (parsed.chain !== this.chain || !result.ok) {
      throw new AuditChainBrokenError(
        `${this.file} does not verify after a failed write` +
          (result.break !== undefined ? `: ${result.break.kind} at ${result.break.seq}` : '') +
          '; not appending to a broken chain',
      );
    }
    try {
      this.fh = await this.openForAppend(this.file);
    } catch (e) {
      throw new AuditWriteFailedError(`cannot reopen ${this.file}`, { cause: e });
    }
    this.current = { chain: this.chain, seq: result.headSeq, hash: result.headHash };
    this.damaged = false;
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
