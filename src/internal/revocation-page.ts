/**
 * The compact form of a page of revocations (WatchRevocationsResponse.packed_revocations), for watchers that ask
 * for it (WatchRevocationsRequest.packed). A million revocations as protobuf messages cost a million nested
 * messages with two Timestamps each to encode and decode (about 75 bytes each); packed, a serial is its bytes,
 * sequences and times are deltas, and a page's repeated reasons are written once.
 *
 * Format 1: one byte 0x01, then the entries in ascending sequence order, each:
 *   varint   sequence - previous sequence (the first: - 0)
 *   byte     flags: 1 session (else certificate), 2 id as hex digits, 4 reason, 8 cause_sequence
 *   id       flag 2: one byte, the number of hex digits (1..255), then the digits as bytes (an odd count is
 *            padded with a leading zero digit); else varint byte length, then UTF-8
 *   reason   flag 4: varint index into the page's reasons so far; the next index means a new one, whose
 *            varint byte length and UTF-8 follow
 *   zigzag   revoked_at - previous revoked_at, milliseconds (the first: - 0)
 *   zigzag   expires_at - previous expires_at, milliseconds (the first: - 0)
 *   varint   cause_sequence (flag 8)
 * Varints are unsigned LEB128 of at most 8 bytes (values below 2^53). A reader refuses anything else with
 * PackedRevocationsError: a page it cannot read whole is not applied at all.
 */

export const PACKED_REVOCATIONS_FORMAT = 1;

const FLAG_SESSION = 1;
const FLAG_HEX_ID = 2;
const FLAG_REASON = 4;
const FLAG_CAUSE = 8;
const HEX_ID = /^[0-9a-f]{1,255}$/;

/** One revocation as the page carries it. */
export interface PackedRevocation {
  sequence: number;
  kind: 'certificate' | 'session';
  id: string;
  /** '' for none. */
  reason: string;
  revokedAtMs: number;
  expiresAtMs: number;
  /** 0 for none. */
  causeSequence: number;
}

export class PackedRevocationsError extends Error {}

/**
 * Writes one page. `bound(r)` is an upper bound of what adding `r` costs, so a caller can keep pages under a
 * byte limit without encoding twice.
 */
export class PackedPageWriter {
  private buf = Buffer.allocUnsafe(4096);
  private length = 1;
  private previousSequence = 0;
  private previousRevokedAt = 0;
  private previousExpiresAt = 0;
  private readonly reasons = new Map<string, number>();
  count = 0;
  /** Sequence of the last entry written (0 before the first). */
  lastSequence = 0;

  constructor() {
    this.buf[0] = PACKED_REVOCATIONS_FORMAT;
  }

  get size(): number {
    return this.length;
  }

  static bound(r: { id: string; reason: string }): number {
    return PackedPageWriter.boundOf(r.id.length, r.reason.length);
  }

  /** bound, from the lengths (UTF-16 code units) of the id and the reason. */
  static boundOf(idLength: number, reasonLength: number): number {
    // Three varints and two zigzags of at most 8 bytes, the flags, the id and the reason with their lengths.
    return 5 * 8 + 1 + 8 + idLength * 3 + 8 + reasonLength * 3;
  }

  /**
   * Whether `src[start, end)` is an id that add writes as hex digits (lower-case hex, 1 to 255 digits), when it
   * is a certificate's: such an id is its bytes' length in UTF-16 code units too.
   */
  static isHexId(src: Uint8Array, start: number, end: number): boolean {
    if (end <= start || end - start > 255) return false;
    for (let i = start; i < end; i++) {
      const c = src[i]!;
      if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
    }
    return true;
  }

  add(r: {
    sequence: number;
    kind: string;
    id: string;
    reason: string;
    revokedAt: Date | number;
    expiresAt: Date | number;
    causeSequence?: number | undefined;
  }): void {
    const sequenceDelta = r.sequence - this.previousSequence;
    if (!Number.isSafeInteger(sequenceDelta) || sequenceDelta <= 0) {
      throw new PackedRevocationsError(`sequences must grow: ${r.sequence} after ${this.previousSequence}`);
    }
    this.reserve(PackedPageWriter.bound(r));
    this.varint(sequenceDelta);
    const hex = r.kind === 'certificate' && HEX_ID.test(r.id);
    const cause = r.causeSequence ?? 0;
    let flags = 0;
    if (r.kind === 'session') flags |= FLAG_SESSION;
    if (hex) flags |= FLAG_HEX_ID;
    if (r.reason !== '') flags |= FLAG_REASON;
    if (cause > 0) flags |= FLAG_CAUSE;
    this.buf[this.length++] = flags;
    if (hex) {
      this.buf[this.length++] = r.id.length;
      this.length += this.buf.write(r.id.length % 2 === 1 ? `0${r.id}` : r.id, this.length, 'hex');
    } else {
      this.string(r.id);
    }
    const revokedAt = typeof r.revokedAt === 'number' ? r.revokedAt : r.revokedAt.getTime();
    const expiresAt = typeof r.expiresAt === 'number' ? r.expiresAt : r.expiresAt.getTime();
    this.rest(r.reason, revokedAt, expiresAt, cause, r.sequence);
  }

  /**
   * add, for a certificate whose id is hex digits given as their bytes (`src[start, end)`, isHexId true): the same
   * bytes as add writes for the id as a string, without making the string (the start-up read of the state
   * packs a million of them).
   */
  addHexId(
    sequence: number,
    src: Uint8Array,
    start: number,
    end: number,
    reason: string,
    revokedAtMs: number,
    expiresAtMs: number,
    causeSequence: number,
  ): void {
    const sequenceDelta = sequence - this.previousSequence;
    if (!Number.isSafeInteger(sequenceDelta) || sequenceDelta <= 0) {
      throw new PackedRevocationsError(`sequences must grow: ${sequence} after ${this.previousSequence}`);
    }
    const digits = end - start;
    this.reserve(PackedPageWriter.boundOf(digits, reason.length));
    this.varint(sequenceDelta);
    let flags = FLAG_HEX_ID;
    if (reason !== '') flags |= FLAG_REASON;
    if (causeSequence > 0) flags |= FLAG_CAUSE;
    const buf = this.buf;
    buf[this.length++] = flags;
    buf[this.length++] = digits;
    let i = start;
    // An odd count is padded with a leading zero digit, as Buffer.write(`0${id}`, 'hex') does in add.
    if (digits % 2 === 1) buf[this.length++] = nibble(src[i++]!);
    for (; i < end; i += 2) buf[this.length++] = (nibble(src[i]!) << 4) | nibble(src[i + 1]!);
    this.rest(reason, revokedAtMs, expiresAtMs, causeSequence, sequence);
  }

  /** What follows the id in an entry, and the writer's state after it. */
  private rest(reason: string, revokedAt: number, expiresAt: number, cause: number, sequence: number): void {
    if (reason !== '') {
      const reasonIndex = this.reasons.get(reason);
      if (reasonIndex !== undefined) {
        this.varint(reasonIndex);
      } else {
        this.varint(this.reasons.size);
        this.reasons.set(reason, this.reasons.size);
        this.string(reason);
      }
    }
    this.zigzag(revokedAt - this.previousRevokedAt);
    this.zigzag(expiresAt - this.previousExpiresAt);
    if (cause > 0) this.varint(cause);
    this.previousSequence = sequence;
    this.previousRevokedAt = revokedAt;
    this.previousExpiresAt = expiresAt;
    this.lastSequence = sequence;
    this.count += 1;
  }

  /** The page's bytes (a copy: the writer can be dropped). */
  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.length));
  }

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(bigger, 0, 0, this.length);
    this.buf = bigger;
  }

  private string(s: string): void {
    const bytes = Buffer.byteLength(s);
    this.varint(bytes);
    this.length += this.buf.write(s, this.length, 'utf8');
  }

  private zigzag(n: number): void {
    this.varint(n >= 0 ? n * 2 : -n * 2 - 1);
  }

  private varint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new PackedRevocationsError(`not encodable: ${n}`);
    while (n >= 0x80) {
      this.buf[this.length++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.length++] = n;
  }
}

/** The value of a lower-case hex digit's byte (isHexId checked it is one). */
function nibble(c: number): number {
  return c <= 0x39 ? c - 0x30 : c - 0x57;
}

/** Encodes records (ascending sequences) as one page. */
export function packRevocations(records: readonly Parameters<PackedPageWriter['add']>[0][]): Buffer {
  const w = new PackedPageWriter();
  for (const r of records) w.add(r);
  return w.finish();
}

/**
 * A page decoded into columns: no object per revocation (a million of them arrive in a new watcher's state).
 * Index i of every array is the i-th revocation of the page.
 */
export interface PackedColumns {
  count: number;
  /** The page read (the hex ids are views into it). */
  page: Buffer;
  sequences: number[];
  /** 1 for a session, 0 for a certificate. */
  sessions: number[];
  /**
   * An id written as hex digits: the offset of its bytes in `page` (a serial read from there needs no string:
   * a million of them arrive in a new watcher's state), else -1 and the id is in `ids`. See `columnId`.
   */
  idOffsets: number[];
  /** An id written as hex digits: how many (its bytes: (digits + 1) >> 1, an odd count padded with a 0 digit). */
  idDigits: number[];
  /** Ids not written as hex digits; '' where idOffsets holds the id. */
  ids: string[];
  /** Index into `reasonTable`, -1 for none. */
  reasons: number[];
  reasonTable: string[];
  revokedAtMs: number[];
  expiresAtMs: number[];
  /** 0 for none. */
  causeSequences: number[];
}

/**
 * Reads one page into columns; nothing is returned unless the whole page reads.
 * @throws PackedRevocationsError for an unknown format, a truncated or malformed entry, or sequences that do
 * not grow.
 */
export function unpackRevocationColumns(page: Uint8Array): PackedColumns {
  const buf = Buffer.isBuffer(page) ? page : Buffer.from(page.buffer, page.byteOffset, page.byteLength);
  const out: PackedColumns = {
    count: 0,
    page: buf,
    sequences: [],
    sessions: [],
    idOffsets: [],
    idDigits: [],
    ids: [],
    reasons: [],
    reasonTable: [],
    revokedAtMs: [],
    expiresAtMs: [],
    causeSequences: [],
  };
  if (buf.length === 0) return out;
  if (buf[0] !== PACKED_REVOCATIONS_FORMAT) {
    throw new PackedRevocationsError(`unknown packed revocations format ${buf[0]}`);
  }
  let p = 1;
  const truncated = (): never => {
    throw new PackedRevocationsError('packed revocations: truncated entry');
  };
  const varint = (): number => {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (p >= buf.length) truncated();
      const b = buf[p++]!;
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
    }
    throw new PackedRevocationsError('packed revocations: varint too long');
  };
  const zigzag = (): number => {
    const z = varint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  };
  const string = (): string => {
    const n = varint();
    if (p + n > buf.length) truncated();
    const s = buf.toString('utf8', p, p + n);
    p += n;
    return s;
  };
  const reasons = out.reasonTable;
  let sequence = 0;
  let revokedAt = 0;
  let expiresAt = 0;
  while (p < buf.length) {
    const delta = varint();
    if (delta === 0) throw new PackedRevocationsError('packed revocations: sequences must grow');
    sequence += delta;
    if (p >= buf.length) truncated();
    const flags = buf[p++]!;
    if (flags > 15) throw new PackedRevocationsError(`packed revocations: unknown flags ${flags}`);
    let id = '';
    let idOffset = -1;
    let idDigits = 0;
    if ((flags & FLAG_HEX_ID) !== 0) {
      if (p >= buf.length) truncated();
      idDigits = buf[p++]!;
      const bytes = (idDigits + 1) >> 1;
      if (idDigits === 0 || p + bytes > buf.length) truncated();
      // The padding digit of an odd count is 0: anything else is not what a writer makes.
      if (idDigits % 2 === 1 && buf[p]! > 0x0f) {
        throw new PackedRevocationsError('packed revocations: odd hex id with a nonzero padding digit');
      }
      idOffset = p;
      p += bytes;
    } else {
      id = string();
    }
    let reason = -1;
    if ((flags & FLAG_REASON) !== 0) {
      const index = varint();
      if (index === reasons.length) reasons.push(string());
      else if (index > reasons.length) {
        throw new PackedRevocationsError(`packed revocations: reason ${index} not defined`);
      }
      reason = index;
    }
    revokedAt += zigzag();
    expiresAt += zigzag();
    const causeSequence = (flags & FLAG_CAUSE) !== 0 ? varint() : 0;
    out.sequences.push(sequence);
    out.sessions.push((flags & FLAG_SESSION) !== 0 ? 1 : 0);
    out.idOffsets.push(idOffset);
    out.idDigits.push(idDigits);
    out.ids.push(id);
    out.reasons.push(reason);
    out.revokedAtMs.push(revokedAt);
    out.expiresAtMs.push(expiresAt);
    out.causeSequences.push(causeSequence);
    out.count += 1;
  }
  return out;
}

/** The i-th id of a page as a string (hex digits as written, lower case). */
export function columnId(c: PackedColumns, i: number): string {
  const at = c.idOffsets[i]!;
  if (at < 0) return c.ids[i]!;
  const digits = c.idDigits[i]!;
  const hex = c.page.toString('hex', at, at + ((digits + 1) >> 1));
  return digits % 2 === 1 ? hex.slice(1) : hex;
}

/**
 * Reads one page.
 * @throws PackedRevocationsError for an unknown format, a truncated or malformed entry, or sequences that do
 * not grow.
 */
export function unpackRevocations(page: Uint8Array): PackedRevocation[] {
  const c = unpackRevocationColumns(page);
  const out = new Array<PackedRevocation>(c.count);
  for (let i = 0; i < c.count; i++) {
    const r = c.reasons[i]!;
    out[i] = {
      sequence: c.sequences[i]!,
      kind: c.sessions[i] === 1 ? 'session' : 'certificate',
      id: columnId(c, i),
      reason: r >= 0 ? c.reasonTable[r]! : '',
      revokedAtMs: c.revokedAtMs[i]!,
      expiresAtMs: c.expiresAtMs[i]!,
      causeSequence: c.causeSequences[i]!,
    };
  }
  return out;
}

/** One packed page: its bytes, how many revocations and the last sequence they hold. */
export interface PackedPage {
  bytes: Buffer;
  count: number;
  sequence: number;
}

/** Packs rows (ascending sequences) into pages of at most `pageBytes` (one row per page at the least). */
export function packPages(
  rows: readonly Parameters<PackedPageWriter['add']>[0][],
  pageBytes: number,
): PackedPage[] {
  const pages: PackedPage[] = [];
  let w = new PackedPageWriter();
  const flush = (): void => {
    pages.push({ bytes: w.finish(), count: w.count, sequence: w.lastSequence });
    w = new PackedPageWriter();
  };
  for (const r of rows) {
    if (w.count > 0 && w.size + PackedPageWriter.bound(r) > pageBytes) flush();
    w.add(r);
  }
  if (w.count > 0) flush();
  return pages;
}
