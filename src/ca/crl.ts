/**
 * An X.509 v2 CRL (RFC 5280 §5) signed by one CA key, for relying parties that only speak CRLs (nginx's
 * ssl_crl, `openssl verify -crl_check`). The TBSCertList is assembled from DER pieces (x509/der-writer.ts), as
 * certificates are: each revoked entry is encoded once and its bytes reused for every CA's CRL and every later
 * publication, so a publication costs a copy of the list and one signature, not an encoding of the whole list.
 * Entries are written straight into one buffer per batch (encodeRevokedEntries): a million of them is a
 * million small writes, not a million nested allocations.
 */
import type { KeyObject } from 'node:crypto';
import { InvalidArgumentError } from '../errors';
import type { ParsedCertificate } from '../x509/certificate';
import { signatureAlgorithmDer, signAndFrameDer } from '../x509/build';
import { concatBytes, TAG_SEQUENCE } from '../x509/der';
import { authorityKeyIdExtDer, extensionDer } from '../x509/der-extensions';
import {
  constructedNode,
  derContextConstructed,
  derSequence,
  derSmallInteger,
  derTime,
  derUnsignedInteger,
  encodedNode,
  writeDer,
} from '../x509/der-writer';

/** id-ce-cRLNumber (RFC 5280 §5.2.3). */
const OID_CRL_NUMBER = '2.5.29.20';

export interface RevokedSerial {
  /** Lower-case hex, no leading zeros (ParsedCertificate.serialHex). */
  serialHex: string;
  revokedAt: Date;
}

export interface CrlHeader {
  /** Must grow with every CRL an issuer publishes (RFC 5280 §5.2.3). */
  crlNumber: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
}

export interface CrlContent extends CrlHeader {
  revoked: readonly RevokedSerial[];
}

/** Signs one CRL with the CA's key; the issuer name and key identifier come from its certificate. */
export function signCrl(
  issuer: { cert: ParsedCertificate; key: KeyObject },
  content: CrlContent,
): Uint8Array {
  const entries = [...content.revoked]
    .sort((a, b) => (a.serialHex < b.serialHex ? -1 : a.serialHex > b.serialHex ? 1 : 0))
    .map(revokedEntryDer);
  return signEncodedCrl(issuer, content, concatBytes(entries));
}

/** One revokedCertificates entry: SEQUENCE { userCertificate INTEGER, revocationDate Time }. */
export function revokedEntryDer(r: RevokedSerial): Uint8Array {
  return encodeRevokedEntries([{ serialHex: r.serialHex, revokedAtMs: r.revokedAt.getTime() }])[0]!;
}

/** Longest entry: SEQUENCE header (2), INTEGER of 32 bytes plus a sign byte (2 + 33), GeneralizedTime (2 + 15). */
const MAX_ENTRY_BYTES = 54;
const SERIAL_HEX = /^[0-9a-f]{1,64}$/;

/**
 * revokedCertificates entries for a batch of serials, each a view into one buffer for the batch (the same bytes
 * revokedEntryDer gives). Consecutive entries revoked in the same second share the encoding of their time.
 * @throws InvalidArgumentError for a serial that is not lower-case hex of at most 32 bytes.
 */
export function encodeRevokedEntries(
  list: readonly { serialHex: string; revokedAtMs: number }[],
): Uint8Array[] {
  const buf = Buffer.allocUnsafe(list.length * MAX_ENTRY_BYTES);
  const views: Uint8Array[] = new Array<Uint8Array>(list.length);
  let lastSecond = Number.NaN;
  let time: Uint8Array = new Uint8Array(0);
  let off = 0;
  for (let i = 0; i < list.length; i++) {
    const { serialHex, revokedAtMs } = list[i]!;
    if (!SERIAL_HEX.test(serialHex)) throw new InvalidArgumentError(`not a serial: ${serialHex}`);
    const second = Math.floor(revokedAtMs / 1000);
    if (second !== lastSecond) {
      time = derTime(new Date(second * 1000));
      lastSecond = second;
    }
    const start = off;
    // The magnitude goes one byte in, leaving room for a sign byte; leading zero bytes are skipped.
    const magnitude = start + 5;
    let n = buf.write(serialHex.length % 2 === 1 ? `0${serialHex}` : serialHex, magnitude, 'hex');
    let from = magnitude;
    while (n > 1 && buf[from] === 0) {
      from++;
      n--;
    }
    if (buf[from]! >= 0x80) {
      from--;
      buf[from] = 0;
      n++;
    }
    buf[from - 2] = 0x02; // INTEGER
    buf[from - 1] = n;
    const integerStart = from - 2;
    let p = from + n;
    buf.set(time, p);
    p += time.length;
    // SEQUENCE header right before the INTEGER; its content is under 128 bytes, so the short length form.
    buf[integerStart - 2] = TAG_SEQUENCE;
    buf[integerStart - 1] = p - integerStart;
    views[i] = buf.subarray(integerStart - 2, p);
    off = start + MAX_ENTRY_BYTES;
  }
  return views;
}

/**
 * Signs one CRL whose revokedCertificates are `entries`: revokedEntryDer results, concatenated (empty for
 * none). The issuer name and key identifier come from the CA's certificate.
 */
export function signEncodedCrl(
  issuer: { cert: ParsedCertificate; key: KeyObject },
  header: CrlHeader,
  entries: Uint8Array,
): Uint8Array {
  if (header.crlNumber < 0n) throw new InvalidArgumentError('crlNumber must be >= 0');
  if (header.nextUpdate.getTime() <= header.thisUpdate.getTime()) {
    throw new InvalidArgumentError('nextUpdate must be after thisUpdate');
  }
  const algorithm = signatureAlgorithmDer(issuer.key);
  const extensions: Uint8Array[] = [];
  // RFC 5280 §5.2.1: conforming CRL issuers MUST include it; it is how a verifier picks the right key
  // when the old and the new CA share a subject name during rotation.
  if (issuer.cert.subjectKeyId !== undefined) extensions.push(authorityKeyIdExtDer(issuer.cert.subjectKeyId));
  extensions.push(extensionDer(OID_CRL_NUMBER, false, derUnsignedInteger(bigintBytes(header.crlNumber))));
  const parts = [
    derSmallInteger(1), // v2
    algorithm,
    issuer.cert.subjectDer,
    derTime(header.thisUpdate),
    derTime(header.nextUpdate),
  ].map(encodedNode);
  // An empty list is omitted, not encoded as an empty SEQUENCE (OpenSSL rejects the latter).
  if (entries.length > 0) parts.push(constructedNode(TAG_SEQUENCE, [encodedNode(entries)]));
  parts.push(encodedNode(derContextConstructed(0, derSequence(...extensions))));
  // One write of the list, which can be tens of megabytes, with the headers around it.
  return signAndFrameDer(writeDer(constructedNode(TAG_SEQUENCE, parts)), algorithm, issuer.key);
}

function bigintBytes(n: bigint): Uint8Array {
  return hexBytes(n.toString(16));
}

function hexBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.length % 2 === 1 ? `0${hex}` : hex, 'hex'));
}
