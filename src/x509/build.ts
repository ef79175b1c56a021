import { KeyObject, randomBytes } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  Extension,
  Extensions,
  Name,
  RelativeDistinguishedName,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from '@peculiar/asn1-x509';
import { signatureSchemeFor, signWithKey, spkiDer } from './keys';
import { concatBytes, encodeTlv, TAG_BIT_STRING, TAG_SEQUENCE } from './der';

/**
 * Assembles and signs one certificate. The TBSCertificate is built with the schema classes and signed with
 * node:crypto; the outer SEQUENCE is framed by hand around those exact bytes, so what is signed is, byte for
 * byte, what is embedded. Profiles decide the fields; this module only encodes them.
 */

export const OID_ORGANIZATION = '2.5.4.10';
export const OID_COMMON_NAME = '2.5.4.3';

export interface CertificateFields {
  serial: Uint8Array;
  issuer: Name;
  subject: Name;
  notBefore: Date;
  notAfter: Date;
  subjectPublicKeyInfo: SubjectPublicKeyInfo;
  extensions: Extension[];
  /** The issuer's private key; also decides the signature algorithm. */
  signingKey: KeyObject;
}

/**
 * A random 128-bit positive serial. The top bit is cleared so the INTEGER is positive without a 0x00 pad,
 * and a zero first byte is redrawn so the encoding is always 16 minimal bytes (about 127 bits of entropy,
 * well above the 64 bits CA/Browser Forum rules ask for).
 */
export function randomSerial(): Uint8Array {
  for (;;) {
    const bytes = new Uint8Array(randomBytes(16));
    bytes[0] = bytes[0]! & 0x7f;
    if (bytes[0] !== 0) return bytes;
  }
}

/** O and CN as UTF8String attributes, each in its own RDN, in that order. */
export function buildName(attrs: { organization?: string; commonName?: string }): Name {
  const rdns: RelativeDistinguishedName[] = [];
  const add = (oid: string, value: string | undefined): void => {
    if (value === undefined) return;
    rdns.push(
      new RelativeDistinguishedName([
        new AttributeTypeAndValue({ type: oid, value: new AttributeValue({ utf8String: value }) }),
      ]),
    );
  };
  add(OID_ORGANIZATION, attrs.organization);
  add(OID_COMMON_NAME, attrs.commonName);
  return new Name(rdns);
}

export function spkiOf(key: KeyObject): SubjectPublicKeyInfo {
  return AsnConvert.parse(spkiDer(key), SubjectPublicKeyInfo);
}

/** The AlgorithmIdentifier of the one scheme `signingKey` signs with (also used inside the signed part). */
export function signatureAlgorithm(signingKey: KeyObject): AlgorithmIdentifier {
  const scheme = signatureSchemeFor(signingKey);
  const alg = new AlgorithmIdentifier({ algorithm: scheme.oid });
  // null serialises as an explicit ASN.1 NULL (RSA, RFC 4055); leaving it unset omits the field (ECDSA, Ed25519).
  if (scheme.nullParams) alg.parameters = null;
  return alg;
}

/** Seconds precision, as X.509 times carry no fraction. */
export function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

/** Builds, signs and DER-encodes the certificate. */
export function signCertificate(fields: CertificateFields): Uint8Array {
  const algorithm = signatureAlgorithm(fields.signingKey);
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: toArrayBuffer(fields.serial),
    signature: algorithm,
    issuer: fields.issuer,
    // Validity picks UTCTime through 2049 and GeneralizedTime after, as RFC 5280 §4.1.2.5 requires.
    validity: new Validity({ notBefore: fields.notBefore, notAfter: fields.notAfter }),
    subject: fields.subject,
    subjectPublicKeyInfo: fields.subjectPublicKeyInfo,
    extensions: new Extensions(fields.extensions),
  });
  return signAndFrame(new Uint8Array(AsnConvert.serialize(tbs)), algorithm, fields.signingKey);
}

/**
 * SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }: the shape of a Certificate and of a
 * CertificateList alike. Framed by hand so the signed bytes are exactly the embedded ones.
 */
export function signAndFrame(tbsDer: Uint8Array, algorithm: AlgorithmIdentifier, key: KeyObject): Uint8Array {
  const signature = signWithKey(tbsDer, key);
  const algDer = new Uint8Array(AsnConvert.serialize(algorithm));
  const sigBits = encodeTlv(TAG_BIT_STRING, concatBytes([new Uint8Array([0]), signature]));
  return encodeTlv(TAG_SEQUENCE, concatBytes([tbsDer, algDer, sigBits]));
}

export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy.buffer;
}
