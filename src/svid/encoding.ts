/**
 * Reading an SVID's certificates and key from the encodings go-spiffe's x509svid package reads: PEM (Parse,
 * Load) and raw DER (ParseRaw). Only decoding happens here; the X509-SVID rules are toX509Svid's.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import { IoError, MalformedCertificateError, MalformedPemError } from '../errors';
import { DerFramingError, readTlv } from '../x509/der';
import { decodeCompletePem } from '../x509/pem';

/** PEM labels of unencrypted private keys, with the DER structure each holds. */
const KEY_LABELS = { 'PRIVATE KEY': 'pkcs8', 'EC PRIVATE KEY': 'sec1', 'RSA PRIVATE KEY': 'pkcs1' } as const;

export type PemInput = string | Uint8Array;

/**
 * Every CERTIFICATE block of `certPem`, in order; blocks of other types are skipped, so the certificates and
 * the key may share one file, in either order.
 * @throws MalformedInputError (ERR_MALFORMED_PEM) for a broken or unterminated block.
 */
export function certificatesFromPem(certPem: PemInput): Uint8Array[] {
  return decodeCompletePem(text(certPem))
    .filter((b) => b.label === 'CERTIFICATE')
    .map((b) => b.der);
}

/**
 * The first private key block of `keyPem`: PKCS#8 ("PRIVATE KEY", what go-spiffe reads and writes), SEC1 or
 * PKCS#1. An encrypted key is refused: nothing here could ask for its passphrase.
 * @throws MalformedInputError: ERR_MALFORMED_PEM when there is no key block or it does not decode.
 */
export function privateKeyFromPem(keyPem: PemInput): KeyObject {
  const blocks = decodeCompletePem(text(keyPem));
  if (blocks.some((b) => b.label === 'ENCRYPTED PRIVATE KEY')) {
    throw new MalformedPemError('the private key is encrypted; give it unencrypted');
  }
  const block = blocks.find((b) => b.label in KEY_LABELS);
  if (block === undefined) {
    throw new MalformedPemError('no private key PEM block found');
  }
  return privateKeyFromDer(block.der, KEY_LABELS[block.label as keyof typeof KEY_LABELS]);
}

/**
 * A PKCS#8 (or SEC1, PKCS#1) DER private key.
 * @throws MalformedInputError (ERR_MALFORMED_PEM) when it does not decode; the bytes are never quoted.
 */
export function privateKeyFromDer(der: Uint8Array, type: 'pkcs8' | 'sec1' | 'pkcs1' = 'pkcs8'): KeyObject {
  try {
    return createPrivateKey({ key: Buffer.from(der), format: 'der', type });
  } catch (e) {
    throw new MalformedPemError(`the private key does not decode as ${type.toUpperCase()}`, {
      cause: e,
    });
  }
}

/**
 * DER certificates back to back (go-spiffe's raw encoding, and the Workload API's), one DER each.
 * @throws MalformedInputError (ERR_MALFORMED_CERTIFICATE) when the bytes are not whole DER elements.
 */
export function certificatesFromConcatenatedDer(der: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  try {
    while (off < der.length) {
      const tlv = readTlv(der, off);
      out.push(new Uint8Array(der.subarray(off, tlv.end)));
      off = tlv.end;
    }
  } catch (e) {
    if (!(e instanceof DerFramingError)) throw e;
    throw new MalformedCertificateError(
      `the certificates are not DER elements back to back (at byte ${off}): ${e.message}`,
      { cause: e },
    );
  }
  return out;
}

/**
 * A file's text, for SVID files; the error names the file and what it was for, never its contents.
 * @throws LanyardError (ERR_IO).
 */
export function readSvidFile(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new IoError(`cannot read the ${what} file ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

function text(input: PemInput): string {
  if (typeof input === 'string') return input;
  if (input instanceof Uint8Array) return Buffer.from(input).toString('utf8');
  throw new MalformedPemError('PEM input must be a string or bytes');
}
