import { AttestationError, MalformedEvidenceError, isLanyardError } from '../errors';
import { ParsedCertificate } from '../x509/certificate';
import { DerFramingError, readTlv, TAG_SEQUENCE } from '../x509/der';
import { decodePem } from '../x509/pem';

/** Bound on x509pop evidence: a leaf and a few intermediates fit many times over. */
export const MAX_CHAIN_EVIDENCE_BYTES = 64 * 1024;
/** More than this is not a provisioning chain (validateCertPath has its own bound as well). */
export const MAX_CHAIN_CERTIFICATES = 8;

/**
 * A certificate chain sent as evidence, leaf first, then intermediates: either PEM text (CERTIFICATE blocks,
 * as the runtime's cert file holds them) or DER certificates back to back. Anything else, or a certificate that
 * does not parse, is ERR_MALFORMED_EVIDENCE.
 */
export function parseChainEvidence(evidence: Uint8Array): ParsedCertificate[] {
  const ders = looksLikePem(evidence) ? pemCertificates(evidence) : concatenatedDer(evidence);
  if (ders.length === 0) throw malformed('evidence holds no certificate');
  if (ders.length > MAX_CHAIN_CERTIFICATES) {
    throw malformed(
      `evidence holds ${ders.length} certificates, at most ${MAX_CHAIN_CERTIFICATES} are accepted`,
    );
  }
  return ders.map((der, i) => {
    try {
      return ParsedCertificate.fromDer(der);
    } catch (e) {
      if (!isLanyardError(e)) throw e;
      throw malformed(`certificate ${i} of the evidence: ${e.message}`, e);
    }
  });
}

function looksLikePem(evidence: Uint8Array): boolean {
  // DER certificates start with a SEQUENCE tag (0x30); PEM text with a "-" or white space or a comment.
  return evidence[0] !== TAG_SEQUENCE;
}

function pemCertificates(evidence: Uint8Array): Uint8Array[] {
  const text = Buffer.from(evidence).toString('latin1');
  let blocks;
  try {
    blocks = decodePem(text);
  } catch (e) {
    throw malformed(`evidence is not valid PEM: ${e instanceof Error ? e.message : String(e)}`, e);
  }
  const begins = text.match(/-----BEGIN [^\r\n]*?-----/g)?.length ?? 0;
  if (begins !== blocks.length) throw malformed('a PEM block of the evidence is malformed or not terminated');
  // A key sent by mistake must not be accepted, or echoed, as evidence.
  if (blocks.some((b) => b.label.includes('PRIVATE KEY'))) {
    throw malformed('evidence contains a private key: send only the certificate chain');
  }
  return blocks.filter((b) => b.label === 'CERTIFICATE').map((b) => b.der);
}

function concatenatedDer(evidence: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let offset = 0;
  try {
    while (offset < evidence.length) {
      const tlv = readTlv(evidence, offset);
      if (tlv.tag !== TAG_SEQUENCE) throw new DerFramingError(`expected a certificate at offset ${offset}`);
      out.push(evidence.subarray(tlv.start, tlv.end));
      offset = tlv.end;
    }
  } catch (e) {
    if (!(e instanceof DerFramingError)) throw e;
    throw malformed(`evidence is neither PEM nor DER certificates: ${e.message}`, e);
  }
  return out;
}

function malformed(message: string, cause?: unknown): AttestationError {
  return new MalformedEvidenceError(message, cause === undefined ? undefined : { cause });
}
