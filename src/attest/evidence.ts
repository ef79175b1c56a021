import { sha256 } from '../internal/digest';
import { MalformedEvidenceError } from '../errors';

/** SHA-256 of the evidence as received, before any trimming or decoding. */
export function evidenceDigest(evidence: Uint8Array): Uint8Array {
  return sha256(evidence);
}

/**
 * Refuses empty or oversized evidence before any parsing, so a hostile client cannot make an attestor work
 * on megabytes of input. `what` names the evidence in the message ("join token", ...).
 */
export function checkEvidenceSize(evidence: Uint8Array, maxBytes: number, what: string): void {
  if (!(evidence instanceof Uint8Array) || evidence.length === 0) {
    throw new MalformedEvidenceError(`evidence is empty: expected a ${what}`);
  }
  if (evidence.length > maxBytes) {
    throw new MalformedEvidenceError(
      `evidence is ${evidence.length} bytes, more than the ${maxBytes} a ${what} may have`,
    );
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** The evidence as text; invalid UTF-8 is malformed evidence. The message never quotes the bytes. */
export function evidenceText(evidence: Uint8Array, what: string): string {
  try {
    return strictUtf8.decode(evidence);
  } catch {
    throw new MalformedEvidenceError(`evidence is not UTF-8 text: expected a ${what}`);
  }
}
