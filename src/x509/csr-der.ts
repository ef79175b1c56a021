import {
  AlgorithmIdentifierParts,
  checkAnyValue,
  checkKnownKey,
  checkName,
  ParsedExtension,
  readAlgorithmIdentifier,
  readExtensionList,
  wholeOctets,
} from './certificate-der';
import {
  DerFramingError,
  expectTag,
  readChildren,
  readIntegerBytes,
  readOid,
  readSingleTlv,
  TAG_BIT_STRING,
  TAG_CONTEXT_0_CONSTRUCTED,
  TAG_INTEGER,
  TAG_OID,
  TAG_SEQUENCE,
  TAG_SET,
  Tlv,
} from './der';

/**
 * One pass over the DER of a PKCS#10 request (RFC 2986 §4) with the strict reader of der.ts: framing and
 * minimal lengths everywhere, field order and tags, version 0, a checked subject Name, a SubjectPublicKeyInfo
 * of a shape node:crypto can import, attributes with their values checked as DER, and the extensionRequest
 * attribute (PKCS#9) decoded as an Extensions list. Every deviation throws DerFramingError; csr.ts turns it into
 * a typed error and checks the proof of possession over `info`, the exact bytes received.
 */

/** PKCS#9 extensionRequest: the extensions a requester asks for, as a SEQUENCE OF Extension. */
export const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

export interface CsrAttribute {
  oid: string;
  /** Each value's whole DER element. */
  values: Uint8Array[];
}

/** Everything read from the request. Byte fields are copies, except `info` and `signature` (views). */
export interface CsrFields {
  /** certificationRequestInfo exactly as received: the bytes the signature covers. */
  info: Uint8Array;
  /** The subject Name's DER (possibly the empty SEQUENCE). */
  subject: Uint8Array;
  spki: Uint8Array;
  spkiAlgorithm: AlgorithmIdentifierParts;
  attributes: CsrAttribute[];
  /** The extensionRequest attribute's extensions; empty without one. */
  requestedExtensions: ParsedExtension[];
  signatureAlgorithm: AlgorithmIdentifierParts;
  /** The signature BIT STRING's bytes (whole octets). */
  signature: Uint8Array;
}

/** Parses the whole request; `der` must be exactly one element. */
export function parseCsrDer(der: Uint8Array): CsrFields {
  const outer = expectTag(readSingleTlv(der), TAG_SEQUENCE, 'CertificationRequest');
  const top = readChildren(der, outer);
  if (top.length !== 3) {
    throw new DerFramingError('expected SEQUENCE { info, signatureAlgorithm, BIT STRING }');
  }
  const infoTlv = expectTag(top[0], TAG_SEQUENCE, 'certificationRequestInfo');
  const signatureAlgorithm = readAlgorithmIdentifier(der, top[1], 'signatureAlgorithm');
  // The first content byte of a BIT STRING counts unused bits; a signature is whole bytes.
  const signature = wholeOctets(der, expectTag(top[2], TAG_BIT_STRING, 'signature'), 'signature');
  if (signature.length === 0) throw new DerFramingError('signature is empty');

  const fields = readChildren(der, infoTlv);
  if (fields.length < 3 || fields.length > 4) {
    throw new DerFramingError('certificationRequestInfo is not { version, subject, spki, [0] attributes }');
  }
  const version = readIntegerBytes(der, expectTag(fields[0], TAG_INTEGER, 'version'));
  if (version.length !== 1 || version[0] !== 0) {
    throw new DerFramingError('version is not 0 (v1 is the only PKCS#10 version)');
  }
  const subjectTlv = fields[1];
  checkName(der, subjectTlv, 'subject');
  const spkiTlv = expectTag(fields[2], TAG_SEQUENCE, 'subjectPKInfo');
  const spkiParts = readChildren(der, spkiTlv);
  if (spkiParts.length !== 2) {
    throw new DerFramingError('subjectPKInfo is not { algorithm, subjectPublicKey }');
  }
  const spkiAlgorithm = readAlgorithmIdentifier(der, spkiParts[0], 'subjectPKInfo.algorithm');
  checkKnownKey(
    spkiAlgorithm,
    wholeOctets(der, expectTag(spkiParts[1], TAG_BIT_STRING, 'subjectPublicKey'), 'subjectPublicKey'),
  );
  // RFC 2986 makes attributes mandatory (possibly empty); some encoders leave the empty set out, and it
  // carries nothing the server uses, so its absence is tolerated.
  const { attributes, requestedExtensions } =
    fields[3] === undefined
      ? { attributes: [], requestedExtensions: [] }
      : readAttributes(der, expectTag(fields[3], TAG_CONTEXT_0_CONSTRUCTED, 'attributes'));
  return {
    info: der.subarray(infoTlv.start, infoTlv.end),
    subject: der.slice(subjectTlv!.start, subjectTlv!.end),
    spki: der.slice(spkiTlv.start, spkiTlv.end),
    spkiAlgorithm,
    attributes,
    requestedExtensions,
    signatureAlgorithm,
    signature,
  };
}

/** attributes [0] IMPLICIT SET OF Attribute; Attribute ::= SEQUENCE { type, values SET SIZE (1..MAX) OF ANY }. */
function readAttributes(
  der: Uint8Array,
  set: Tlv,
): { attributes: CsrAttribute[]; requestedExtensions: ParsedExtension[] } {
  const attributes: CsrAttribute[] = [];
  let requestedExtensions: ParsedExtension[] = [];
  const seen = new Set<string>();
  for (const attrTlv of readChildren(der, set)) {
    const parts = readChildren(der, expectTag(attrTlv, TAG_SEQUENCE, 'Attribute'));
    if (parts.length !== 2) throw new DerFramingError('Attribute is not { type, values }');
    const oid = readOid(der, expectTag(parts[0], TAG_OID, 'Attribute type'));
    // X.501: the attributes of one set have distinct types.
    if (seen.has(oid)) throw new DerFramingError(`duplicate attribute ${oid}`);
    seen.add(oid);
    const values = readChildren(der, expectTag(parts[1], TAG_SET, `attribute ${oid} values`));
    if (values.length === 0) throw new DerFramingError(`attribute ${oid} has no value`);
    for (const v of values) checkAnyValue(der, v, `attribute ${oid} value`);
    if (oid === OID_EXTENSION_REQUEST) {
      if (values.length !== 1) throw new DerFramingError('extensionRequest has more than one value');
      try {
        requestedExtensions = readExtensionList(der, expectTag(values[0], TAG_SEQUENCE, 'extensionRequest'));
      } catch (e) {
        if (!(e instanceof DerFramingError)) throw e;
        throw new DerFramingError(`malformed extensionRequest: ${e.message}`);
      }
    }
    attributes.push({ oid, values: values.map((v) => der.slice(v.start, v.end)) });
  }
  return { attributes, requestedExtensions };
}
