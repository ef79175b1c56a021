import { createHash } from 'node:crypto';
import {
  OID_AUTHORITY_KEY_ID,
  OID_BASIC_CONSTRAINTS,
  OID_EXT_KEY_USAGE,
  OID_KEY_USAGE,
  OID_NAME_CONSTRAINTS,
  OID_SUBJECT_ALT_NAME,
  OID_SUBJECT_KEY_ID,
} from './certificate-der';
import {
  concatBytes,
  DerFramingError,
  expectTag,
  readBitString,
  readChildren,
  readSingleTlv,
  TAG_BIT_STRING,
  TAG_SEQUENCE,
} from './der';
import {
  derBoolean,
  derContextConstructed,
  derImplicitPrimitive,
  derNamedBits,
  derOctetString,
  derOid,
  derSequence,
  derSmallInteger,
  ia5Bytes,
} from './der-writer';

/**
 * The certificate extensions the profiles write, each as the DER of one Extension element. Criticality is
 * decided by the profile that calls them, so each builder takes it explicitly rather than hiding a default.
 * (The CRL's two extensions still come from extensions.ts as schema objects; CRLs are not on the hot path.)
 */

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE (left out when false), extnValue }. */
export function extensionDer(oid: string, critical: boolean, valueDer: Uint8Array): Uint8Array {
  return critical
    ? derSequence(derOid(oid), derBoolean(true), derOctetString(valueDer))
    : derSequence(derOid(oid), derOctetString(valueDer));
}

export function basicConstraintsExtDer(ca: boolean, pathLen?: number): Uint8Array {
  // cA FALSE is the DEFAULT and so left out (X.690 §11.5).
  const parts = ca ? [derBoolean(true)] : [];
  if (pathLen !== undefined) parts.push(derSmallInteger(pathLen));
  return extensionDer(OID_BASIC_CONSTRAINTS, true, derSequence(...parts));
}

export type KeyUsageName = 'digitalSignature' | 'keyEncipherment' | 'keyCertSign' | 'cRLSign';

/** Bit numbers of KeyUsage (RFC 5280 §4.2.1.3). */
const KEY_USAGE_BITS: Record<KeyUsageName, number> = {
  digitalSignature: 0,
  keyEncipherment: 2,
  keyCertSign: 5,
  cRLSign: 6,
};

export function keyUsageExtDer(usages: KeyUsageName[]): Uint8Array {
  return extensionDer(OID_KEY_USAGE, true, derNamedBits(usages.map((u) => KEY_USAGE_BITS[u])));
}

export function extKeyUsageExtDer(oids: string[]): Uint8Array {
  return extensionDer(OID_EXT_KEY_USAGE, false, derSequence(...oids.map(derOid)));
}

/**
 * Subject key identifier per RFC 7093 §2 method 1: the leftmost 160 bits of the SHA-256 of the
 * subjectPublicKey BIT STRING value. Same length as RFC 5280's SHA-1 method, without needing SHA-1.
 * Takes the SubjectPublicKeyInfo DER.
 */
export function subjectKeyIdOf(spki: Uint8Array): Uint8Array {
  let key: Uint8Array;
  try {
    const parts = readChildren(spki, expectTag(readSingleTlv(spki), TAG_SEQUENCE, 'SubjectPublicKeyInfo'));
    if (parts.length !== 2) throw new DerFramingError('SubjectPublicKeyInfo is not { algorithm, key }');
    key = readBitString(spki, expectTag(parts[1], TAG_BIT_STRING, 'subjectPublicKey')).bytes;
  } catch (e) {
    // Only node:crypto's own export reaches here; a failure is a bug, not bad input.
    throw new Error(`cannot read a SubjectPublicKeyInfo: ${e instanceof Error ? e.message : String(e)}`);
  }
  return new Uint8Array(createHash('sha256').update(key).digest().subarray(0, 20));
}

export function subjectKeyIdExtDer(keyId: Uint8Array): Uint8Array {
  return extensionDer(OID_SUBJECT_KEY_ID, false, derOctetString(keyId));
}

/** AuthorityKeyIdentifier with only keyIdentifier [0]. */
export function authorityKeyIdExtDer(issuerKeyId: Uint8Array): Uint8Array {
  return extensionDer(OID_AUTHORITY_KEY_ID, false, derSequence(derImplicitPrimitive(0, issuerKeyId)));
}

export interface SanValues {
  uris?: string[];
  dnsNames?: string[];
}

/** GeneralName: dNSName [2] and uniformResourceIdentifier [6], both IMPLICIT IA5String. */
function generalName(kind: 'uri' | 'dns', value: string): Uint8Array {
  return derImplicitPrimitive(kind === 'uri' ? 6 : 2, ia5Bytes(value));
}

/** Non-critical: every certificate we issue has a non-empty subject (RFC 5280 §4.2.1.6). */
export function subjectAltNameExtDer(values: SanValues): Uint8Array {
  const names = [
    ...(values.uris ?? []).map((u) => generalName('uri', u)),
    ...(values.dnsNames ?? []).map((d) => generalName('dns', d)),
  ];
  return extensionDer(OID_SUBJECT_ALT_NAME, false, derSequence(...names));
}

/** A name-constraint base: a URI host (`td` matches `spiffe://td/...`) or a DNS domain. */
export interface NameSubtreeSpec {
  kind: 'uri' | 'dns';
  value: string;
}

export interface NameConstraintsSpec {
  permitted?: NameSubtreeSpec[];
  excluded?: NameSubtreeSpec[];
}

/** Critical, as RFC 5280 §4.2.1.10 requires. GeneralSubtree's minimum is the DEFAULT 0, maximum absent. */
export function nameConstraintsExtDer(spec: NameConstraintsSpec): Uint8Array {
  const parts: Uint8Array[] = [];
  // permittedSubtrees [0] and excludedSubtrees [1] are IMPLICIT SEQUENCE OF GeneralSubtree: constructed.
  [spec.permitted, spec.excluded].forEach((specs, n) => {
    if (specs === undefined || specs.length === 0) return;
    const subtrees = specs.map((s) => derSequence(generalName(s.kind, s.value)));
    parts.push(derContextConstructed(n, concatBytes(subtrees)));
  });
  return extensionDer(OID_NAME_CONSTRAINTS, true, derSequence(...parts));
}
