import {
  concatBytes,
  encodeTlv,
  headerLength,
  TAG_BIT_STRING,
  TAG_BOOLEAN,
  TAG_CONTEXT_0_CONSTRUCTED,
  TAG_GENERALIZED_TIME,
  TAG_INTEGER,
  TAG_NULL,
  TAG_OCTET_STRING,
  TAG_OID,
  TAG_SEQUENCE,
  TAG_SET,
  TAG_UTC_TIME,
  writeHeader,
} from './der';
import { oidWriteProblem } from './oid';

/**
 * The DER writer. Two forms of one encoding:
 *
 * - A tree (DerNode) sized as it is built and then written into one buffer (writeDer): each byte is written
 *   once, however deep it sits. Issuance writes every leaf this way, and the agent context (dozens of short
 *   strings up to five levels deep) too: nesting whole elements copies each one once per level above it and, for
 *   elements over 64 bytes, allocates a buffer outside V8's heap per level, which was most of a leaf's encoding
 *   time.
 * - Whole elements (derSequence, derTime, ...), each returned as its own bytes and nested by the caller: for
 *   what is encoded once and kept (CA certificates, a leaf template's parts, CSRs, CRL parts), where a tree would
 *   buy nothing. An element is put into a tree as it is with encodedNode.
 *
 * The encoding is DER by construction (minimal lengths and integers, sorted SET OF, canonical times). Inputs a
 * DER encoding cannot carry are refused with DerWriteError, a programming error rather than bad input from a peer.
 */

export class DerWriteError extends Error {}

const TAG_UTF8_STRING = 0x0c;
const TAG_IA5_STRING = 0x16;

/**
 * One element, or a run of whole elements, sized but not yet written. `length` is what it takes in its parent:
 * header and content, or for an encodedNode just its bytes. The content is `children` (written one after the
 * other, whatever the tag: a constructed type, or a primitive one written in pieces, like an OCTET STRING
 * holding an encoded value), `text` (UTF-8) or `bytes`. Nodes are never changed once made, so a node may be
 * shared between trees.
 */
export interface DerNode {
  /** NO_HEADER for an encodedNode. */
  readonly tag: number;
  /** Content length in bytes. */
  readonly size: number;
  readonly length: number;
  readonly text?: string;
  readonly bytes?: Uint8Array;
  readonly children?: readonly DerNode[];
}

const NO_HEADER = -1;

/** A string written as UTF-8 under `tag`. */
export function textNode(tag: number, text: string): DerNode {
  const size = Buffer.byteLength(text, 'utf8');
  return { tag, size, length: headerLength(size) + size, text };
}

/** `bytes` as the contents of a `tag` element. */
export function bytesNode(tag: number, bytes: Uint8Array): DerNode {
  return { tag, size: bytes.length, length: headerLength(bytes.length) + bytes.length, bytes };
}

/** An element whose contents are `children`, one after the other. */
export function constructedNode(tag: number, children: readonly DerNode[]): DerNode {
  let size = 0;
  for (const c of children) size += c.length;
  return { tag, size, length: headerLength(size) + size, children };
}

/** Bytes that are already DER (one or more whole elements), copied into the output as they are. */
export function encodedNode(der: Uint8Array): DerNode {
  return { tag: NO_HEADER, size: der.length, length: der.length, bytes: der };
}

export function sequenceNode(...children: DerNode[]): DerNode {
  return constructedNode(TAG_SEQUENCE, children);
}

const ZERO_OCTET = encodedNode(Uint8Array.of(0));

/** A BIT STRING of whole octets (keys, signatures). */
export function bitStringNode(bytes: Uint8Array): DerNode {
  return constructedNode(TAG_BIT_STRING, [ZERO_OCTET, encodedNode(bytes)]);
}

/** A non-negative INTEGER from its big-endian magnitude, as derUnsignedInteger writes it. */
export function unsignedIntegerNode(magnitude: Uint8Array): DerNode {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  if (i === magnitude.length) return encodedNode(Uint8Array.of(TAG_INTEGER, 0x01, 0x00));
  const bytes = i === 0 ? magnitude : magnitude.subarray(i);
  return bytes[0]! >= 0x80
    ? constructedNode(TAG_INTEGER, [ZERO_OCTET, encodedNode(bytes)])
    : bytesNode(TAG_INTEGER, bytes);
}

/** An IA5String's contents under `tag` (GeneralName's `[n] IMPLICIT IA5String`): ASCII only. */
export function ia5Node(tag: number, value: string): DerNode {
  checkIa5(value);
  // ASCII is its own UTF-8.
  return textNode(tag, value);
}

/** The DER of `node`, as a plain Uint8Array of exactly its length. */
export function writeDer(node: DerNode): Uint8Array {
  const out = new Uint8Array(node.length);
  writeDerInto(node, out, 0);
  return out;
}

/** Writes `node` into `out` at `offset` (`out` must have node.length bytes there); returns the end. */
export function writeDerInto(node: DerNode, out: Uint8Array, offset: number): number {
  const end = writeNode(new NodeWriter(out), offset, node);
  if (end !== offset + node.length) throw new DerWriteError('a DER node changed after it was sized');
  return end;
}

const SHORT_TEXT = 128;

/** The output, and a Buffer over it made only if a string is written (Buffer.write encodes in place). */
class NodeWriter {
  private view: Buffer | undefined;

  constructor(readonly out: Uint8Array) {}

  text(text: string, offset: number, size: number): number {
    // As many UTF-8 bytes as UTF-16 units: ASCII only (every other character takes two bytes or more). Short ASCII
    // (names, IDs, URIs) is copied unit by unit, cheaper than Buffer.write's checks; the rest is left to it.
    if (size === text.length && size <= SHORT_TEXT) {
      const out = this.out;
      for (let i = 0; i < size; i++) out[offset + i] = text.charCodeAt(i);
      return size;
    }
    this.view ??= Buffer.from(this.out.buffer, this.out.byteOffset, this.out.length);
    return this.view.write(text, offset, size, 'utf8');
  }
}

function writeNode(w: NodeWriter, offset: number, node: DerNode): number {
  if (node.tag !== NO_HEADER) offset = writeHeader(w.out, offset, node.tag, node.size);
  if (node.children !== undefined) {
    for (const child of node.children) offset = writeNode(w, offset, child);
    return offset;
  }
  if (node.text !== undefined) return offset + w.text(node.text, offset, node.size);
  w.out.set(node.bytes!, offset);
  return offset + node.size;
}

export function derSequence(...children: Uint8Array[]): Uint8Array {
  return encodeTlv(TAG_SEQUENCE, concatBytes(children));
}

/** SET OF: DER orders the elements by their encodings (X.690 §11.6), shorter first on a common prefix. */
export function derSetOf(children: Uint8Array[]): Uint8Array {
  return encodeTlv(TAG_SET, concatBytes([...children].sort(compareBytes)));
}

/**
 * A constructed context-specific element `[n]`: for `[n] EXPLICIT T` the content is T's whole element, for
 * `[n] IMPLICIT SEQUENCE OF` it is the concatenated elements.
 */
export function derContextConstructed(n: number, content: Uint8Array): Uint8Array {
  return encodeTlv(contextTag(n, true), content);
}

/** derContextConstructed as a node. */
export function contextConstructedNode(n: number, children: readonly DerNode[]): DerNode {
  return constructedNode(contextTag(n, true), children);
}

/** `[n] IMPLICIT` over a primitive type: the type's contents under a context-specific tag. */
export function derImplicitPrimitive(n: number, content: Uint8Array): Uint8Array {
  return encodeTlv(contextTag(n, false), content);
}

export const DER_NULL_ELEMENT = Uint8Array.of(TAG_NULL, 0x00);
const DER_TRUE = Uint8Array.of(TAG_BOOLEAN, 0x01, 0xff);
const DER_FALSE = Uint8Array.of(TAG_BOOLEAN, 0x01, 0x00);

export function derBoolean(value: boolean): Uint8Array {
  return value ? DER_TRUE : DER_FALSE;
}

/** A non-negative INTEGER from its big-endian magnitude: leading zeros dropped, a 0x00 added before a high bit. */
export function derUnsignedInteger(magnitude: Uint8Array): Uint8Array {
  return writeDer(unsignedIntegerNode(magnitude));
}

/** A small non-negative INTEGER (versions, pathLenConstraint). */
export function derSmallInteger(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new DerWriteError(`not a non-negative integer: ${value}`);
  const bytes: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return derUnsignedInteger(Uint8Array.from(bytes));
}

export function derOctetString(bytes: Uint8Array): Uint8Array {
  return encodeTlv(TAG_OCTET_STRING, bytes);
}

/** A BIT STRING of whole octets (keys, signatures). */
export function derBitString(bytes: Uint8Array): Uint8Array {
  return writeDer(bitStringNode(bytes));
}

/**
 * A named bit list (X.690 §11.2.2): bit 0 is the most significant bit of the first octet, and trailing zero
 * bits are removed, so the unused-bits count follows from the highest bit set.
 */
export function derNamedBits(bits: number[]): Uint8Array {
  if (bits.length === 0) return Uint8Array.of(TAG_BIT_STRING, 0x01, 0x00);
  const highest = Math.max(...bits);
  if (!Number.isInteger(highest) || Math.min(...bits) < 0)
    throw new DerWriteError('bit numbers must be >= 0');
  const octets = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const b of bits) octets[b >> 3]! |= 0x80 >> (b & 7);
  const unused = 7 - (highest & 7);
  return encodeTlv(TAG_BIT_STRING, concatBytes([Uint8Array.of(unused), octets]));
}

const oidCache = new Map<string, Uint8Array>();

/**
 * OBJECT IDENTIFIER from dotted decimal. Refuses (DerWriteError) any OID with a sub-identifier of 2^28 or more:
 * peers' X.509 parsers refuse whole certificates holding one (see oid.ts), so Lanyard never writes one.
 */
export function derOid(dotted: string): Uint8Array {
  const cached = oidCache.get(dotted);
  if (cached !== undefined) return cached;
  const problem = oidWriteProblem(dotted);
  if (problem !== undefined) throw new DerWriteError(`refusing to write OID ${shortOid(dotted)}: ${problem}`);
  const arcs = dotted.split('.').map(Number);
  const content: number[] = [];
  for (const arc of [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)]) {
    const digits = [arc & 0x7f];
    for (let v = arc >>> 7; v > 0; v >>>= 7) digits.unshift((v & 0x7f) | 0x80);
    content.push(...digits);
  }
  const der = encodeTlv(TAG_OID, Uint8Array.from(content));
  // Callers name a handful of fixed OIDs; the cache stays small.
  if (oidCache.size < 256) oidCache.set(dotted, der);
  return der;
}

/** An OID for an error message: a refused one may be arbitrarily long. */
function shortOid(dotted: string): string {
  return dotted.length > 80 ? `${dotted.slice(0, 80)}...` : dotted;
}

export function derUtf8String(value: string): Uint8Array {
  return encodeTlv(TAG_UTF8_STRING, new Uint8Array(Buffer.from(value, 'utf8')));
}

/** IA5String: ASCII only (URIs and DNS names in GeneralName). */
export function derIa5String(value: string): Uint8Array {
  return encodeTlv(TAG_IA5_STRING, ia5Bytes(value));
}

/** The IA5 contents of a GeneralName choice (`[n] IMPLICIT IA5String`). */
export function ia5Bytes(value: string): Uint8Array {
  checkIa5(value);
  return new Uint8Array(Buffer.from(value, 'latin1'));
}

function checkIa5(value: string): void {
  // eslint-disable-next-line no-control-regex
  if (!/^[\x00-\x7f]*$/.test(value)) throw new DerWriteError('IA5String holds ASCII only');
}

/**
 * RFC 5280 §4.1.2.5: UTCTime (YYMMDDHHMMSSZ) for 1950 through 2049, GeneralizedTime (YYYYMMDDHHMMSSZ) otherwise;
 * whole seconds, always UTC. Fractions of a second are cut, as X.509 times carry none. Digits are written
 * straight into the element: a leaf writes two per issuance.
 */
export function derTime(date: Date): Uint8Array {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new DerWriteError('invalid date');
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new DerWriteError(`year ${year} cannot be encoded`);
  if (year >= 1950 && year < 2050) {
    const out = new Uint8Array(15);
    out[0] = TAG_UTC_TIME;
    out[1] = 13;
    putDigits(out, 2, year % 100, 2);
    putTimeOfYear(out, 4, date);
    return out;
  }
  return derGeneralizedTime(date);
}

/**
 * GeneralizedTime "YYYYMMDDHHMMSSZ" for any year 0..9999, whatever the year (for structures that, unlike
 * X.509 validity, always use GeneralizedTime); whole seconds, fractions cut.
 */
export function derGeneralizedTime(date: Date): Uint8Array {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new DerWriteError('invalid date');
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new DerWriteError(`year ${year} cannot be encoded`);
  const out = new Uint8Array(17);
  out[0] = TAG_GENERALIZED_TIME;
  out[1] = 15;
  putDigits(out, 2, year, 4);
  putTimeOfYear(out, 6, date);
  return out;
}

/** MMDDHHMMSSZ at `at`. */
function putTimeOfYear(out: Uint8Array, at: number, date: Date): void {
  putDigits(out, at, date.getUTCMonth() + 1, 2);
  putDigits(out, at + 2, date.getUTCDate(), 2);
  putDigits(out, at + 4, date.getUTCHours(), 2);
  putDigits(out, at + 6, date.getUTCMinutes(), 2);
  putDigits(out, at + 8, date.getUTCSeconds(), 2);
  out[at + 10] = 0x5a; // 'Z'
}

function putDigits(out: Uint8Array, at: number, value: number, width: number): void {
  for (let i = width - 1, v = value; i >= 0; i--, v = Math.floor(v / 10)) out[at + i] = 0x30 + (v % 10);
}

function contextTag(n: number, constructed: boolean): number {
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new DerWriteError(`context tag [${n}] out of range`);
  return (constructed ? TAG_CONTEXT_0_CONSTRUCTED : 0x80) | n;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
