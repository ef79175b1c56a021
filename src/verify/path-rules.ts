import {
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_nameConstraints,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { ErrorCode, ErrorCodeValue, PathValidationError } from '../errors';
import { ParsedCertificate, ParsedNameConstraints } from '../x509/certificate';
import { describeKey } from '../x509/keys';
import { nameConstraintViolation } from './name-constraints';

/**
 * Extensions whose semantics this validator enforces, so they may be critical. Everything else marked critical
 * is refused (RFC 5280 §4.2: a system MUST reject a certificate with a critical extension it does not
 * recognise). certificatePolicies and policyConstraints are deliberately absent: policy processing is not
 * implemented, and accepting them as critical would pretend otherwise.
 */
export const ENFORCED_EXTENSIONS: ReadonlySet<string> = new Set([
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_extKeyUsage,
  id_ce_subjectAltName,
  id_ce_nameConstraints,
  id_ce_subjectKeyIdentifier,
  id_ce_authorityKeyIdentifier,
]);

/**
 * Signature algorithms accepted on certificates whose signature the path relies on (every one but the anchor).
 * MD5 and SHA-1 are refused as Go and the CA/Browser Forum do; RSASSA-PSS is left out because its parameters
 * default to SHA-1 and no Lanyard key signs with it; Ed448 keys are not accepted anywhere in Lanyard.
 */
export const ACCEPTED_SIGNATURE_ALGORITHMS: ReadonlySet<string> = new Set([
  '1.2.840.10045.4.3.2', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3', // ecdsa-with-SHA384
  '1.2.840.10045.4.3.4', // ecdsa-with-SHA512
  '1.2.840.113549.1.1.11', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12', // sha384WithRSAEncryption
  '1.2.840.113549.1.1.13', // sha512WithRSAEncryption
  '1.3.101.112', // Ed25519
]);

/**
 * A path validation failure that names the certificate it is about: `certIndex` counts from the leaf (0) to
 * the trust anchor (path length - 1) of the candidate path that failed.
 */
export class CertificatePathError extends PathValidationError {
  readonly certIndex: number;
  readonly certSha256Hex: string;

  constructor(code: ErrorCodeValue, message: string, certIndex: number, cert: ParsedCertificate) {
    super(code, message);
    this.certIndex = certIndex;
    this.certSha256Hex = cert.sha256Hex;
  }
}

/**
 * Every RFC 5280 §6.1 rule that is not a signature, over a complete candidate path `path` (leaf first, trust
 * anchor last; signatures already checked by the caller). Throws CertificatePathError for the first rule broken.
 *
 * Processed from the anchor down, as §6.1 does, so constraints accumulate in order and the reported failure is
 * the one closest to the anchor. The trust anchor is checked like any CA (validity, CA flag, keyCertSign,
 * pathLen, name constraints, critical extensions): RFC 5280 leaves anchor checks to the relying party, and
 * Go, OpenSSL in x509_strict mode, and SPIRE all refuse an expired or non-CA root.
 */
export function checkPath(path: readonly ParsedCertificate[], at: Date): void {
  const constraints: { ca: number; nc: ParsedNameConstraints }[] = [];
  for (let i = path.length - 1; i >= 0; i--) {
    const cert = path[i]!;
    checkValidity(cert, i, at);
    checkCriticalExtensions(cert, i);
    checkKeyAndAlgorithm(cert, i, i === path.length - 1);
    if (i > 0) checkIssuerRole(path, i);
    // §6.1.3 (b)/(c): name constraints do not apply to self-issued intermediates, only to the final cert and to
    // certificates issued to a different subject.
    if (!(i > 0 && cert.selfIssued)) {
      for (const { ca, nc } of constraints) {
        const reason = nameConstraintViolation(cert, nc);
        if (reason !== undefined) {
          throw fail(
            ErrorCode.NAME_CONSTRAINTS_VIOLATED,
            `${describe(cert)}: ${reason} (constraints of ${describe(path[ca]!)})`,
            i,
            cert,
          );
        }
      }
    }
    if (i > 0 && cert.nameConstraints !== undefined) constraints.push({ ca: i, nc: cert.nameConstraints });
  }
}

function checkValidity(cert: ParsedCertificate, i: number, at: Date): void {
  const t = at.getTime();
  if (t < cert.notBefore.getTime()) {
    throw fail(
      ErrorCode.CERT_NOT_YET_VALID,
      `${describe(cert)} is not valid before ${cert.notBefore.toISOString()} (checked at ${at.toISOString()})`,
      i,
      cert,
    );
  }
  if (t > cert.notAfter.getTime()) {
    throw fail(
      ErrorCode.CERT_EXPIRED,
      `${describe(cert)} expired at ${cert.notAfter.toISOString()} (checked at ${at.toISOString()})`,
      i,
      cert,
    );
  }
}

function checkCriticalExtensions(cert: ParsedCertificate, i: number): void {
  const unknown = cert.extensions.find((e) => e.critical && !ENFORCED_EXTENSIONS.has(e.oid));
  if (unknown !== undefined) {
    throw fail(
      ErrorCode.UNKNOWN_CRITICAL_EXTENSION,
      `${describe(cert)} carries the critical extension ${unknown.oid}, which this validator does not process`,
      i,
      cert,
    );
  }
}

/**
 * Every key in the path must be of a type Lanyard accepts anywhere (x509/keys.ts: EC P-256/P-384, RSA >= 2048,
 * Ed25519), and every signature the path relies on must use an accepted algorithm. The anchor's own signature
 * is not relied on, so its algorithm does not matter; its key does, since it verifies the next certificate.
 */
function checkKeyAndAlgorithm(cert: ParsedCertificate, i: number, anchor: boolean): void {
  try {
    describeKey(cert.publicKey);
  } catch (e) {
    throw fail(
      ErrorCode.UNSUPPORTED_KEY,
      `${describe(cert)} has a key Lanyard does not accept: ${e instanceof Error ? e.message : String(e)}`,
      i,
      cert,
    );
  }
  const alg = cert.signatureAlgorithmOid;
  if (!anchor && !ACCEPTED_SIGNATURE_ALGORITHMS.has(alg)) {
    throw fail(
      ErrorCode.UNSUPPORTED_ALGORITHM,
      `${describe(cert)} is signed with the refused algorithm ${alg}`,
      i,
      cert,
    );
  }
}

/** Rules for a certificate that signed the one below it: §6.1.4 (k), (l), (m), (n). */
function checkIssuerRole(path: readonly ParsedCertificate[], i: number): void {
  const cert = path[i]!;
  if (cert.basicConstraints?.ca !== true) {
    throw fail(
      ErrorCode.NOT_A_CA,
      `${describe(cert)} issued ${describe(path[i - 1]!)} but is not a CA (basicConstraints cA is not true)`,
      i,
      cert,
    );
  }
  // RFC 5280 only requires keyCertSign when keyUsage is present; the X509-SVID standard (§4.3) requires the
  // extension on every SVID and keyCertSign on every signing certificate, so its absence is refused as well.
  if (cert.keyUsage?.keyCertSign !== true) {
    throw fail(
      ErrorCode.KEY_USAGE_INVALID,
      cert.keyUsage === undefined
        ? `${describe(cert)} is a CA without a keyUsage extension (keyCertSign required)`
        : `${describe(cert)} is a CA whose keyUsage lacks keyCertSign`,
      i,
      cert,
    );
  }
  const pathLen = cert.basicConstraints.pathLen;
  if (pathLen !== undefined) {
    // Intermediates below this CA, excluding the leaf and self-issued certificates (§6.1.4 (l)).
    let below = 0;
    for (let j = 1; j < i; j++) if (!path[j]!.selfIssued) below++;
    if (below > pathLen) {
      throw fail(
        ErrorCode.PATH_LEN_EXCEEDED,
        `${describe(cert)} allows ${pathLen} intermediate CA(s) below it, the path has ${below}`,
        i,
        cert,
      );
    }
  }
}

function fail(
  code: ErrorCodeValue,
  message: string,
  i: number,
  cert: ParsedCertificate,
): CertificatePathError {
  return new CertificatePathError(code, message, i, cert);
}

/** A short human name for a certificate in error messages: its first URI SAN, else its subject DN. */
export function describe(cert: ParsedCertificate): string {
  const name = cert.uriSans[0] ?? cert.node.subject.replace(/\n/g, ', ');
  return `certificate "${name}" (serial ${cert.serialHex})`;
}
