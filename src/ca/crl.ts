/**
 * An X.509 v2 CRL (RFC 5280 §5) signed by one CA key, for relying parties that only speak CRLs (nginx's
 * ssl_crl, `openssl verify -crl_check`). The TBSCertList is assembled from DER pieces (x509/der-writer.ts), as
 * certificates are: each revoked entry is encoded once and its bytes reused for every CA's CRL and every later
 * publication, so a publication costs a concatenation and one signature, not an encoding of the whole list.
 */
import type { KeyObject } from 'node:crypto';
import { InvalidArgumentError } from '../errors';
import type { ParsedCertificate } from '../x509/certificate';
import { signatureAlgorithmDer, signAndFrameDer } from '../x509/build';
import { concatBytes, encodeTlv, TAG_SEQUENCE } from '../x509/der';
import { authorityKeyIdExtDer, extensionDer } from '../x509/der-extensions';
import {
  derContextConstructed,
  derSequence,
  derSmallInteger,
  derTime,
  derUnsignedInteger,
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
  return derSequence(derUnsignedInteger(serialBytes(r.serialHex)), derTime(r.revokedAt));
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
  ];
  // An empty list is omitted, not encoded as an empty SEQUENCE (OpenSSL rejects the latter).
  if (entries.length > 0) parts.push(encodeTlv(TAG_SEQUENCE, entries));
  parts.push(derContextConstructed(0, derSequence(...extensions)));
  return signAndFrameDer(derSequence(...parts), algorithm, issuer.key);
}

/** The serial's magnitude; refused unless it is a serial as Lanyard writes them. */
function serialBytes(serialHex: string): Uint8Array {
  if (!/^[0-9a-f]{1,64}$/.test(serialHex)) {
    throw new InvalidArgumentError(`not a serial: ${serialHex}`);
  }
  return hexBytes(serialHex);
}

function bigintBytes(n: bigint): Uint8Array {
  return hexBytes(n.toString(16));
}

function hexBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.length % 2 === 1 ? `0${hex}` : hex, 'hex'));
}
