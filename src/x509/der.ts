/**
 * Strict DER framing: tag, definite minimal length, exact extent. The schema library parses BER leniently and
 * ignores trailing bytes, so input that must be exactly one DER element (a CSR, a certificate field we copy
 * verbatim, an extension value handed to us) is framed here first. Content is left to the schema classes.
 */

export const TAG_INTEGER = 0x02;
export const TAG_BIT_STRING = 0x03;
export const TAG_SEQUENCE = 0x30;
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
  return { tag, start: offset, contentStart, end };
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

/** Encodes one element with a minimal definite length. */
export function encodeTlv(tag: number, content: Uint8Array): Uint8Array {
  const len = content.length;
  let header: number[];
  if (len < 0x80) {
    header = [tag, len];
  } else {
    const lenBytes: number[] = [];
    for (let v = len; v > 0; v = Math.floor(v / 256)) lenBytes.unshift(v & 0xff);
    header = [tag, 0x80 | lenBytes.length, ...lenBytes];
  }
  const out = new Uint8Array(header.length + len);
  out.set(header, 0);
  out.set(content, header.length);
  return out;
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
