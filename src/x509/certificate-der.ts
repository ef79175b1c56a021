import { isUtf8 } from 'node:buffer';
import * as der from './der';
import type { DerCursor as Cursor, Tlv } from './der';
import { formatDn, stringValue } from './distinguished-name';
import { formatIpBytes } from './name-syntax';

// The DER reader's functions and tags as module constants, read once: a transpiler that keeps ES module live
// bindings (tsx, which `npm run bench` and the tests run under) otherwise calls a getter on every use, a sixth
// of a certificate parse. Compiled output (dist/) is the same either way.
const {
  contentOf,
  DerCursor,
  DerFramingError,
  NO_ELEMENT,
  expectTag,
  readBitString,
  readBoolean,
  readChildren,
  readIntegerBytes,
  readOid,
  readSingleTlv,
  readTlv,
  readUnsignedNumber,
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
} = der;

/**
 * One pass over the DER of an X.509 certificate (RFC 5280 §4.1) with the strict reader of der.ts, extracting
 * what ParsedCertificate exposes and decoding only the extensions the verifier reads. Every deviation from
 * DER or from the certificate grammar throws DerFramingError; certificate.ts turns it into a typed error.
 *
 * What is checked: framing and minimal lengths everywhere, field order and tags, v3 (or v1, which has no
 * unique identifiers and no extensions; v2 is refused), INTEGER minimality,
 * RFC 5280 time forms (UTCTime YYMMDDHHMMSSZ, GeneralizedTime YYYYMMDDHHMMSSZ, real calendar dates), DEFAULT
 * values left out (an explicit critical FALSE is not DER), unique extensions, and the contents of the decoded
 * extensions. Not checked: SIZE (1..MAX) lower bounds and the DER ordering of SET OF in names, which Go and
 * OpenSSL do not enforce either; contents of unknown extensions (their own decoders are strict).
 */

/** The keyUsage bits a verifier cares about, as booleans. */
export interface KeyUsageBits {
  digitalSignature: boolean;
  keyEncipherment: boolean;
  keyAgreement: boolean;
  keyCertSign: boolean;
  cRLSign: boolean;
}

/**
 * One GeneralName (RFC 5280 §4.2.1.6), as a SAN entry or as the base of a name-constraint subtree. Only the DER
 * framing is checked here; whether the value is a well-formed name of its kind is path validation's business
 * (x509/name-syntax.ts), so that a certificate with an odd name can still be read and shown.
 */
export interface GeneralName {
  /** 'other' is an otherName or a registeredID: forms whose matching rules RFC 5280 does not define. */
  kind: 'uri' | 'dns' | 'email' | 'ip' | 'dn' | 'other';
  /**
   * uri, dns, email: the IA5String text. ip: a readable form of the octets. dn: a readable form of the Name.
   * other: "otherName <type-id>" or "registeredID <oid>".
   */
  value: string;
  /** ip: the OCTET STRING contents (address, or address and mask in a constraint). dn: the Name's DER. */
  bytes?: Uint8Array;
}

/** The base of a GeneralSubtree (minimum and maximum are refused, see readSubtrees). */
export type NameSubtree = GeneralName;

export interface ParsedNameConstraints {
  permitted: NameSubtree[];
  excluded: NameSubtree[];
}

export interface ParsedExtension {
  /** Dotted decimal, exact for arcs of any size. */
  oid: string;
  critical: boolean;
  /** extnValue contents (the DER of the extension's own value). */
  value: Uint8Array;
}

export interface AlgorithmIdentifierParts {
  oid: string;
  /** The whole AlgorithmIdentifier element. */
  der: Uint8Array;
  /** The parameters element, when present. */
  params?: Uint8Array;
}

/**
 * Everything read from the certificate. Byte fields are views into the DER passed to parseCertificateDer, which
 * the caller owns (ParsedCertificate parses a private copy).
 */
export interface CertificateFields {
  /** 3, or 1 for a certificate without the version field (no extensions). */
  version: 1 | 3;
  tbs: Uint8Array;
  signatureAlgorithm: AlgorithmIdentifierParts;
  tbsSignatureAlgorithm: AlgorithmIdentifierParts;
  /** The signature BIT STRING's bytes (whole octets). */
  signature: Uint8Array;
  serial: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  issuer: Uint8Array;
  subject: Uint8Array;
  spki: Uint8Array;
  spkiAlgorithm: AlgorithmIdentifierParts;
  /** The subjectPublicKey BIT STRING's bytes (whole octets). */
  spkiKey: Uint8Array;
  extensions: ParsedExtension[];
  basicConstraints?: { ca: boolean; pathLen?: number };
  keyUsage?: KeyUsageBits;
  extKeyUsage?: string[];
  uriSans: string[];
  dnsSans: string[];
  sanCount: number;
  /** Every subjectAltName entry in order; empty without the extension. */
  subjectAltNames: GeneralName[];
  subjectKeyId?: Uint8Array;
  authorityKeyId?: Uint8Array;
  nameConstraints?: ParsedNameConstraints;
}

export const OID_BASIC_CONSTRAINTS = '2.5.29.19';
export const OID_KEY_USAGE = '2.5.29.15';
export const OID_EXT_KEY_USAGE = '2.5.29.37';
export const OID_SUBJECT_ALT_NAME = '2.5.29.17';
export const OID_SUBJECT_KEY_ID = '2.5.29.14';
export const OID_AUTHORITY_KEY_ID = '2.5.29.35';
export const OID_NAME_CONSTRAINTS = '2.5.29.30';

export const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
export const OID_RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
export const OID_ED25519 = '1.3.101.112';
const OID_P256 = '1.2.840.10045.3.1.7';
const OID_P384 = '1.3.132.0.34';
const EC_FIELD_BYTES: Record<string, number> = { [OID_P256]: 32, [OID_P384]: 48 };

/** The whole encoding of NULL: the parameters of RSA PKCS#1 v1.5 AlgorithmIdentifiers (RFC 4055). */
export const DER_NULL = Uint8Array.of(TAG_NULL, 0x00);
/** The whole encoding of the prime256v1 OID: the parameters of a P-256 key's AlgorithmIdentifier. */
export const DER_P256 = Uint8Array.of(TAG_OID, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07);
/** The whole encoding of the secp384r1 OID. */
export const DER_P384 = Uint8Array.of(TAG_OID, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22);

const TAG_CTX_1_PRIMITIVE = 0x81;
const TAG_CTX_2_PRIMITIVE = 0x82;
const TAG_CTX_3_CONSTRUCTED = 0xa3;

/** Parses the whole certificate; `der` must be exactly one element. */
export function parseCertificateDer(der: Uint8Array): CertificateFields {
  const outer = expectTag(readSingleTlv(der), TAG_SEQUENCE, 'Certificate');
  const top = readChildren(der, outer);
  if (top.length !== 3) throw new DerFramingError(`Certificate has ${top.length} elements, expected 3`);
  const tbsTlv = expectTag(top[0], TAG_SEQUENCE, 'tbsCertificate');
  const signatureAlgorithm = readAlgorithmIdentifier(der, top[1], 'signatureAlgorithm', true);
  const signature = wholeOctets(der, expectTag(top[2], TAG_BIT_STRING, 'signatureValue'), 'signatureValue');

  // The tbsCertificate's fields are read with one cursor (no array, no object per field): each is decoded, or
  // its offsets kept, before the cursor moves on.
  const fields = new DerCursor(der).enter(tbsTlv);
  fields.next();
  // version [0] EXPLICIT Version DEFAULT v1: absent means v1, which path validation accepts only as a trust
  // anchor (RFC 5280 §6.1.1 (d): an anchor is a name and a key). v2 only adds unique identifiers, which nothing
  // uses, and is refused as before.
  let version: 1 | 3 = 1;
  if (fields.tag === TAG_CONTEXT_0_CONSTRUCTED) {
    const versionChildren = readChildren(der, fields);
    const versionInt = expectTag(versionChildren[0], TAG_INTEGER, 'version');
    if (versionChildren.length !== 1) throw new DerFramingError('version [0] holds more than one element');
    const v = readIntegerBytes(der, versionInt);
    if (v.length !== 1 || v[0] !== 2) {
      throw new DerFramingError(
        v.length === 1 && v[0] === 0
          ? 'version encodes v1, the DEFAULT (X.690 §11.5: left out)'
          : 'only X.509 v3 and v1 certificates are accepted',
      );
    }
    version = 3;
    fields.next();
  }
  const serial = readIntegerBytes(der, expectTag(fields.current, TAG_INTEGER, 'serialNumber'));
  fields.next();
  const tbsSignatureAlgorithm = readAlgorithmIdentifier(
    der,
    fields.current,
    'tbsCertificate.signature',
    true,
  );
  fields.next();
  checkCertificateName(der, fields.current, 'issuer');
  const issuer = der.subarray(fields.start, fields.end);
  fields.next();
  const validity = readValidity(der, fields.current);
  fields.next();
  checkCertificateName(der, fields.current, 'subject');
  const subject = der.subarray(fields.start, fields.end);
  fields.next();
  const { spki, spkiAlgorithm, spkiKey } = readSubjectPublicKeyInfo(der, fields.current);
  fields.next();

  // issuerUniqueID [1], subjectUniqueID [2] (IMPLICIT BIT STRING; obsolete but legal), extensions [3]; none of
  // them exists in v1 (RFC 5280 §4.1.2.8, §4.1.2.9).
  if (version === 1 && fields.tag !== NO_ELEMENT) {
    throw new DerFramingError('a v1 certificate carries no unique identifiers and no extensions');
  }
  if (version === 3 && fields.tag === TAG_CTX_1_PRIMITIVE) {
    readBitString(der, fields);
    fields.next();
  }
  if (version === 3 && fields.tag === TAG_CTX_2_PRIMITIVE) {
    readBitString(der, fields);
    fields.next();
  }
  const out: CertificateFields = {
    version,
    tbs: der.subarray(tbsTlv.start, tbsTlv.end),
    signatureAlgorithm,
    tbsSignatureAlgorithm,
    signature,
    serial,
    notBefore: validity.notBefore,
    notAfter: validity.notAfter,
    issuer,
    subject,
    spki,
    spkiAlgorithm,
    spkiKey,
    extensions: [],
    uriSans: [],
    dnsSans: [],
    sanCount: 0,
    subjectAltNames: [],
  };
  if (version === 3 && fields.tag === TAG_CTX_3_CONSTRUCTED) {
    const wrapper = readChildren(der, fields);
    if (wrapper.length !== 1) throw new DerFramingError('extensions [3] holds more than one element');
    readExtensions(der, expectTag(wrapper[0], TAG_SEQUENCE, 'extensions'), out);
    fields.next();
  }
  if (fields.tag !== NO_ELEMENT) {
    throw new DerFramingError(`unexpected element (tag 0x${fields.tag.toString(16)}) in tbsCertificate`);
  }
  return out;
}

/** Validity ::= SEQUENCE { notBefore Time, notAfter Time }, both read as RFC 5280 §4.1.2.5 has them. */
function readValidity(der: Uint8Array, tlv: Tlv | undefined): { notBefore: Date; notAfter: Date } {
  // A cursor, not readChildren (an array and an object per element, for every certificate and outline read):
  // every element is framed and counted first, as readChildren did, then the two times are read.
  const validity = new DerCursor(der).enter(expectTag(tlv, TAG_SEQUENCE, 'validity'));
  let n = 0;
  while (validity.next() !== NO_ELEMENT) n++;
  if (n !== 2) throw new DerFramingError(`validity has ${n} elements, expected 2`);
  validity.enter(tlv!);
  validity.next();
  const notBefore = readTime(der, validity, 'notBefore');
  validity.next();
  return { notBefore, notAfter: readTime(der, validity, 'notAfter') };
}

/** The SubjectPublicKeyInfo element, its algorithm and its key (views into `der`), the key's shape checked. */
export function readSubjectPublicKeyInfo(
  der: Uint8Array,
  tlv: Tlv | undefined,
): { spki: Uint8Array; spkiAlgorithm: AlgorithmIdentifierParts; spkiKey: Uint8Array } {
  const spkiTlv = expectTag(tlv, TAG_SEQUENCE, 'subjectPublicKeyInfo');
  const spki = der.subarray(spkiTlv.start, spkiTlv.end);
  const spkiParts = readChildren(der, spkiTlv);
  if (spkiParts.length !== 2)
    throw new DerFramingError('subjectPublicKeyInfo is not { algorithm, subjectPublicKey }');
  const spkiAlgorithm = readAlgorithmIdentifier(der, spkiParts[0], 'subjectPublicKeyInfo.algorithm', true);
  const spkiKey = wholeOctets(
    der,
    expectTag(spkiParts[1], TAG_BIT_STRING, 'subjectPublicKey'),
    'subjectPublicKey',
  );
  checkKnownKey(spkiAlgorithm, spkiKey);
  return { spki, spkiAlgorithm, spkiKey };
}

/**
 * Where the top-level fields of a certificate lie in its DER (offsets), with the ones a renewal changes read:
 * the serial number (a minimal INTEGER), the validity (as parseCertificateDer reads it) and the signature (whole
 * octets). The rest is only framed: the version element, the inner and outer signature algorithms, the issuer,
 * the subject, the SubjectPublicKeyInfo and `tail` (everything of the tbsCertificate after the key: unique
 * identifiers and the extensions) are spans to be compared byte for byte with those of a certificate that passed
 * parseCertificateDer (ParsedCertificate's renewal path); equal bytes parse the same. Throws DerFramingError.
 */
export interface CertificateOutline {
  tbsStart: number;
  tbsEnd: number;
  /** The version [0] element; versionStart === versionEnd when absent (v1). */
  versionStart: number;
  versionEnd: number;
  serialStart: number;
  serialEnd: number;
  tbsSignatureStart: number;
  tbsSignatureEnd: number;
  issuerStart: number;
  issuerEnd: number;
  notBefore: Date;
  notAfter: Date;
  subjectStart: number;
  subjectEnd: number;
  spkiStart: number;
  /** Also where the tail starts; the tail ends at tbsEnd. */
  spkiEnd: number;
  signatureAlgorithmStart: number;
  signatureAlgorithmEnd: number;
  /** The signature's whole octets (after the unused-bits octet). */
  signatureStart: number;
  signatureEnd: number;
  /**
   * The contents of the subjectKeyIdentifier's KeyIdentifier OCTET STRING, found by framing alone (see
   * keyIdentifierSpan); -1 when the certificate has none or its extensions do not frame.
   */
  keyIdStart: number;
  keyIdEnd: number;
}

export function readCertificateOutline(der: Uint8Array): CertificateOutline {
  const outer = expectTag(readSingleTlv(der), TAG_SEQUENCE, 'Certificate');
  const top = new DerCursor(der).enter(outer);
  top.next();
  expectTag(top.current, TAG_SEQUENCE, 'tbsCertificate');
  const tbsStart = top.start;
  const tbsEnd = top.end;
  const fields = new DerCursor(der).enter(top);
  top.next();
  expectTag(top.current, TAG_SEQUENCE, 'signatureAlgorithm');
  const signatureAlgorithmStart = top.start;
  const signatureAlgorithmEnd = top.end;
  top.next();
  const signature = wholeOctets(
    der,
    expectTag(top.current, TAG_BIT_STRING, 'signatureValue'),
    'signatureValue',
  );
  if (top.next() !== NO_ELEMENT) throw new DerFramingError('Certificate has more than 3 elements');

  fields.next();
  let versionStart = fields.start;
  let versionEnd = fields.start;
  if (fields.tag === TAG_CONTEXT_0_CONSTRUCTED) {
    versionStart = fields.start;
    versionEnd = fields.end;
    fields.next();
  }
  readIntegerBytes(der, expectTag(fields.current, TAG_INTEGER, 'serialNumber'));
  const serialStart = fields.contentStart;
  const serialEnd = fields.end;
  fields.next();
  expectTag(fields.current, TAG_SEQUENCE, 'tbsCertificate.signature');
  const tbsSignatureStart = fields.start;
  const tbsSignatureEnd = fields.end;
  fields.next();
  expectTag(fields.current, TAG_SEQUENCE, 'issuer');
  const issuerStart = fields.start;
  const issuerEnd = fields.end;
  fields.next();
  const { notBefore, notAfter } = readValidity(der, fields.current);
  fields.next();
  expectTag(fields.current, TAG_SEQUENCE, 'subject');
  const subjectStart = fields.start;
  const subjectEnd = fields.end;
  fields.next();
  expectTag(fields.current, TAG_SEQUENCE, 'subjectPublicKeyInfo');
  const spkiStart = fields.start;
  const spkiEnd = fields.end;
  const keyIdStart = keyIdentifierSpan(der, fields);
  return {
    tbsStart,
    tbsEnd,
    versionStart,
    versionEnd,
    serialStart,
    serialEnd,
    tbsSignatureStart,
    tbsSignatureEnd,
    issuerStart,
    issuerEnd,
    notBefore,
    notAfter,
    subjectStart,
    subjectEnd,
    spkiStart,
    spkiEnd,
    signatureAlgorithmStart,
    signatureAlgorithmEnd,
    signatureStart: signature.byteOffset - der.byteOffset,
    signatureEnd: signature.byteOffset - der.byteOffset + signature.length,
    keyIdStart,
    keyIdEnd: keyIdStart < 0 ? -1 : keyIdEnd,
  };
}

/** Set by keyIdentifierSpan beside its result: a second number without an object per call. */
let keyIdEnd = -1;

/**
 * Where the first subjectKeyIdentifier extension's KeyIdentifier lies (the contents of the OCTET STRING that is
 * the whole extnValue), its end left in keyIdEnd; -1 when there is none or anything on the way does not frame.
 * `fields` is the tbsCertificate's cursor on the key. Framing only, no rule: the renewal path uses the span to
 * find a leaf's entry whatever its key (renewals.ts) and to know which bytes of a template are the key's
 * identifier (CertificateTemplate); everything else of those bytes is compared, and a full parse reads them.
 */
function keyIdentifierSpan(der: Uint8Array, fields: Cursor): number {
  try {
    let tag = fields.next();
    if (tag === TAG_CTX_1_PRIMITIVE) tag = fields.next();
    if (tag === TAG_CTX_2_PRIMITIVE) tag = fields.next();
    if (tag !== TAG_CTX_3_CONSTRUCTED) return -1;
    const outer = new DerCursor(der).enter(fields);
    if (outer.next() !== TAG_SEQUENCE) return -1;
    const list = new DerCursor(der).enter(outer);
    const parts = new DerCursor(der);
    while (list.next() === TAG_SEQUENCE) {
      parts.enter(list);
      if (parts.next() !== TAG_OID) return -1;
      const c = parts.contentStart;
      // 2.5.29.14: 55 1d 0e.
      if (parts.end - c !== 3 || der[c] !== 0x55 || der[c + 1] !== 0x1d || der[c + 2] !== 0x0e) continue;
      let t = parts.next();
      if (t === TAG_BOOLEAN) t = parts.next();
      if (t !== TAG_OCTET_STRING) return -1;
      const inner = readTlv(der, parts.contentStart, parts.end);
      if (inner.tag !== TAG_OCTET_STRING || inner.end !== parts.end) return -1;
      keyIdEnd = inner.end;
      return inner.contentStart;
    }
    return -1;
  } catch {
    return -1;
  }
}

/** `view`: return views into `der` (the caller owns it) rather than copies. */
export function readAlgorithmIdentifier(
  der: Uint8Array,
  tlv: Tlv | undefined,
  what: string,
  view = false,
): AlgorithmIdentifierParts {
  const parts = new DerCursor(der).enter(expectTag(tlv, TAG_SEQUENCE, what));
  if (parts.next() === NO_ELEMENT) throw new DerFramingError(`${what} is not { algorithm, parameters }`);
  const oid = readOid(der, expectTag(parts, TAG_OID, `${what}.algorithm`));
  const whole = view ? der.subarray(tlv!.start, tlv!.end) : der.slice(tlv!.start, tlv!.end);
  if (parts.next() === NO_ELEMENT) return { oid, der: whole };
  checkAnyValue(der, parts, `${what}.parameters`);
  const params = view ? der.subarray(parts.start, parts.end) : der.slice(parts.start, parts.end);
  if (parts.next() !== NO_ELEMENT) throw new DerFramingError(`${what} is not { algorithm, parameters }`);
  return { oid, der: whole, params };
}

/** A BIT STRING that holds whole octets (signatures, keys); a view into `der`. */
export function wholeOctets(der: Uint8Array, tlv: Tlv, what: string): Uint8Array {
  const { unusedBits, bytes } = readBitString(der, tlv);
  if (unusedBits !== 0) throw new DerFramingError(`${what} BIT STRING has unused bits`);
  return bytes;
}

/**
 * The shape of the key types Lanyard signs and verifies with, so that a certificate we accept carries a key
 * node:crypto can import; whether an EC point lies on its curve is left to OpenSSL (publicKey, on first use).
 */
export function checkKnownKey(alg: AlgorithmIdentifierParts, key: Uint8Array): void {
  if (alg.oid === OID_RSA_ENCRYPTION) {
    const seq = readSingleTlv(key);
    const ints = readChildren(key, expectTag(seq, TAG_SEQUENCE, 'RSAPublicKey'));
    if (ints.length !== 2) throw new DerFramingError('RSAPublicKey is not { modulus, publicExponent }');
    for (const t of ints) {
      const v = readIntegerBytes(key, expectTag(t, TAG_INTEGER, 'RSAPublicKey'));
      if (v[0]! >= 0x80 || (v.length === 1 && v[0] === 0))
        throw new DerFramingError('RSA key integer is not positive');
    }
  } else if (alg.oid === OID_EC_PUBLIC_KEY) {
    if (alg.params === undefined) throw new DerFramingError('EC key without curve parameters');
    const curve = readSingleTlv(alg.params);
    // ECParameters ::= CHOICE { namedCurve OID, implicitCurve NULL, specifiedCurve SEQUENCE } (RFC 3279, 5480).
    if (curve.tag === TAG_NULL || curve.tag === TAG_SEQUENCE) return; // not a named curve: OpenSSL decides
    if (curve.tag !== TAG_OID) throw new DerFramingError('EC key parameters are not ECParameters');
    const size = EC_FIELD_BYTES[readOid(alg.params, curve)];
    if (size === undefined) return;
    const ok =
      (key[0] === 0x04 && key.length === 1 + 2 * size) ||
      ((key[0] === 0x02 || key[0] === 0x03) && key.length === 1 + size);
    if (!ok) throw new DerFramingError('EC public key is not a point encoding of its curve');
  } else if (alg.oid === OID_ED25519) {
    if (alg.params !== undefined || key.length !== 32) {
      throw new DerFramingError('Ed25519 key must be 32 bytes without parameters (RFC 8410)');
    }
  }
}

/**
 * Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value }; kept as bytes, but checked. Values are limited to
 * what the attribute types in use carry (the directory string types, IA5String, NumericString, BIT STRING, or a
 * SEQUENCE) and must hold what their type says: OpenSSL refuses a certificate whose name has, say, invalid
 * UTF-8 or a VisibleString, and a certificate we accept must be one OpenSSL reads too.
 */
export function checkName(der: Uint8Array, tlv: Tlv | undefined, what: string): void {
  for (const rdn of readChildren(der, expectTag(tlv, TAG_SEQUENCE, what))) {
    for (const atv of readChildren(der, expectTag(rdn, TAG_SET, `${what} RDN`))) {
      const parts = readChildren(der, expectTag(atv, TAG_SEQUENCE, `${what} attribute`));
      if (parts.length !== 2) throw new DerFramingError(`${what} attribute is not { type, value }`);
      readOid(der, expectTag(parts[0], TAG_OID, `${what} attribute type`));
      const value = parts[1]!;
      if (!NAME_VALUE_TAGS.has(value.tag)) {
        throw new DerFramingError(
          `${what} attribute value of tag 0x${value.tag.toString(16)} is not accepted`,
        );
      }
      checkAnyValue(der, value, `${what} attribute value`);
    }
  }
}

/**
 * checkName for a certificate's issuer or subject, skipped for the exact bytes of a name that passed it lately: a
 * new leaf names the same issuer as the last one (its CA's subject) and often the same subject. checkName is a
 * function of the bytes alone, so equal bytes pass again; anything else is checked.
 */
function checkCertificateName(der: Uint8Array, tlv: Tlv | undefined, what: string): void {
  if (tlv !== undefined && tlv.tag === TAG_SEQUENCE) {
    for (const known of passedNames) if (sameRange(known, der, tlv.start, tlv.end)) return;
  }
  checkName(der, tlv, what);
  if (tlv!.end - tlv!.start <= MAX_PASSED_NAME_BYTES) {
    passedNames[nextPassedName] = der.slice(tlv!.start, tlv!.end);
    nextPassedName = (nextPassedName + 1) % PASSED_NAMES;
  }
}

/** Private copies of the last names that passed checkName, in a ring. */
const PASSED_NAMES = 4;
const MAX_PASSED_NAME_BYTES = 256;
const passedNames: Uint8Array[] = [];
let nextPassedName = 0;

function sameRange(known: Uint8Array, der: Uint8Array, start: number, end: number): boolean {
  if (known.length !== end - start) return false;
  for (let i = 0; i < known.length; i++) if (known[i] !== der[start + i]) return false;
  return true;
}

const NAME_VALUE_TAGS: ReadonlySet<number> = new Set([
  TAG_BIT_STRING,
  0x0c, // UTF8String
  0x12, // NumericString
  0x13, // PrintableString
  0x14, // TeletexString
  0x16, // IA5String
  0x1c, // UniversalString
  0x1e, // BMPString
  TAG_SEQUENCE,
]);

const MAX_ANY_DEPTH = 32;

/**
 * A value of type ANY (algorithm parameters, attribute values, otherName values): framed as DER all the way
 * down, and every universal element in it with contents its type allows (as OpenSSL's and asn1js's decoders
 * check them, so that both read what we accept): BOOLEAN 00/FF, minimal
 * INTEGER and ENUMERATED, empty NULL, a valid OID or BIT STRING, well-formed UTF8String, BMPString and
 * UniversalString; SEQUENCE and SET constructed, every other universal type primitive (DER has no constructed
 * strings). Universal types that have no place in a certificate (end-of-contents, REAL, EXTERNAL, EMBEDDED PDV,
 * RELATIVE-OID, TIME, CHARACTER STRING, ObjectDescriptor, the reserved 15) are refused.
 */
export function checkAnyValue(der: Uint8Array, tlv: Tlv, what: string, depth = 0): void {
  if (depth > MAX_ANY_DEPTH) throw new DerFramingError(`${what}: elements nested too deeply`);
  const constructed = (tlv.tag & 0x20) !== 0;
  const universal = (tlv.tag & 0xc0) === 0;
  const number = tlv.tag & 0x1f;
  if (universal && constructed !== (number === 0x10 || number === 0x11)) {
    throw new DerFramingError(
      constructed
        ? `${what}: constructed form of a primitive type`
        : `${what}: SEQUENCE or SET in primitive form`,
    );
  }
  if (constructed) {
    for (const child of readChildren(der, tlv)) checkAnyValue(der, child, what, depth + 1);
    return;
  }
  if (!universal) return;
  const content = contentOf(der, tlv);
  let ok = true;
  switch (number) {
    case 0x00: // end-of-contents
    case 0x07: // ObjectDescriptor
    case 0x08: // EXTERNAL
    case 0x09: // REAL
    case 0x0b: // EMBEDDED PDV
    case 0x0d: // RELATIVE-OID
    case 0x0e: // TIME
    case 0x0f: // reserved
    case 0x1d: // CHARACTER STRING
      ok = false;
      break;
    case 0x01:
      readBoolean(der, tlv);
      break;
    case 0x02:
    case 0x0a:
      readIntegerBytes(der, tlv);
      break;
    case 0x03:
      readBitString(der, tlv);
      break;
    case 0x05:
      ok = content.length === 0;
      break;
    case 0x06:
      readOid(der, tlv);
      break;
    case 0x0c:
      ok = isUtf8(content);
      break;
    case 0x1c:
      ok = content.length % 4 === 0 && codePointsValid(content, 4);
      break;
    case 0x1e:
      ok = content.length % 2 === 0 && codePointsValid(content, 2);
      break;
    case TAG_UTC_TIME:
    case TAG_GENERALIZED_TIME:
      readTime(der, tlv, what);
      break;
  }
  if (!ok) throw new DerFramingError(`${what}: invalid contents for tag 0x${tlv.tag.toString(16)}`);
}

/** UCS-4 or UCS-2 big-endian units: Unicode scalar values only (no surrogates, nothing above U+10FFFF). */
function codePointsValid(bytes: Uint8Array, width: 2 | 4): boolean {
  for (let i = 0; i < bytes.length; i += width) {
    let v = 0;
    for (let j = 0; j < width; j++) v = v * 256 + bytes[i + j]!;
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return false;
  }
  return true;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * RFC 5280 §4.1.2.5: UTCTime YYMMDDHHMMSSZ (YY >= 50 is 19YY, else 20YY) or GeneralizedTime YYYYMMDDHHMMSSZ,
 * always UTC with seconds and without fractions. A GeneralizedTime before 2050 is accepted (CAs must not issue
 * it, but RFC 5280 asks relying parties to process both forms, as Go and OpenSSL do).
 */
function readTime(der: Uint8Array, tlv: Tlv, what: string): Date {
  const n = tlv.end - tlv.contentStart;
  const utc = tlv.tag === TAG_UTC_TIME;
  const digits = utc ? 12 : 14;
  if ((!utc && tlv.tag !== TAG_GENERALIZED_TIME) || n !== digits + 1 || der[tlv.end - 1] !== 0x5a /* Z */) {
    throw new DerFramingError(`${what} is not a UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ`);
  }
  const p = tlv.contentStart;
  // Every character but the final Z is a digit.
  for (let j = p; j < tlv.end - 1; j++) {
    const c = der[j]!;
    if (c < 0x30 || c > 0x39) {
      throw new DerFramingError(`${what} is not a UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ`);
    }
  }
  let q = p + (utc ? 2 : 4);
  let year = twoDigits(der, p);
  if (utc) year += year >= 50 ? 1900 : 2000;
  else year = year * 100 + twoDigits(der, p + 2);
  const month = twoDigits(der, q);
  const day = twoDigits(der, (q += 2));
  const hour = twoDigits(der, (q += 2));
  const minute = twoDigits(der, (q += 2));
  const second = twoDigits(der, (q += 2));
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const monthDays = month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1];
  if (monthDays === undefined || day < 1 || day > monthDays || hour > 23 || minute > 59 || second > 59) {
    throw new DerFramingError(`${what} is not a valid date and time`);
  }
  const d = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  // Date.UTC reads years 0..99 as 1900..1999; a GeneralizedTime may name them.
  if (year < 100) d.setUTCFullYear(year, month - 1, day);
  return d;
}

function twoDigits(der: Uint8Array, at: number): number {
  return (der[at]! - 0x30) * 10 + (der[at + 1]! - 0x30);
}

function readExtensions(der: Uint8Array, seq: Tlv, out: CertificateFields): void {
  for (const ext of readExtensionList(der, seq, true)) {
    out.extensions.push(ext);
    try {
      decodeKnownExtension(ext.oid, ext.value, out);
    } catch (e) {
      if (!(e instanceof DerFramingError)) throw e;
      throw new DerFramingError(`malformed extension ${ext.oid}: ${e.message}`);
    }
  }
}

/**
 * Extensions ::= SEQUENCE OF Extension, framed and checked (no explicit critical FALSE, no duplicates) but
 * not decoded; also the shape of a PKCS#10 extensionRequest. `view`: the values are views into `der` (the
 * caller owns it) rather than copies.
 */
export function readExtensionList(der: Uint8Array, seq: Tlv, view = false): ParsedExtension[] {
  // A certificate carries a handful of extensions: they are compared with the ones before them, and a set is
  // made only for a long list (so that a crafted one costs linear time, not quadratic).
  let seen: Set<string> | undefined;
  const out: ParsedExtension[] = [];
  // Two cursors for the whole list: no array or element object per extension.
  const list = new DerCursor(der).enter(seq);
  const parts = new DerCursor(der);
  while (list.next() !== NO_ELEMENT) {
    parts.enter(expectTag(list, TAG_SEQUENCE, 'Extension'));
    parts.next();
    const oid = readOid(der, expectTag(parts.current, TAG_OID, 'extnID'));
    let critical = false;
    if (parts.next() === TAG_BOOLEAN) {
      critical = readBoolean(der, parts);
      // DER (X.690 §11.5): a value equal to the DEFAULT is left out, so an explicit FALSE is not DER.
      if (!critical) throw new DerFramingError(`extension ${oid} encodes critical FALSE, the DEFAULT`);
      parts.next();
    }
    // The message is built only for a refusal: a template argument would be made for every extension.
    if (parts.tag !== TAG_OCTET_STRING)
      expectTag(parts.current, TAG_OCTET_STRING, `extension ${oid} extnValue`);
    const valueStart = parts.contentStart;
    const valueEnd = parts.end;
    if (parts.next() !== NO_ELEMENT) throw new DerFramingError(`extension ${oid} has extra elements`);
    if (out.length === DUPLICATE_SCAN_LIMIT) seen = new Set(out.map((e) => e.oid));
    if (seen !== undefined ? seen.has(oid) : hasOid(out, oid)) {
      // RFC 5280 §4.2: a certificate MUST NOT include more than one instance of an extension.
      throw new DerFramingError(`duplicate extension ${oid}`);
    }
    seen?.add(oid);
    const value = view ? der.subarray(valueStart, valueEnd) : der.slice(valueStart, valueEnd);
    out.push({ oid, critical, value });
  }
  return out;
}

function hasOid(exts: readonly ParsedExtension[], oid: string): boolean {
  for (let i = 0; i < exts.length; i++) if (exts[i]!.oid === oid) return true;
  return false;
}

/** Up to this many extensions, a new one is compared with each before it. */
const DUPLICATE_SCAN_LIMIT = 16;

function decodeKnownExtension(oid: string, v: Uint8Array, out: CertificateFields): void {
  switch (oid) {
    case OID_BASIC_CONSTRAINTS: {
      const parts = readChildren(v, expectTag(readSingleTlv(v), TAG_SEQUENCE, 'BasicConstraints'));
      let k = 0;
      let ca = false;
      if (parts[k]?.tag === TAG_BOOLEAN) {
        ca = readBoolean(v, parts[k]!);
        if (!ca) throw new DerFramingError('cA encodes FALSE, the DEFAULT');
        k++;
      }
      let pathLen: number | undefined;
      if (parts[k] !== undefined)
        pathLen = readUnsignedNumber(v, expectTag(parts[k++], TAG_INTEGER, 'pathLenConstraint'));
      if (k !== parts.length) throw new DerFramingError('BasicConstraints has extra elements');
      out.basicConstraints = { ca, ...(pathLen !== undefined ? { pathLen } : {}) };
      return;
    }
    case OID_KEY_USAGE: {
      const { bytes } = readBitString(v, expectTag(readSingleTlv(v), TAG_BIT_STRING, 'KeyUsage'));
      // Bits 0..7 are the first octet, most significant first; cRLSign (6) is the last one read.
      const first = bytes.length > 0 ? bytes[0]! : 0;
      out.keyUsage = {
        digitalSignature: (first & 0x80) !== 0,
        keyEncipherment: (first & 0x20) !== 0,
        keyAgreement: (first & 0x08) !== 0,
        keyCertSign: (first & 0x04) !== 0,
        cRLSign: (first & 0x02) !== 0,
      };
      return;
    }
    case OID_EXT_KEY_USAGE: {
      const items = new DerCursor(v).enter(expectTag(readSingleTlv(v), TAG_SEQUENCE, 'ExtKeyUsageSyntax'));
      const purposes: string[] = [];
      while (items.next() !== NO_ELEMENT)
        purposes.push(readOid(v, expectTag(items, TAG_OID, 'KeyPurposeId')));
      // SIZE (1..MAX): an empty list names no purpose, and reading it as "no restriction" would widen it.
      if (purposes.length === 0) throw new DerFramingError('ExtKeyUsageSyntax is empty (SIZE (1..MAX))');
      out.extKeyUsage = purposes;
      return;
    }
    case OID_SUBJECT_ALT_NAME: {
      const names = readGeneralNames(v, readSingleTlv(v));
      if (names.length === 0) throw new DerFramingError('GeneralNames is empty (SIZE (1..MAX))');
      out.subjectAltNames = names;
      out.sanCount = names.length;
      const uris: string[] = [];
      const dns: string[] = [];
      for (const g of names) {
        if (g.kind === 'uri') uris.push(g.value);
        else if (g.kind === 'dns') dns.push(g.value);
      }
      out.uriSans = uris;
      out.dnsSans = dns;
      return;
    }
    case OID_SUBJECT_KEY_ID: {
      out.subjectKeyId = contentOf(
        v,
        expectTag(readSingleTlv(v), TAG_OCTET_STRING, 'SubjectKeyIdentifier'),
      ).slice();
      return;
    }
    case OID_AUTHORITY_KEY_ID: {
      const parts = readChildren(v, expectTag(readSingleTlv(v), TAG_SEQUENCE, 'AuthorityKeyIdentifier'));
      let k = 0;
      if (parts[k]?.tag === 0x80) out.authorityKeyId = contentOf(v, parts[k++]!).slice();
      if (parts[k]?.tag === 0xa1) readGeneralNames(v, parts[k++]!);
      if (parts[k]?.tag === TAG_CTX_2_PRIMITIVE) readIntegerBytes(v, parts[k++]!);
      if (k !== parts.length) throw new DerFramingError('AuthorityKeyIdentifier has unexpected elements');
      return;
    }
    case OID_NAME_CONSTRAINTS: {
      const parts = readChildren(v, expectTag(readSingleTlv(v), TAG_SEQUENCE, 'NameConstraints'));
      let k = 0;
      const permitted = parts[k]?.tag === TAG_CONTEXT_0_CONSTRUCTED ? readSubtrees(v, parts[k++]!) : [];
      const excluded = parts[k]?.tag === 0xa1 ? readSubtrees(v, parts[k++]!) : [];
      if (k !== parts.length) throw new DerFramingError('NameConstraints has unexpected elements');
      // RFC 5280 §4.2.1.10: "conforming CAs MUST NOT issue certificates where name constraints is an empty
      // sequence"; refused rather than read as "no constraint", so a CA's mistake never passes silently.
      if (k === 0) throw new DerFramingError('NameConstraints is empty (neither permitted nor excluded)');
      out.nameConstraints = { permitted, excluded };
      return;
    }
    default:
      return;
  }
}

/**
 * GeneralSubtrees ::= SEQUENCE OF GeneralSubtree { base, [0] minimum DEFAULT 0, [1] maximum OPTIONAL }.
 * RFC 5280 §4.2.1.10: within this profile minimum MUST be zero and maximum MUST be absent. DER omits a zero
 * minimum, so neither field may appear at all. The matcher ignores both; reading a subtree with minimum 1 as
 * if it were 0 would widen a permitted set, so a certificate that carries either is refused instead.
 */
function readSubtrees(v: Uint8Array, tlv: Tlv): NameSubtree[] {
  const subtrees = readChildren(v, tlv);
  if (subtrees.length === 0) throw new DerFramingError('GeneralSubtrees is empty (SIZE (1..MAX))');
  return subtrees.map((st) => {
    const parts = readChildren(v, expectTag(st, TAG_SEQUENCE, 'GeneralSubtree'));
    const base = readGeneralName(v, parts[0]);
    let k = 1;
    if (parts[k]?.tag === 0x80) {
      const minimum = readUnsignedNumber(v, parts[k++]!);
      throw new DerFramingError(
        minimum === 0
          ? 'GeneralSubtree minimum encodes 0, the DEFAULT'
          : `GeneralSubtree minimum is ${minimum}; RFC 5280 requires 0 (absent)`,
      );
    }
    if (parts[k]?.tag === TAG_CTX_1_PRIMITIVE) {
      readUnsignedNumber(v, parts[k++]!);
      throw new DerFramingError('GeneralSubtree maximum is present; RFC 5280 requires it absent');
    }
    if (k !== parts.length) throw new DerFramingError('GeneralSubtree has unexpected elements');
    return base;
  });
}

function readGeneralNames(v: Uint8Array, tlv: Tlv): GeneralName[] {
  if (tlv.tag !== TAG_SEQUENCE && tlv.tag !== 0xa1) {
    throw new DerFramingError(`GeneralNames: unexpected tag 0x${tlv.tag.toString(16)}`);
  }
  const out: GeneralName[] = [];
  const names = new DerCursor(v).enter(tlv);
  while (names.next() !== NO_ELEMENT) out.push(readGeneralName(v, names));
  return out;
}

/** GeneralName (RFC 5280 §4.2.1.6), every alternative checked and decoded. */
function readGeneralName(v: Uint8Array, g: Tlv | undefined): GeneralName {
  if (g === undefined) throw new DerFramingError('GeneralName is missing');
  switch (g.tag) {
    case 0x86:
      return { kind: 'uri', value: ia5(v, g) };
    case 0x82:
      return { kind: 'dns', value: ia5(v, g) };
    case 0x81:
      return { kind: 'email', value: ia5(v, g) };
    case 0x87: {
      const bytes = contentOf(v, g).slice();
      return { kind: 'ip', value: formatIpBytes(bytes), bytes };
    }
    case 0x88: // registeredID
      return { kind: 'other', value: `registeredID ${readOid(v, g)}` };
    case 0xa0: {
      // otherName ::= SEQUENCE { type-id OID, value [0] EXPLICIT ANY }
      const parts = readChildren(v, g);
      const typeId = readOid(v, expectTag(parts[0], TAG_OID, 'otherName type-id'));
      const value = readChildren(v, expectTag(parts[1], TAG_CONTEXT_0_CONSTRUCTED, 'otherName value'));
      if (parts.length !== 2 || value.length !== 1)
        throw new DerFramingError('otherName is not { type-id, [0] value }');
      checkAnyValue(v, value[0]!, 'otherName value');
      return { kind: 'other', value: `otherName ${typeId}` };
    }
    case 0xa4: {
      // directoryName [4] EXPLICIT Name
      const inner = readChildren(v, g);
      if (inner.length !== 1) throw new DerFramingError('directoryName holds more than one element');
      checkName(v, inner[0], 'directoryName');
      const bytes = v.slice(inner[0]!.start, inner[0]!.end);
      return { kind: 'dn', value: formatDn(bytes), bytes };
    }
    case 0xa3:
    case 0xa5:
      // Refused as the schema parser used before always did: nothing Lanyard meets uses them.
      throw new DerFramingError(
        `GeneralName ${g.tag === 0xa3 ? 'x400Address' : 'ediPartyName'} is not supported`,
      );
    default:
      throw new DerFramingError(`GeneralName: unexpected tag 0x${g.tag.toString(16)}`);
  }
}

/**
 * The text of every attribute of type `oid` in a Name (the DER of a subject or issuer, already checked by
 * checkName), in order. String types only: UTF8String; PrintableString, IA5String and NumericString (ASCII);
 * TeletexString as Latin-1, as OpenSSL shows it; BMPString (UCS-2) and UniversalString (UCS-4). A value of any
 * other type (BIT STRING, SEQUENCE) is skipped: it has no text to compare.
 */
export function nameAttributeStrings(name: Uint8Array, oid: string): string[] {
  const out: string[] = [];
  for (const rdn of readChildren(name, expectTag(readSingleTlv(name), TAG_SEQUENCE, 'name'))) {
    for (const atv of readChildren(name, expectTag(rdn, TAG_SET, 'name RDN'))) {
      const [type, value] = readChildren(name, expectTag(atv, TAG_SEQUENCE, 'name attribute'));
      if (type === undefined || value === undefined || readOid(name, type) !== oid) continue;
      const text = stringValue(value.tag, contentOf(name, value));
      if (text !== undefined) out.push(text);
    }
  }
  return out;
}

function ia5(v: Uint8Array, tlv: Tlv): string {
  const bytes = contentOf(v, tlv);
  for (const b of bytes)
    if (b >= 0x80) throw new DerFramingError(`IA5String at offset ${tlv.start} is not ASCII`);
  return latin1(bytes);
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}
