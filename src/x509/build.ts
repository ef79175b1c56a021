import { KeyObject, randomFillSync } from 'node:crypto';
import { signatureSchemeFor, signWithKey } from './keys';
import {
  bitStringNode,
  contextConstructedNode,
  DER_NULL_ELEMENT,
  derContextConstructed,
  type DerNode,
  derOid,
  derSequence,
  derSetOf,
  derSmallInteger,
  derTime,
  derUtf8String,
  encodedNode,
  sequenceNode,
  unsignedIntegerNode,
  writeDer,
  writeDerInto,
} from './der-writer';

/**
 * Assembles and signs one certificate. The TBSCertificate is sized as a tree and written once (der-writer.ts)
 * from fields that are mostly DER already (names, key, extensions), signed with node:crypto, and copied once
 * into the Certificate framed around it, so what is signed is, byte for byte, what is embedded. Profiles decide
 * the fields; this module only encodes them.
 */

export const OID_ORGANIZATION = '2.5.4.10';
export const OID_COMMON_NAME = '2.5.4.3';

export interface CertificateFields {
  serial: Uint8Array;
  /** The issuer Name's DER: the issuing certificate's subject, byte for byte (a root: its own subject). */
  issuer: Uint8Array;
  /** The subject Name's DER. */
  subject: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** SubjectPublicKeyInfo DER, as node:crypto exports it. */
  spki: Uint8Array;
  /** Each one whole Extension element (or a run of them), as its DER or as a node (der-extensions.ts). */
  extensions: readonly (Uint8Array | DerNode)[];
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
    if (serialPoolOffset + SERIAL_BYTES > serialPool.length) {
      randomFillSync(serialPool);
      serialPoolOffset = 0;
    }
    // Each drawn byte is used once: the copy is taken and the offset moves before anything can fail.
    const bytes = serialPool.slice(serialPoolOffset, serialPoolOffset + SERIAL_BYTES);
    serialPoolOffset += SERIAL_BYTES;
    bytes[0] = bytes[0]! & 0x7f;
    if (bytes[0] !== 0) return bytes;
  }
}

const SERIAL_BYTES = 16;
/**
 * Random bytes for serials, drawn from the CSPRNG 256 serials at a time: one call into OpenSSL's generator per
 * 4 KiB instead of one per certificate (as node:crypto's randomUUID does). A serial is public; it only has to
 * be unpredictable before issuance and never reused, which bytes from the same generator, each handed out
 * once, are.
 */
const serialPool = new Uint8Array(256 * SERIAL_BYTES);
let serialPoolOffset = serialPool.length;

/** O and CN as UTF8String attributes, each in its own RDN, in that order; the Name's DER. */
export function buildName(attrs: { organization?: string; commonName?: string }): Uint8Array {
  const rdns: Uint8Array[] = [];
  const add = (oid: string, value: string | undefined): void => {
    if (value === undefined) return;
    rdns.push(derSetOf([derSequence(derOid(oid), derUtf8String(value))]));
  };
  add(OID_ORGANIZATION, attrs.organization);
  add(OID_COMMON_NAME, attrs.commonName);
  return derSequence(...rdns);
}

/** The AlgorithmIdentifier DER of the one scheme `signingKey` signs with (also inside the signed part). */
export function signatureAlgorithmDer(signingKey: KeyObject): Uint8Array {
  return algorithmDerOf(signingKey).slice();
}

/** Per signing key, shared and never handed out (signatureAlgorithmDer copies): encoded once per CA key. */
const algorithmDers = new WeakMap<KeyObject, Uint8Array>();

function algorithmDerOf(signingKey: KeyObject): Uint8Array {
  let der = algorithmDers.get(signingKey);
  if (der === undefined) {
    const scheme = signatureSchemeFor(signingKey);
    // RSA carries an explicit NULL (RFC 4055); ECDSA and Ed25519 leave the parameters out (RFC 5758, RFC 8410).
    der = scheme.nullParams
      ? derSequence(derOid(scheme.oid), DER_NULL_ELEMENT)
      : derSequence(derOid(scheme.oid));
    algorithmDers.set(signingKey, der);
  }
  return der;
}

/** Seconds precision, as X.509 times carry no fraction. */
export function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

const DER_VERSION_3 = encodedNode(derContextConstructed(0, derSmallInteger(2)));

/** Builds, signs and DER-encodes the certificate. */
export function signCertificate(fields: CertificateFields): Uint8Array {
  // Only copied into the certificate below, never changed: the shared encoding is safe here.
  const algorithm = algorithmDerOf(fields.signingKey);
  const parts = [
    DER_VERSION_3,
    unsignedIntegerNode(fields.serial),
    encodedNode(algorithm),
    encodedNode(fields.issuer),
    // derTime picks UTCTime through 2049 and GeneralizedTime after, as RFC 5280 §4.1.2.5 requires.
    sequenceNode(encodedNode(derTime(fields.notBefore)), encodedNode(derTime(fields.notAfter))),
    encodedNode(fields.subject),
    encodedNode(fields.spki),
  ];
  if (fields.extensions.length > 0) {
    const extensions = fields.extensions.map((e) => (e instanceof Uint8Array ? encodedNode(e) : e));
    parts.push(contextConstructedNode(3, [sequenceNode(...extensions)]));
  }
  const tbs = sequenceNode(...parts);
  // The TBSCertificate lives only until it is signed and copied into the certificate: it is written into a
  // buffer kept for the next one (signing is synchronous, so no other certificate is written meanwhile).
  const scratch = tbs.length <= TBS_SCRATCH_BYTES ? tbsScratch : new Uint8Array(tbs.length);
  return frameSigned(scratch.subarray(0, writeDerInto(tbs, scratch, 0)), algorithm, fields.signingKey);
}

/** Above the agent context's 32 KiB limit and a few names; a larger TBSCertificate gets a buffer of its own. */
const TBS_SCRATCH_BYTES = 48 * 1024;
const tbsScratch = new Uint8Array(TBS_SCRATCH_BYTES);

/**
 * SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }: the shape of a Certificate and of a
 * CertificateList alike. Framed by hand so the signed bytes are exactly the embedded ones.
 */
export function signAndFrameDer(tbsDer: Uint8Array, algorithmDer: Uint8Array, key: KeyObject): Uint8Array {
  return frameSigned(tbsDer, algorithmDer, key);
}

function frameSigned(tbsDer: Uint8Array, algorithmDer: Uint8Array, key: KeyObject): Uint8Array {
  const signature = signWithKey(tbsDer, key);
  return writeDer(sequenceNode(encodedNode(tbsDer), encodedNode(algorithmDer), bitStringNode(signature)));
}

export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy.buffer;
}
