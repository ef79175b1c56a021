/**
 * A witness in a file: append-only JSON lines, each append written and fdatasync'ed before it resolves. Put it
 * where the database's writers cannot reach (another mount, an append-only (`chattr +a`) file, a share that
 * another host backs up); the server also keeps one in its data dir (`audit/witness.jsonl`).
 *
 * A torn last line (a crash in the middle of an append, never acknowledged) is cut off before the next
 * append and ignored by readers. A file that group or others may write is refused: anyone could cut it.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AuditError, AuditRecordInvalidError, AuditWriteFailedError } from '../errors';
import { AsyncMutex } from '../internal/async-mutex';
import type { AuditWitness } from './witness';

export class FileWitness implements AuditWitness {
  readonly name: string;
  private readonly mutex = new AsyncMutex();
  private fh: fsp.FileHandle | undefined;
  /** A write failed: the file may end in a partial line, cut before the next append. */
  private damaged = true;
  private closed = false;

  private constructor(readonly file: string) {
    this.name = `file:${file}`;
  }

  /**
   * Opens (creating, 0600, in a directory created 0700 when missing) the witness file.
   * @throws AuditError(ERR_AUDIT_WRITE_FAILED) when it cannot be created or opened, or is writable by others.
   */
  static async open(file: string): Promise<FileWitness> {
    const w = new FileWitness(path.resolve(file));
    try {
      await fsp.mkdir(path.dirname(w.file), { recursive: true, mode: 0o700 });
      const fh = await fsp.open(w.file, 'a', 0o600);
      const st = await fh.stat();
      if (!st.isFile() || (st.mode & 0o022) !== 0) {
        await fh.close();
        throw new AuditWriteFailedError(
          `audit witness ${w.file} is ${st.isFile() ? `writable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it` : 'not a regular file'}`,
        );
      }
      w.fh = fh;
    } catch (e) {
      if (e instanceof AuditError) throw e;
      throw new AuditWriteFailedError(`cannot open audit witness ${w.file}`, { cause: e });
    }
    return w;
  }

  append(line: string): Promise<void> {
    if (line.includes('\n')) {
      return Promise.reject(new AuditRecordInvalidError('a witness entry is one line'));
    }
    return this.mutex.run(async () => {
      if (this.closed || this.fh === undefined) {
        throw new AuditWriteFailedError(`audit witness ${this.file} is closed`);
      }
      try {
        if (this.damaged) await this.cutTornTail();
        await this.fh.write(`${line}\n`);
        await this.fh.datasync();
        this.damaged = false;
      } catch (e) {
        this.damaged = true;
        throw new AuditWriteFailedError(`cannot append to audit witness ${this.file}`, {
          cause: e,
        });
      }
    });
  }

  async readLines(): Promise<string[]> {
    return readWitnessFile(this.file);
  }

  close(): Promise<void> {
    return this.mutex.run(async () => {
      if (this.closed) return;
      this.closed = true;
      await this.fh?.close().catch(() => undefined);
    });
  }

  /** Opening counts as damaged too: the last run may have died mid-line. */
  private async cutTornTail(): Promise<void> {
    const size = (await this.fh!.stat()).size;
    if (size === 0) return;
    const text = await fsp.readFile(this.file, 'utf8');
    if (text.endsWith('\n')) return;
    await fsp.truncate(this.file, Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1), 'utf8'));
  }
}

/**
 * The complete lines of a witness file (a torn last line is left out); [] when the file does not exist.
 * For `lanyard audit verify --witness F` as well as the server.
 */
export async function readWitnessFile(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new AuditWriteFailedError(`cannot read audit witness ${file}`, { cause: e });
  }
  const complete = text.endsWith('\n') ? text : text.slice(0, text.lastIndexOf('\n') + 1);
  return complete.split('\n').filter((l) => l !== '');
}
