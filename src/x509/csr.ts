import { createPublicKey, KeyObject, verify } from 'node:crypto';
import {
  CsrSignatureInvalidError,
  MalformedCsrError,
  MalformedInputError,
  UnsupportedAlgorithmError,
  UnsupportedKeyError,
} from '../errors';
import { signatureAlgorithmDer } from './build';
import { DER_NULL, OID_RSA_ENCRYPTION } from './certificate-der';
import { CsrFields, parseCsrDer } from './csr-der';
import { DerFramingError } from './der';
import { derBitString, derContextConstructed, derSequence, derSmallInteger } from './der-writer';
import { isUncompressedPointOnCurve } from './ec-point';
import { describeKey, rememberSpkiExport, signWithKey, spkiDer, type KeyDescription } from './keys';
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
  const { publicKey, kind } = requestedKey(parts);

  const algorithm = parts.signatureAlgorithm;
  const pop = POP_ALGORITHMS[algorithm.oid];
  if (!pop) {
    throw new UnsupportedAlgorithmError(`CSR signature algorithm ${algorithm.oid} is not accepted`);
  }
  if (pop.kind !== kind) {
    throw new CsrSignatureInvalidError(
      `CSR signature algorithm ${algorithm.oid} does not match its ${kind} key`,
    );
  }
  // RFC 5758 and RFC 8410 forbid parameters for ECDSA and Ed25519; RSA PKCS#1 v1.5 has NULL (or, loosely, none).
  const params = algorithm.params;
  if (
    pop.kind === 'rsa' ? params !== undefined && !Buffer.from(params).equals(DER_NULL) : params !== undefined
  ) {
    throw malformed(`unexpected parameters for signature algorithm ${algorithm.oid}`);
  }

  let ok: boolean;
  try {
    ok = verify(pop.hash, parts.info, publicKey, parts.signature);
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new CsrSignatureInvalidError('CSR signature does not verify with its own key');
  }
  return { publicKey, spki: spkiDer(publicKey) };
}

/** A CSR for the workload's key: empty subject (the server ignores it), no attributes, our one signature scheme. */
export function createCsr(privateKey: KeyObject): { der: Uint8Array; pem: string } {
  if (privateKey.type !== 'private') {
    throw new UnsupportedKeyError('createCsr needs a private key');
  }
  const algorithm = signatureAlgorithmDer(privateKey);
  const info = derSequence(
    derSmallInteger(0),
    EMPTY_NAME,
    spkiDer(privateKey),
    // attributes [0] IMPLICIT SET OF Attribute, empty.
    derContextConstructed(0, new Uint8Array(0)),
  );
  const der = derSequence(info, algorithm, derBitString(signWithKey(info, privateKey)));
  return { der, pem: encodePem('CERTIFICATE REQUEST', der) };
}

const EMPTY_NAME = derSequence();

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

/** The request read by the strict DER walker (csr-der.ts); any framing or grammar violation is ERR_MALFORMED_CSR. */
function frame(der: Uint8Array): CsrFields {
  try {
    return parseCsrDer(der);
  } catch (e) {
    if (!(e instanceof DerFramingError)) throw e;
    throw malformed(`not a PKCS#10 request: ${e.message}`, e);
  }
}

/** The key node:crypto reads from the SPKI; an algorithm it cannot read at all is unsupported, not malformed. */
/**
 * The SubjectPublicKeyInfo of a named-curve EC key up to its point, exactly as node:crypto encodes it: a CSR
 * whose SPKI is this prefix and an uncompressed point on the curve is imported from the point's coordinates
 * (OpenSSL's SPKI decoder costs more than the CSR's signature check; a JWK import about half of it). Any other
 * SPKI, an off-curve point included, takes the general path and gets its answer (and error) from OpenSSL.
 */
const EC_SPKI_PREFIX: readonly { curve: 'P-256' | 'P-384'; prefix: Buffer }[] = [
  // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (65 bytes, no unused bits) }
  { curve: 'P-256', prefix: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex') },
  // SEQUENCE { SEQUENCE { id-ecPublicKey, secp384r1 }, BIT STRING (97 bytes, no unused bits) }
  { curve: 'P-384', prefix: Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex') },
];

function ecKeyFromPoint(spki: Uint8Array): KeyObject | undefined {
  for (const { curve, prefix } of EC_SPKI_PREFIX) {
    const fieldBytes = curve === 'P-256' ? 32 : 48;
    if (spki.length !== prefix.length + 1 + 2 * fieldBytes) continue;
    if (!prefix.equals(spki.subarray(0, prefix.length))) continue;
    const point = spki.subarray(prefix.length);
    if (!isUncompressedPointOnCurve(curve, point)) return undefined;
    const coordinate = (from: number): string =>
      Buffer.from(point.buffer, point.byteOffset + from, fieldBytes).toString('base64url');
    return createPublicKey({
      key: { kty: 'EC', crv: curve, x: coordinate(1), y: coordinate(1 + fieldBytes) },
      format: 'jwk',
    });
  }
  return undefined;
}

function requestedKey(parts: CsrFields): { publicKey: KeyObject; kind: KeyDescription['kind'] } {
  const ec = ecKeyFromPoint(parts.spki);
  if (ec !== undefined) {
    rememberSpkiExport(ec, parts.spki);
    return { publicKey: ec, kind: 'ec' };
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(parts.spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new UnsupportedKeyError(`public key (algorithm ${parts.spkiAlgorithm.oid}) is not accepted`, {
      cause: e,
    });
  }
  // Exporting costs as much as importing (OpenSSL 3's encoder); the strict DER we just read is that export,
  // except for an RSA key without the NULL parameters, which node:crypto writes back with them.
  const rsaWithoutNull =
    parts.spkiAlgorithm.oid === OID_RSA_ENCRYPTION && parts.spkiAlgorithm.params === undefined;
  if (!rsaWithoutNull) rememberSpkiExport(key, parts.spki);
  return { publicKey: key, kind: describeKey(key).kind };
}

function malformed(message: string, cause?: unknown): MalformedInputError {
  return new MalformedCsrError(message, cause === undefined ? undefined : { cause });
}
