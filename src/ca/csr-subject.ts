/**
 * A leaf's key given as the CSR that proves possession of it, checked where the leaf is signed: on the server's
 * thread without a signing pool, in the worker that signs it with one. Either way the same function runs, so a
 * request is refused on the same conditions with the same typed errors, and one pool round trip both checks
 * the proof and signs (the server's thread never imports the workload's key for it).
 */
import { InvalidArgumentError } from '../errors';
import { sameBytes } from '../internal/bytes';
import { parseCsr, type ParsedCsr } from '../x509/csr';

/** The CSR's key must be exactly this one (a delegated session's key, which its parent's binding names). */
export interface KeyPin {
  /** The SubjectPublicKeyInfo DER the CSR's key must have, byte for byte as node:crypto exports it. */
  spki: Uint8Array;
  /** The message of the ERR_INVALID_ARGUMENT a CSR for another key gets. */
  refusal: string;
}

export interface CsrSubject {
  /** DER bytes or PEM text of a PKCS#10 request. */
  csr: Uint8Array | string;
  sameKeyAs?: KeyPin;
}

/**
 * parseCsr (proof of possession, algorithm, key type, size and curve: ERR_MALFORMED_CSR,
 * ERR_CSR_SIGNATURE_INVALID, ERR_UNSUPPORTED_ALGORITHM, ERR_UNSUPPORTED_KEY), then the pin.
 * @throws InvalidArgumentError(pin.refusal) when a pin is given and the CSR's key is another
 */
export function checkCsrSubject(subject: CsrSubject): ParsedCsr {
  const parsed = parseCsr(subject.csr);
  const pin = subject.sameKeyAs;
  if (pin !== undefined && !sameBytes(parsed.spki, pin.spki)) throw new InvalidArgumentError(pin.refusal);
  return parsed;
}
