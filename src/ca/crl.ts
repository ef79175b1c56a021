/**
 * An X.509 v2 CRL (RFC 5280 §5) signed by one CA key, for relying parties that only speak CRLs (nginx's
 * ssl_crl, `openssl verify -crl_check`). The TBSCertList is built with the schema classes and signed with
 * node:crypto through the same framing as certificates (x509/build.ts), so the signed bytes are the
 * embedded ones.
 */
import type { KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  Extension,
  id_ce_cRLNumber,
  Name,
  RevokedCertificate,
  TBSCertList,
  Time,
  Version,
} from '@peculiar/asn1-x509';
import { ErrorCode, LanyardError } from '../errors';
import type { ParsedCertificate } from '../x509/certificate';
import { signAndFrame, signatureAlgorithm, toArrayBuffer, wholeSeconds } from '../x509/build';
import { encodeTlv, TAG_INTEGER } from '../x509/der';
import { authorityKeyIdExt, rawExtension } from '../x509/extensions';

export interface RevokedSerial {
  /** Lower-case hex, no leading zeros (ParsedCertificate.serialHex). */
  serialHex: string;
  revokedAt: Date;
}

export interface CrlContent {
  /** Must grow with every CRL an issuer publishes (RFC 5280 §5.2.3). */
  crlNumber: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
  revoked: readonly RevokedSerial[];
}

/** Signs one CRL with the CA's key; the issuer name and key identifier come from its certificate. */
export function signCrl(
  issuer: { cert: ParsedCertificate; key: KeyObject },
  content: CrlContent,
): Uint8Array {
  if (content.crlNumber < 0n) throw new LanyardError(ErrorCode.INVALID_ARGUMENT, 'crlNumber must be >= 0');
  if (content.nextUpdate.getTime() <= content.thisUpdate.getTime()) {
    throw new LanyardError(ErrorCode.INVALID_ARGUMENT, 'nextUpdate must be after thisUpdate');
  }
  const algorithm = signatureAlgorithm(issuer.key);
  const extensions: Extension[] = [rawExtension(id_ce_cRLNumber, false, derInteger(content.crlNumber))];
  // RFC 5280 §5.2.1: conforming CRL issuers MUST include it; it is how a verifier picks the right key
  // when the old and the new CA share a subject name during rotation.
  if (issuer.cert.subjectKeyId !== undefined) extensions.unshift(authorityKeyIdExt(issuer.cert.subjectKeyId));
  const tbs = new TBSCertList({
    version: Version.v2,
    signature: algorithm,
    issuer: AsnConvert.parse(issuer.cert.subjectDer, Name),
    thisUpdate: new Time(wholeSeconds(content.thisUpdate)),
    nextUpdate: new Time(wholeSeconds(content.nextUpdate)),
    crlExtensions: extensions,
  });
  // An empty list is omitted, not encoded as an empty SEQUENCE (OpenSSL rejects the latter).
  if (content.revoked.length > 0) {
    tbs.revokedCertificates = [...content.revoked]
      .sort((a, b) => (a.serialHex < b.serialHex ? -1 : a.serialHex > b.serialHex ? 1 : 0))
      .map(
        (r) =>
          new RevokedCertificate({
            userCertificate: toArrayBuffer(serialBytes(r.serialHex)),
            revocationDate: new Time(wholeSeconds(r.revokedAt)),
          }),
      );
  }
  return signAndFrame(new Uint8Array(AsnConvert.serialize(tbs)), algorithm, issuer.key);
}

/** A non-negative INTEGER's DER encoding: minimal, with a 0x00 pad when the top bit is set. */
function derInteger(n: bigint): Uint8Array {
  return encodeTlv(TAG_INTEGER, unsignedBytes(n.toString(16)));
}

/** The serial's INTEGER contents (the schema class writes the bytes as given, so they must be minimal). */
function serialBytes(serialHex: string): Uint8Array {
  if (!/^[0-9a-f]{1,64}$/.test(serialHex)) {
    throw new LanyardError(ErrorCode.INVALID_ARGUMENT, `not a serial: ${serialHex}`);
  }
  return unsignedBytes(serialHex);
}

function unsignedBytes(hex: string): Uint8Array {
  let h = hex.replace(/^0+(?=.)/, '');
  if (h.length % 2 === 1) h = `0${h}`;
  const bytes = Buffer.from(h, 'hex');
  return bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
}
