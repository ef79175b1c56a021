import { createPublicKey, KeyObject, verify } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Attributes, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AlgorithmIdentifier, Name, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { ErrorCode, MalformedInputError } from '../errors';
import { spkiOf } from './build';
import {
  concatBytes,
  DerFramingError,
  encodeTlv,
  readChildren,
  readSingleTlv,
  TAG_BIT_STRING,
  TAG_CONTEXT_0_CONSTRUCTED,
  TAG_INTEGER,
  TAG_SEQUENCE,
  tlvBytes,
} from './der';
import { describeKey, signatureSchemeFor, signWithKey, spkiDer } from './keys';
import { decodePem, encodePem } from './pem';

/**
 * PKCS#10 (RFC 2986) certification requests. The server takes exactly one thing from a CSR: a public key
 * whose holder proved possession by signing the request. Subject, SANs and requested extensions are ignored;
 * the registration entry decides the identity.
 */

export const MAX_CSR_BYTES = 16 * 1024;
/** Room for base64 (4/3) plus line breaks and text around the block. */
const MAX_CSR_PEM_CHARS = 32 * 1024;
const PEM_LABELS = new Set(['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);

export interface ParsedCsr {
  /** The requester's public key, one of the accepted types. */
  publicKey: KeyObject;
  /** Its SubjectPublicKeyInfo DER, as node:crypto exports it. */
  spki: Uint8Array;
}

/**
 * Signature algorithms accepted as proof of possession, by key type. Wider than the one scheme per key that
 * Lanyard signs with: OpenSSL signs a P-384 request with SHA-256 unless told otherwise, and hash choice does
 * not weaken the proof. The key type must match, so an RSA OID over an EC key is refused.
 */
const POP_ALGORITHMS: Record<string, { kind: 'ec' | 'rsa' | 'ed25519'; hash: string | null }> = {
  '1.2.840.10045.4.3.2': { kind: 'ec', hash: 'sha256' },
  '1.2.840.10045.4.3.3': { kind: 'ec', hash: 'sha384' },
  '1.2.840.10045.4.3.4': { kind: 'ec', hash: 'sha512' },
  '1.2.840.113549.1.1.11': { kind: 'rsa', hash: 'sha256' },
  '1.2.840.113549.1.1.12': { kind: 'rsa', hash: 'sha384' },
  '1.2.840.113549.1.1.13': { kind: 'rsa', hash: 'sha512' },
  '1.3.101.112': { kind: 'ed25519', hash: null },
};

/** Parse a CSR (DER bytes or PEM text) and check its proof of possession. Throws MalformedInputError only. */
export function parseCsr(input: Uint8Array | string): ParsedCsr {
  const der = toDer(input);
  if (der.length > MAX_CSR_BYTES) {
    throw malformed(`CSR is ${der.length} bytes, limit ${MAX_CSR_BYTES}`);
  }
  const parts = frame(der);
  const publicKey = requestedKey(parts.spki);
  const { kind } = describeKey(publicKey);

  let algorithm: AlgorithmIdentifier;
  try {
    algorithm = AsnConvert.parse(parts.signatureAlgorithm, AlgorithmIdentifier);
  } catch (e) {
    throw malformed('signatureAlgorithm is not an AlgorithmIdentifier', e);
  }
  const pop = POP_ALGORITHMS[algorithm.algorithm];
  if (!pop) {
    throw new MalformedInputError(
      ErrorCode.UNSUPPORTED_ALGORITHM,
      `CSR signature algorithm ${algorithm.algorithm} is not accepted`,
    );
  }
  if (pop.kind !== kind) {
    throw new MalformedInputError(
      ErrorCode.CSR_SIGNATURE_INVALID,
      `CSR signature algorithm ${algorithm.algorithm} does not match its ${kind} key`,
    );
  }
  // RFC 5758 and RFC 8410 forbid parameters for ECDSA and Ed25519; RSA PKCS#1 v1.5 has NULL (or, loosely, none).
  const params = algorithm.parameters;
  if (pop.kind === 'rsa' ? params !== undefined && params !== null : params !== undefined) {
    throw malformed(`unexpected parameters for signature algorithm ${algorithm.algorithm}`);
  }

  let ok: boolean;
  try {
    ok = verify(pop.hash, parts.info, publicKey, parts.signature);
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new MalformedInputError(
      ErrorCode.CSR_SIGNATURE_INVALID,
      'CSR signature does not verify with its own key',
    );
  }
  return { publicKey, spki: spkiDer(publicKey) };
}

/** A CSR for the workload's key: empty subject (the server ignores it), no attributes, our one signature scheme. */
export function createCsr(privateKey: KeyObject): { der: Uint8Array; pem: string } {
  if (privateKey.type !== 'private') {
    throw new MalformedInputError(ErrorCode.UNSUPPORTED_KEY, 'createCsr needs a private key');
  }
  const scheme = signatureSchemeFor(privateKey);
  const info = new CertificationRequestInfo({
    version: 0,
    subject: new Name(),
    subjectPKInfo: spkiOf(privateKey),
    attributes: new Attributes(),
  });
  const infoDer = new Uint8Array(AsnConvert.serialize(info));
  const algorithm = new AlgorithmIdentifier({ algorithm: scheme.oid });
  if (scheme.nullParams) algorithm.parameters = null;
  const signature = signWithKey(infoDer, privateKey);
  const der = encodeTlv(
    TAG_SEQUENCE,
    concatBytes([
      infoDer,
      new Uint8Array(AsnConvert.serialize(algorithm)),
      encodeTlv(TAG_BIT_STRING, concatBytes([new Uint8Array([0]), signature])),
    ]),
  );
  return { der, pem: encodePem('CERTIFICATE REQUEST', der) };
}

function toDer(input: Uint8Array | string): Uint8Array {
  if (typeof input === 'string') {
    if (input.length > MAX_CSR_PEM_CHARS)
      throw malformed(`PEM text is longer than ${MAX_CSR_PEM_CHARS} characters`);
    let blocks;
    try {
      blocks = decodePem(input).filter((b) => PEM_LABELS.has(b.label));
    } catch (e) {
      throw malformed('invalid PEM', e);
    }
    if (blocks.length !== 1)
      throw malformed(`expected one CERTIFICATE REQUEST PEM block, found ${blocks.length}`);
    return blocks[0]!.der;
  }
  if (input instanceof Uint8Array) return input;
  throw malformed('CSR must be DER bytes or PEM text');
}

interface CsrParts {
  /** certificationRequestInfo exactly as received: the bytes the signature covers. */
  info: Uint8Array;
  spki: Uint8Array;
  signatureAlgorithm: Uint8Array;
  signature: Uint8Array;
}

/**
 * Splits the request along strict DER boundaries and checks the shape RFC 2986 gives it. The contents of the
 * info are also decoded with the schema classes so that a request we accept is one any tool would read alike.
 */
function frame(der: Uint8Array): CsrParts {
  try {
    const outer = readSingleTlv(der);
    if (outer.tag !== TAG_SEQUENCE) throw new DerFramingError('not a SEQUENCE');
    const top = readChildren(der, outer);
    const [info, alg, sig] = top;
    if (
      top.length !== 3 ||
      info?.tag !== TAG_SEQUENCE ||
      alg?.tag !== TAG_SEQUENCE ||
      sig?.tag !== TAG_BIT_STRING
    ) {
      throw new DerFramingError('expected SEQUENCE { info, signatureAlgorithm, BIT STRING }');
    }
    const fields = readChildren(der, info);
    const [version, subject, spki, attributes] = fields;
    if (
      version?.tag !== TAG_INTEGER ||
      subject?.tag !== TAG_SEQUENCE ||
      spki?.tag !== TAG_SEQUENCE ||
      (attributes !== undefined && attributes.tag !== TAG_CONTEXT_0_CONSTRUCTED) ||
      fields.length > 4
    ) {
      throw new DerFramingError('certificationRequestInfo is not { version, subject, spki, [0] attributes }');
    }
    // The first content byte of a BIT STRING counts unused bits; a signature is whole bytes.
    if (sig.end - sig.contentStart < 2 || der[sig.contentStart] !== 0) {
      throw new DerFramingError('signature BIT STRING is empty or has unused bits');
    }
    const infoBytes = tlvBytes(der, info);
    const decoded = AsnConvert.parse(infoBytes, CertificationRequestInfo);
    if (decoded.version !== 0) throw new DerFramingError(`version ${decoded.version} (only v1 = 0 exists)`);
    return {
      info: infoBytes,
      spki: tlvBytes(der, spki),
      signatureAlgorithm: tlvBytes(der, alg),
      signature: der.subarray(sig.contentStart + 1, sig.end),
    };
  } catch (e) {
    throw malformed(`not a PKCS#10 request: ${e instanceof Error ? e.message : String(e)}`, e);
  }
}

/** The key node:crypto reads from the SPKI; an algorithm it cannot read at all is unsupported, not malformed. */
function requestedKey(spki: Uint8Array): KeyObject {
  try {
    return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    let oid: string;
    try {
      oid = AsnConvert.parse(spki, SubjectPublicKeyInfo).algorithm.algorithm;
    } catch {
      throw malformed('subjectPublicKeyInfo is malformed', e);
    }
    throw new MalformedInputError(
      ErrorCode.UNSUPPORTED_KEY,
      `public key (algorithm ${oid}) is not accepted`,
      {
        cause: e,
      },
    );
  }
}

function malformed(message: string, cause?: unknown): MalformedInputError {
  return new MalformedInputError(
    ErrorCode.MALFORMED_CSR,
    message,
    cause === undefined ? undefined : { cause },
  );
}
