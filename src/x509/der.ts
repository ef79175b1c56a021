/**
 * Strict DER framing: tag, definite minimal length, exact extent. The schema library parses BER leniently and
 * ignores trailing bytes, so input that must be exactly one DER element (a CSR, a certificate field we copy
 * verbatim, an extension value handed to us) is framed here first. The primitive readers further down decode
 * the universal types X.509 needs (BOOLEAN, INTEGER, BIT STRING, OBJECT IDENTIFIER) with the DER rules for
 * their contents, for callers that walk a structure themselves instead of using the schema classes.
 */

export const TAG_BOOLEAN = 0x01;
export const TAG_INTEGER = 0x02;
export const TAG_BIT_STRING = 0x03;
export const TAG_OCTET_STRING = 0x04;
export const TAG_NULL = 0x05;
export const TAG_OID = 0x06;
export const TAG_UTC_TIME = 0x17;
export const TAG_GENERALIZED_TIME = 0x18;
export const TAG_SEQUENCE = 0x30;
export const TAG_SET = 0x31;
export const TAG_CONTEXT_0_CONSTRUCTED = 0xa0;

/** One element: `start` is where its tag is, `contentStart..end` its contents. */
export interface Tlv {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/** Thrown for any framing violation; callers turn it into their own typed error with their own code. */
export class DerFramingError extends Error {}

/** Reads the element starting at `offset`, which must end within `limit` (default: the end of `buf`). */
export function readTlv(buf: Uint8Array, offset: number, limit: number = buf.length): Tlv {
  return readTlvInto(buf, offset, limit, { tag: 0, start: 0, contentStart: 0, end: 0 });
}

/** readTlv, written into `out` (a DerCursor reuses itself) rather than into a new object. */
function readTlvInto(buf: Uint8Array, offset: number, limit: number, out: Tlv): Tlv {
  if (offset + 2 > limit) throw new DerFramingError(`truncated element at offset ${offset}`);
  const tag = buf[offset]!;
  // Multi-byte tags never occur in X.509 or PKCS#10; refusing them keeps this reader small.
  if ((tag & 0x1f) === 0x1f) throw new DerFramingError(`high tag number at offset ${offset}`);
  const first = buf[offset + 1]!;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = offset + 2;
  } else {
    const n = first & 0x7f;
    // 0x80 is BER's indefinite length; more than 4 length bytes would exceed any size we accept.
    if (n === 0 || n > 4) throw new DerFramingError(`unsupported length form at offset ${offset}`);
    if (offset + 2 + n > limit) throw new DerFramingError(`truncated length at offset ${offset}`);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[offset + 2 + i]!;
    // DER: the shortest form, so no leading zero byte and no long form below 128.
    if (buf[offset + 2] === 0 || length < 0x80) {
      throw new DerFramingError(`non-minimal length at offset ${offset}`);
    }
    contentStart = offset + 2 + n;
  }
  const end = contentStart + length;
  if (end > limit) throw new DerFramingError(`element at offset ${offset} runs past its container`);
  out.tag = tag;
  out.start = offset;
  out.contentStart = contentStart;
  out.end = end;
  return out;
}

/** DerCursor's tag when there is no current element. */
export const NO_ELEMENT = -1;

/**
 * The elements directly inside a constructed element, read one at a time into the cursor itself: no array and
 * no object per element (readChildren makes both, and a certificate has some eighty elements). The cursor is a
 * Tlv whose fields are those of the current element, so the primitive readers below take it as it is; a caller
 * that needs an element after moving on keeps its offsets. The elements must fill the parent exactly, as with
 * readChildren, but a framing error in a later element is found only when the cursor reaches it.
 */
export class DerCursor implements Tlv {
  tag = NO_ELEMENT;
  start = 0;
  contentStart = 0;
  end = 0;
  private pos = 0;
  private limit = 0;

  constructor(private readonly buf: Uint8Array) {}

  /** Starts over on the elements inside `parent` (which may be another cursor's current element). */
  enter(parent: Tlv): this {
    if ((parent.tag & 0x20) === 0) throw new DerFramingError('primitive element has no children');
    this.pos = parent.contentStart;
    this.limit = parent.end;
    this.tag = NO_ELEMENT;
    return this;
  }

  /** Moves to the next element and returns its tag; NO_ELEMENT (-1) after the last one. */
  next(): number {
    if (this.pos >= this.limit) {
      this.tag = NO_ELEMENT;
      return NO_ELEMENT;
    }
    readTlvInto(this.buf, this.pos, this.limit, this);
    this.pos = this.end;
    return this.tag;
  }

  /** The current element, or undefined past the last one: what expectTag reads as "missing". */
  get current(): Tlv | undefined {
    return this.tag === NO_ELEMENT ? undefined : this;
  }
}

/** The single element that spans all of `buf`; trailing bytes are an error. */
export function readSingleTlv(buf: Uint8Array): Tlv {
  const tlv = readTlv(buf, 0);
  if (tlv.end !== buf.length) {
    throw new DerFramingError(`${buf.length - tlv.end} trailing byte(s) after the DER element`);
  }
  return tlv;
}

/** The elements directly inside a constructed element; they must fill it exactly. */
export function readChildren(buf: Uint8Array, parent: Tlv): Tlv[] {
  if ((parent.tag & 0x20) === 0) throw new DerFramingError('primitive element has no children');
  const children: Tlv[] = [];
  let offset = parent.contentStart;
  while (offset < parent.end) {
    const child = readTlv(buf, offset, parent.end);
    children.push(child);
    offset = child.end;
  }
  return children;
}

export function tlvBytes(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.start, tlv.end);
}

/** Bytes of the tag and DER's minimal definite length in front of `size` content bytes. */
export function headerLength(size: number): number {
  if (size < 0x80) return 2;
  let n = 2;
  for (let v = size; v > 0; v = Math.floor(v / 256)) n++;
  return n;
}

/** Writes the tag and minimal definite length of an element of `size` content bytes at `offset`; returns the end. */
export function writeHeader(out: Uint8Array, offset: number, tag: number, size: number): number {
  out[offset++] = tag;
  if (size < 0x80) {
    out[offset++] = size;
    return offset;
  }
  const lengthBytes = headerLength(size) - 2;
  out[offset++] = 0x80 | lengthBytes;
  for (let i = lengthBytes - 1, v = size; i >= 0; i--, v = Math.floor(v / 256)) out[offset + i] = v & 0xff;
  return offset + lengthBytes;
}

/** Encodes one element with a minimal definite length. */
export function encodeTlv(tag: number, content: Uint8Array): Uint8Array {
  const out = new Uint8Array(headerLength(content.length) + content.length);
  out.set(content, writeHeader(out, 0, tag, content.length));
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** The contents of `tlv` (a view into `buf`, not a copy). */
export function contentOf(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.contentStart, tlv.end);
}

/** `tlv` if it carries `tag`, else a framing error naming `what`. */
export function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined) throw new DerFramingError(`${what} is missing`);
  if (tlv.tag !== tag) {
    throw new DerFramingError(
      `${what}: expected tag ${hexByte(tag)}, found ${hexByte(tlv.tag)} at offset ${tlv.start}`,
    );
  }
  return tlv;
}

/** BOOLEAN contents in DER: exactly one octet, 0x00 or 0xFF. */
export function readBoolean(buf: Uint8Array, tlv: Tlv): boolean {
  const v = buf[tlv.contentStart];
  if (tlv.end - tlv.contentStart !== 1 || (v !== 0x00 && v !== 0xff)) {
    throw new DerFramingError(`BOOLEAN at offset ${tlv.start} is not DER (one octet, 00 or FF)`);
  }
  return v === 0xff;
}

/** INTEGER contents in DER: at least one octet, minimal two's complement. Returns the contents (a view). */
export function readIntegerBytes(buf: Uint8Array, tlv: Tlv): Uint8Array {
  const n = tlv.end - tlv.contentStart;
  if (n === 0) throw new DerFramingError(`empty INTEGER at offset ${tlv.start}`);
  if (n > 1) {
    const b0 = buf[tlv.contentStart]!;
    const b1 = buf[tlv.contentStart + 1]!;
    if ((b0 === 0x00 && b1 < 0x80) || (b0 === 0xff && b1 >= 0x80)) {
      throw new DerFramingError(`INTEGER at offset ${tlv.start} is not minimally encoded`);
    }
  }
  return contentOf(buf, tlv);
}

/** A non-negative INTEGER no larger than Number.MAX_SAFE_INTEGER. */
export function readUnsignedNumber(buf: Uint8Array, tlv: Tlv): number {
  const bytes = readIntegerBytes(buf, tlv);
  if (bytes[0]! >= 0x80) throw new DerFramingError(`negative INTEGER at offset ${tlv.start}`);
  let v = 0;
  for (const b of bytes) {
    v = v * 256 + b;
    if (v > Number.MAX_SAFE_INTEGER) throw new DerFramingError(`INTEGER at offset ${tlv.start} is too large`);
  }
  return v;
}

/**
 * BIT STRING contents in DER: the unused-bit count (0..7, 0 when empty) and the bytes, whose unused bits must
 * be zero. Trailing zero bits of a named bit list are not required to be removed (Go and OpenSSL accept them).
 */
export function readBitString(buf: Uint8Array, tlv: Tlv): { unusedBits: number; bytes: Uint8Array } {
  const n = tlv.end - tlv.contentStart;
  if (n === 0) throw new DerFramingError(`BIT STRING at offset ${tlv.start} has no unused-bits octet`);
  const unusedBits = buf[tlv.contentStart]!;
  const bytes = buf.subarray(tlv.contentStart + 1, tlv.end);
  if (unusedBits > 7 || (bytes.length === 0 && unusedBits !== 0)) {
    throw new DerFramingError(`BIT STRING at offset ${tlv.start} has an invalid unused-bits count`);
  }
  if (unusedBits > 0 && (bytes[bytes.length - 1]! & ((1 << unusedBits) - 1)) !== 0) {
    throw new DerFramingError(`BIT STRING at offset ${tlv.start} has non-zero unused bits`);
  }
  return { unusedBits, bytes };
}

/** Largest value that can take one more base-128 digit without leaving the exact range of a double. */
const OID_ARC_SAFE = Math.floor((Number.MAX_SAFE_INTEGER - 127) / 128);

/**
 * OBJECT IDENTIFIER contents in DER, as dotted decimal. Arcs of any size are exact (UUID-based OIDs under
 * 2.25 carry 128-bit arcs); sub-identifiers must be minimal (no leading 0x80 octet) and the last one complete.
 * An encoding of up to 12 octets already decoded is answered from a bounded memo (the same few OIDs fill every
 * certificate: a leaf carries some twenty), found by its exact octets.
 */
export function readOid(buf: Uint8Array, tlv: Tlv): string {
  const n = tlv.end - tlv.contentStart;
  if (n <= OID_MEMO_OCTETS) {
    // The length and the octets, packed without loss into two integers below 2^53: an exact key.
    let hi = n;
    let lo = 0;
    for (let i = 0; i < 6; i++) hi = hi * 256 + (i < n ? buf[tlv.contentStart + i]! : 0);
    for (let i = 6; i < OID_MEMO_OCTETS; i++) lo = lo * 256 + (i < n ? buf[tlv.contentStart + i]! : 0);
    const row = oidMemo.get(hi);
    const known = row?.get(lo);
    if (known !== undefined) return known;
    const oid = decodeOid(buf, tlv);
    if (oidMemoSize < OID_MEMO_ENTRIES) {
      if (row === undefined) oidMemo.set(hi, new Map([[lo, oid]]));
      else row.set(lo, oid);
      oidMemoSize++;
    }
    return oid;
  }
  return decodeOid(buf, tlv);
}

const OID_MEMO_OCTETS = 12;
/** Bound on the memo: input cannot grow it further, only leave later OIDs to be decoded each time. */
const OID_MEMO_ENTRIES = 512;
const oidMemo = new Map<number, Map<number, string>>();
let oidMemoSize = 0;

function decodeOid(buf: Uint8Array, tlv: Tlv): string {
  if (tlv.end === tlv.contentStart)
    throw new DerFramingError(`empty OBJECT IDENTIFIER at offset ${tlv.start}`);
  if ((buf[tlv.end - 1]! & 0x80) !== 0) {
    throw new DerFramingError(`OBJECT IDENTIFIER at offset ${tlv.start} ends inside a sub-identifier`);
  }
  let out = '';
  let i = tlv.contentStart;
  while (i < tlv.end) {
    if (buf[i] === 0x80) {
      throw new DerFramingError(`OBJECT IDENTIFIER at offset ${tlv.start} has a non-minimal sub-identifier`);
    }
    let small = 0;
    let big: bigint | undefined;
    for (;;) {
      const b = buf[i++]!;
      if (big === undefined && small > OID_ARC_SAFE) big = BigInt(small);
      if (big === undefined) small = small * 128 + (b & 0x7f);
      else big = (big << 7n) | BigInt(b & 0x7f);
      if ((b & 0x80) === 0) break;
    }
    if (out === '') {
      // The first sub-identifier packs two arcs: 40 * first + second, where first is 0, 1 or 2.
      if (big === undefined && small < 80) out = `${Math.floor(small / 40)}.${small % 40}`;
      else out = `2.${big === undefined ? small - 80 : (big - 80n).toString()}`;
    } else {
      out += `.${big === undefined ? small : big.toString()}`;
    }
  }
  return out;
}

function hexByte(b: number): string {
  return `0x${b.toString(16).padStart(2, '0')}`;
}
