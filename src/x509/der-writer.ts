import {
  concatBytes,
  encodeTlv,
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
} from './der';
import { oidWriteProblem } from './oid';

/**
 * DER encoders for the universal types that certificates and requests are built from; each returns one whole
 * element and callers nest them. Issuance builds a TBSCertificate on every call: assembling bytes directly
 * costs a fraction of building and serialising a schema object graph, and the encoding is DER by
 * construction (minimal lengths and integers, sorted SET OF, canonical times). Inputs a DER encoding cannot
 * carry are refused with DerWriteError, a programming error rather than bad input from a peer.
 */

export class DerWriteError extends Error {}

const TAG_UTF8_STRING = 0x0c;
const TAG_IA5_STRING = 0x16;

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
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const bytes = magnitude.subarray(i);
  if (bytes.length === 0) return Uint8Array.of(TAG_INTEGER, 0x01, 0x00);
  return encodeTlv(TAG_INTEGER, bytes[0]! >= 0x80 ? concatBytes([Uint8Array.of(0), bytes]) : bytes);
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
  return encodeTlv(TAG_BIT_STRING, concatBytes([Uint8Array.of(0), bytes]));
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
  // eslint-disable-next-line no-control-regex
  if (!/^[\x00-\x7f]*$/.test(value)) throw new DerWriteError('IA5String holds ASCII only');
  return new Uint8Array(Buffer.from(value, 'latin1'));
}

/**
 * RFC 5280 §4.1.2.5: UTCTime (YYMMDDHHMMSSZ) for 1950 through 2049, GeneralizedTime (YYYYMMDDHHMMSSZ) otherwise;
 * whole seconds, always UTC. Fractions of a second are cut, as X.509 times carry none.
 */
export function derTime(date: Date): Uint8Array {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new DerWriteError('invalid date');
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new DerWriteError(`year ${year} cannot be encoded`);
  const two = (n: number): string => String(n).padStart(2, '0');
  const rest =
    two(date.getUTCMonth() + 1) +
    two(date.getUTCDate()) +
    two(date.getUTCHours()) +
    two(date.getUTCMinutes()) +
    two(date.getUTCSeconds()) +
    'Z';
  const utc = year >= 1950 && year < 2050;
  const text = utc ? two(year % 100) + rest : String(year).padStart(4, '0') + rest;
  return encodeTlv(utc ? TAG_UTC_TIME : TAG_GENERALIZED_TIME, new Uint8Array(Buffer.from(text, 'latin1')));
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
  putDigits(out, 6, date.getUTCMonth() + 1, 2);
  putDigits(out, 8, date.getUTCDate(), 2);
  putDigits(out, 10, date.getUTCHours(), 2);
  putDigits(out, 12, date.getUTCMinutes(), 2);
  putDigits(out, 14, date.getUTCSeconds(), 2);
  out[16] = 0x5a; // 'Z'
  return out;
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
