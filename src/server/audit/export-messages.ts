/**
 * How ExportAudit cuts a chain's JSON lines into stream messages, and how a client puts them back. Lines go
 * several to a message up to EXPORT_MESSAGE_CHARS; a line longer than that (a record with large `changes`: an
 * entry update records every changed field in full) goes alone, as pieces of its UTF-8 bytes in consecutive
 * messages. So no message comes near gRPC's 4 MiB limit whatever a record holds, and a client holds at most one
 * line, of at most MAX_EXPORT_LINE_BYTES, besides the message it reads.
 */
import { AuditRecordInvalidError } from '../../errors';
import type { ExportAuditResponse } from '../../gen/lanyard/v1/audit';

/**
 * A message is sent once its lines would pass this many UTF-16 code units: at most 3 MiB of UTF-8 (a code unit
 * is at most 3 bytes), under the 4 MiB message limit, and large enough (about 2,000 identifier-only records)
 * that per-message costs vanish beside the records.
 */
export const EXPORT_MESSAGE_CHARS = 1024 * 1024;

/** Bytes per piece of a line too long for a message of its own. */
export const EXPORT_PIECE_BYTES = 1024 * 1024;

/**
 * The longest line a client puts together (UTF-8 bytes): above the longest record line record.ts admits, which
 * is about 385 MiB — 32 changes of two 1 MiB values and a 256-byte field name, every byte a control character
 * written as a 6-byte `\u00XX`, plus 14 string fields and 64 scopes of 2 KiB (likewise escaped) — and under V8's
 * longest string (2^29 - 24 code units). A longer line is no record Lanyard writes: refused, not held.
 */
export const MAX_EXPORT_LINE_BYTES = 400 * 1024 * 1024;

type Message = Pick<ExportAuditResponse, 'lines' | 'linePiece' | 'lineContinues'>;

/**
 * Gathers lines into messages and sends each when full. `add` returns the send's promise when it sent (await
 * it: the send waits for flow control), else nothing: a line that only joins the message costs no promise.
 */
export class ExportMessageWriter {
  private lines: string[] = [];
  private chars = 0;

  constructor(
    private readonly send: (m: Message) => Promise<void>,
    private readonly messageChars = EXPORT_MESSAGE_CHARS,
    private readonly pieceBytes = EXPORT_PIECE_BYTES,
  ) {}

  add(line: string): Promise<void> | undefined {
    if (line.length > this.messageChars) return this.addPieces(line);
    const full = this.chars + line.length > this.messageChars ? this.flush() : undefined;
    this.lines.push(line);
    this.chars += line.length;
    return full;
  }

  private async addPieces(line: string): Promise<void> {
    await this.flush();
    const bytes = Buffer.from(line, 'utf8');
    for (let at = 0; at < bytes.length; at += this.pieceBytes) {
      const end = Math.min(bytes.length, at + this.pieceBytes);
      await this.send({ lines: [], linePiece: bytes.subarray(at, end), lineContinues: end < bytes.length });
    }
  }

  /** Sends the lines gathered so far, if any. */
  async flush(): Promise<void> {
    if (this.lines.length === 0) return;
    const lines = this.lines;
    this.lines = [];
    this.chars = 0;
    await this.send({ lines, linePiece: Buffer.alloc(0), lineContinues: false });
  }
}

/**
 * Puts an export's messages back into lines. Fails closed (ERR_AUDIT_RECORD_INVALID) on a line longer than
 * `maxLineBytes`, a message that mixes lines with a piece of an unfinished line, and an export that ends inside
 * a line: a cut line must not pass for a chain's end.
 */
export class ExportLineJoiner {
  private pieces: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly maxLineBytes = MAX_EXPORT_LINE_BYTES) {}

  /** The lines a message completes, in order. */
  take(m: Message): string[] {
    if (m.linePiece.length === 0 && !m.lineContinues) {
      if (this.pieces.length > 0 && m.lines.length > 0) {
        throw new AuditRecordInvalidError('audit export: lines arrived inside an unfinished long line');
      }
      return m.lines;
    }
    if (m.lines.length > 0) {
      throw new AuditRecordInvalidError('audit export: a message holds both lines and a piece of a line');
    }
    this.bytes += m.linePiece.length;
    if (this.bytes > this.maxLineBytes) {
      this.pieces = [];
      throw new AuditRecordInvalidError(
        `audit export: a line longer than ${this.maxLineBytes} bytes, longer than any audit record`,
      );
    }
    this.pieces.push(m.linePiece);
    if (m.lineContinues) return [];
    const line = Buffer.concat(this.pieces, this.bytes).toString('utf8');
    this.pieces = [];
    this.bytes = 0;
    return [line];
  }

  /** The export ended: nothing may be left unfinished. */
  end(): void {
    if (this.pieces.length > 0) {
      throw new AuditRecordInvalidError('audit export: the stream ended inside a line');
    }
  }

  /** Bytes of the unfinished line held now. */
  get held(): number {
    return this.bytes;
  }
}
