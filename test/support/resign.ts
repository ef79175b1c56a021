/**
 * Certificates whose tbsCertificate was edited and then signed again with the issuer's key: a CA's genuine
 * signature over other bytes. A fast path that compares fewer bytes than it should accepts such a certificate
 * under what it kept for another one; a mutation without a new signature is refused by the signature check first.
 */
import { sign, type KeyObject } from 'node:crypto';
import { readCertificateOutline } from '../../src/x509/certificate-der';

/** A DER definite length (X.690 §8.1.3), short form below 128. */
function derLength(n: number): number[] {
  if (n < 0x80) return [n];
  const octets: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) octets.unshift(v % 256);
  return [0x80 | octets.length, ...octets];
}

/**
 * `der` with its tbsCertificate replaced by `edit`'s result (given a copy of the tbsCertificate's bytes, header
 * included), signed with `issuerKey` under the certificate's own signatureAlgorithm. `hash` is node:crypto's
 * digest name for that algorithm (null for Ed25519).
 */
export function resigned(
  der: Uint8Array,
  edit: (tbs: Uint8Array) => Uint8Array,
  issuerKey: KeyObject,
  hash: string | null = 'sha256',
): Uint8Array {
  const o = readCertificateOutline(der);
  const tbs = edit(Uint8Array.from(der.subarray(o.tbsStart, o.tbsEnd)));
  const signature = sign(hash, tbs, issuerKey);
  const body = [
    ...tbs,
    ...der.subarray(o.signatureAlgorithmStart, o.signatureAlgorithmEnd),
    0x03,
    ...derLength(signature.length + 1),
    0x00,
    ...signature,
  ];
  return Uint8Array.from([0x30, ...derLength(body.length), ...body]);
}

/** The offsets (in the tbsCertificate, as `resigned`'s edit gets it) of the certificate's fields. */
export function tbsOffsets(der: Uint8Array): {
  length: number;
  serial: [number, number];
  validity: [number, number];
  spki: [number, number];
  keyId: [number, number] | undefined;
} {
  const o = readCertificateOutline(der);
  const at = (x: number): number => x - o.tbsStart;
  return {
    length: o.tbsEnd - o.tbsStart,
    serial: [at(o.serialStart), at(o.serialEnd)],
    validity: [at(o.issuerEnd), at(o.subjectStart)],
    spki: [at(o.spkiStart), at(o.spkiEnd)],
    keyId: o.keyIdStart < 0 ? undefined : [at(o.keyIdStart), at(o.keyIdEnd)],
  };
}
