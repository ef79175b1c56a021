import * as nodeCrypto from 'node:crypto';
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
  DerCursor,
  DerFramingError,
  expectTag,
  NO_ELEMENT,
  readBitString,
  readSingleTlv,
  TAG_BIT_STRING,
  TAG_OCTET_STRING,
  TAG_SEQUENCE,
} from './der';
import {
  bytesNode,
  constructedNode,
  derBoolean,
  derContextConstructed,
  derImplicitPrimitive,
  derNamedBits,
  derOid,
  derSequence,
  derSmallInteger,
  type DerNode,
  encodedNode,
  ia5Bytes,
  ia5Node,
  sequenceNode,
  writeDer,
} from './der-writer';

/**
 * The certificate extensions the profiles write, each as the DER of one Extension element. Criticality is
 * decided by the profile that calls them, so each builder takes it explicitly rather than hiding a default.
 * The ones that differ from leaf to leaf (subjectKeyIdentifier, subjectAltName, the agent context) also come
 * as DerNodes, written in place into the leaf (der-writer.ts); the rest are encoded once per CA or template.
 */

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE (left out when false), extnValue }. */
export function extensionDer(oid: string, critical: boolean, valueDer: Uint8Array): Uint8Array {
  return writeDer(extensionNode(oid, critical, encodedNode(valueDer)));
}

/** extensionDer as a node, over a value given as a node. */
export function extensionNode(oid: string, critical: boolean, value: DerNode): DerNode {
  const extnValue = constructedNode(TAG_OCTET_STRING, [value]);
  const id = encodedNode(derOid(oid));
  return critical ? sequenceNode(id, DER_TRUE_NODE, extnValue) : sequenceNode(id, extnValue);
}

const DER_TRUE_NODE = encodedNode(derBoolean(true));

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
    const parts = new DerCursor(spki).enter(
      expectTag(readSingleTlv(spki), TAG_SEQUENCE, 'SubjectPublicKeyInfo'),
    );
    parts.next();
    const bits = expectTag(
      parts.next() === NO_ELEMENT ? undefined : parts,
      TAG_BIT_STRING,
      'subjectPublicKey',
    );
    key = readBitString(spki, bits).bytes;
    if (parts.next() !== NO_ELEMENT)
      throw new DerFramingError('SubjectPublicKeyInfo is not { algorithm, key }');
  } catch (e) {
    // Only node:crypto's own export reaches here; a failure is a bug, not bad input.
    throw new Error(`cannot read a SubjectPublicKeyInfo: ${e instanceof Error ? e.message : String(e)}`);
  }
  return new Uint8Array(sha256(key).subarray(0, 20));
}

/**
 * One-shot SHA-256 where Node has it (20.12 and later): a leaf hashes its key on every issuance, and a Hash object
 * (a stream underneath) costs more to make than 65 bytes cost to hash. Node 20.11 takes the Hash object.
 */
const sha256: (data: Uint8Array) => Uint8Array =
  typeof nodeCrypto.hash === 'function'
    ? (data) => nodeCrypto.hash('sha256', data, 'buffer')
    : (data) => nodeCrypto.createHash('sha256').update(data).digest();

export function subjectKeyIdExtDer(keyId: Uint8Array): Uint8Array {
  return writeDer(subjectKeyIdExtNode(keyId));
}

export function subjectKeyIdExtNode(keyId: Uint8Array): DerNode {
  return extensionNode(OID_SUBJECT_KEY_ID, false, bytesNode(TAG_OCTET_STRING, keyId));
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

/** `[6] IMPLICIT IA5String` and `[2] IMPLICIT IA5String`: primitive, context-specific. */
const TAG_URI_NAME = 0x86;
const TAG_DNS_NAME = 0x82;

/** Non-critical: every certificate we issue has a non-empty subject (RFC 5280 §4.2.1.6). */
export function subjectAltNameExtDer(values: SanValues): Uint8Array {
  return writeDer(subjectAltNameExtNode(values));
}

export function subjectAltNameExtNode(values: SanValues): DerNode {
  const names: DerNode[] = [];
  for (const u of values.uris ?? []) names.push(ia5Node(TAG_URI_NAME, u));
  for (const d of values.dnsNames ?? []) names.push(ia5Node(TAG_DNS_NAME, d));
  return extensionNode(OID_SUBJECT_ALT_NAME, false, constructedNode(TAG_SEQUENCE, names));
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
