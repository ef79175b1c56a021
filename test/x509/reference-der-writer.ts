/**
 * The nested whole-element DER writer as it was before the one-pass tree writer (src/x509/der-writer.ts and
 * build.ts at 2473ab0): every element its own Uint8Array, each SEQUENCE a concatenation of its parts, times
 * written as strings. Frozen here, with nothing imported from the writer it is compared with, so that
 * certificates, CRLs and leaves written in one pass can be held to it byte for byte
 * (test/x509/certificate-writer.test.ts). Production code never imports it.
 */
import type { KeyObject } from 'node:crypto';
import { signatureSchemeFor, signWithKey } from '../../src/x509/keys';

export function refTlv(tag: number, content: Uint8Array): Uint8Array {
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

export function refConcat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function refSequence(...children: Uint8Array[]): Uint8Array {
  return refTlv(0x30, refConcat(children));
}

export function refUnsignedInteger(magnitude: Uint8Array): Uint8Array {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const bytes = magnitude.subarray(i);
  if (bytes.length === 0) return Uint8Array.of(0x02, 0x01, 0x00);
  return refTlv(0x02, bytes[0]! >= 0x80 ? refConcat([Uint8Array.of(0), bytes]) : bytes);
}

export function refBitString(bytes: Uint8Array): Uint8Array {
  return refTlv(0x03, refConcat([Uint8Array.of(0), bytes]));
}

export function refTime(date: Date): Uint8Array {
  const year = date.getUTCFullYear();
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
  return refTlv(utc ? 0x17 : 0x18, new Uint8Array(Buffer.from(text, 'latin1')));
}

/** The signature AlgorithmIdentifier, from the scheme's OID (a NULL parameter for RSA). */
export function refAlgorithm(key: KeyObject): Uint8Array {
  const scheme = signatureSchemeFor(key);
  const arcs = scheme.oid.split('.').map(Number);
  const content: number[] = [];
  for (const arc of [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)]) {
    const digits = [arc & 0x7f];
    for (let v = arc >>> 7; v > 0; v >>>= 7) digits.unshift((v & 0x7f) | 0x80);
    content.push(...digits);
  }
  const oid = refTlv(0x06, Uint8Array.from(content));
  return scheme.nullParams ? refSequence(oid, Uint8Array.of(0x05, 0x00)) : refSequence(oid);
}

export interface RefCertificateFields {
  serial: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  spki: Uint8Array;
  /** Whole Extension elements. */
  extensions: Uint8Array[];
  signingKey: KeyObject;
}

/** The TBSCertificate as signCertificate wrote it before. */
export function refTbsCertificate(fields: RefCertificateFields): Uint8Array {
  const parts = [
    refTlv(0xa0, refUnsignedInteger(Uint8Array.of(2))),
    refUnsignedInteger(fields.serial),
    refAlgorithm(fields.signingKey),
    fields.issuer,
    refSequence(refTime(fields.notBefore), refTime(fields.notAfter)),
    fields.subject,
    fields.spki,
  ];
  if (fields.extensions.length > 0) parts.push(refTlv(0xa3, refSequence(...fields.extensions)));
  return refSequence(...parts);
}

/** SEQUENCE { tbs, algorithm, BIT STRING signature }, signed as before. */
export function refFrameSigned(tbs: Uint8Array, algorithm: Uint8Array, key: KeyObject): Uint8Array {
  return refTlv(0x30, refConcat([tbs, algorithm, refBitString(signWithKey(tbs, key))]));
}

/** The whole certificate as signCertificate wrote it before. */
export function refCertificate(fields: RefCertificateFields): Uint8Array {
  return refFrameSigned(refTbsCertificate(fields), refAlgorithm(fields.signingKey), fields.signingKey);
}
