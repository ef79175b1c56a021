import {
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_nameConstraints,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import {
  type CertificateErrorOptions,
  ErrorCode,
  errorClasses,
  type PathValidationError,
  type UnsupportedAlgorithmError,
  type UnsupportedKeyError,
} from '../errors';
import { ParsedCertificate, ParsedNameConstraints } from '../x509/certificate';
import * as distinguishedName from '../x509/distinguished-name';
import { dnsNameProblem, isIpAddressBytes, parseMailbox } from '../x509/name-syntax';
import * as svidRules from '../svid/rules';
import { ConstraintBudget, nameConstraintViolation, subtreeProblem } from './name-constraints';

// Read once at load: under tsx (which `npm run bench` and the tests run) an imported binding is a getter call
// on every use, and these run for every new leaf (see certificate-der.ts). Compiled output (dist/) is the same.
const { isCaCertificate, keyCertSignProblem, NOT_A_CA } = svidRules;
const { isEmptyDn } = distinguishedName;

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
 * Every RFC 5280 §6.1 rule that is not a signature, over a complete candidate path `path` (leaf first, trust
 * anchor last; signatures already checked by the caller). Throws PathValidationError for the first rule broken.
 *
 * Processed from the anchor down, as §6.1 does, so constraints accumulate in order and the reported failure is
 * the one closest to the anchor.
 *
 * The trust anchor is, as RFC 5280 §6.1.1 (d) defines it, a name and a key: it may be an X.509 v1 certificate
 * (no extensions at all) or a v3 certificate without keyUsage, as many organisations' older roots are (go-spiffe
 * and Go accept both). What a v3 anchor does state is held to: its validity, basicConstraints cA (critical), a
 * keyUsage that lacks keyCertSign, pathLen, name constraints, critical extensions, the §4.2 profile rules below.
 * Every other certificate of the path keeps every check: v3, basicConstraints, keyUsage with keyCertSign on a CA
 * (the X509-SVID standard, §4.3, requires keyUsage on every signing certificate), authority key identifier.
 */
export function checkPath(path: readonly ParsedCertificate[], at: Date): void {
  const constraints: { ca: number; nc: ParsedNameConstraints }[] = [];
  const budget = new ConstraintBudget();
  const last = path.length - 1;
  for (let i = last; i >= 0; i--) {
    const cert = path[i]!;
    const anchor = i === last;
    checkValidity(cert, i, at);
    checkCriticalExtensions(cert, i);
    checkKeyAndAlgorithm(cert, i, anchor);
    if (i > 0) checkIssuerRole(path, i, anchor);
    checkProfile(path, i, anchor);
    // §6.1.3 (b)/(c): name constraints do not apply to self-issued intermediates, only to the final cert and to
    // certificates issued to a different subject.
    if (!(i > 0 && cert.selfIssued)) {
      for (const { ca, nc } of constraints) {
        const reason = nameConstraintViolation(cert, nc, budget);
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
    if (i > 0 && cert.nameConstraints !== undefined) {
      checkSubtrees(cert, i);
      constraints.push({ ca: i, nc: cert.nameConstraints });
    }
  }
}

/**
 * The rules of checkPath that read a renewed leaf's own fields (src/verify/renewals.ts): its validity at `at`,
 * its key and its signature algorithm. Everything else checkPath reads of a leaf is in bytes equal to those of a
 * leaf that passed it under the same certificates above it. Throws as checkPath does.
 */
export function checkRenewedLeaf(leaf: ParsedCertificate, at: Date): void {
  checkValidity(leaf, 0, at);
  checkKeyAndAlgorithm(leaf, 0, false);
}

/**
 * notBefore and notAfter are inclusive and have a granularity of one second (RFC 5280 §4.1.2.5): a certificate
 * whose notAfter is 00:00:00 is valid throughout that second, so `at` is compared truncated to whole seconds.
 */
function checkValidity(cert: ParsedCertificate, i: number, at: Date): void {
  const t = Math.floor(at.getTime() / 1000) * 1000;
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
  let unknown: ParsedCertificate['extensions'][number] | undefined;
  for (const e of cert.extensions) {
    if (e.critical && !ENFORCED_EXTENSIONS.has(e.oid)) {
      unknown = e;
      break;
    }
  }
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
    cert.describeKey();
  } catch (e) {
    throw fail(
      ErrorCode.UNSUPPORTED_KEY,
      `${describe(cert)} has a key Lanyard does not accept: ${e instanceof Error ? e.message : String(e)}`,
      i,
      cert,
    );
  }
  const curve = cert.ecCurveEncoding;
  if (curve !== undefined && curve !== 'named') {
    // RFC 5480 §2.1.1: implicitCurve and specifiedCurve MUST NOT be used. Explicit parameters are how
    // CVE-2020-0601 passed off a forged key as a trusted root's; OpenSSL maps them to a named curve silently.
    throw fail(
      ErrorCode.UNSUPPORTED_KEY,
      `${describe(cert)} has an EC key with ${curve === 'specified' ? 'explicit' : 'implicit'} curve parameters; only named curves are accepted (RFC 5480)`,
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

/**
 * RFC 5280 §4 profile rules that path validation relies on, for any certificate of the path:
 * - only a trust anchor may be v1 (a v1 certificate states no basicConstraints, so it cannot be shown to be a CA,
 *   and carries no key identifiers);
 * - the key identifier extensions are never critical (§4.2.1.1, §4.2.1.2);
 * - keyCertSign only with basicConstraints cA (§4.2.1.3, §4.2.1.9);
 * - name constraints only in a CA certificate (§4.2.1.10): in a leaf they would be silently meaningless;
 * - every certificate but the anchor names its issuer's key (authorityKeyIdentifier keyIdentifier, §4.2.1.1:
 *   only a self-signed certificate distributed as an anchor may leave it out) when the issuer publishes a
 *   subject key identifier; a v1 anchor has none, and the CAs under such roots (OpenSSL, Go) write no AKI;
 * - and, but for the anchor, well-formed names: dNSName SANs in the preferred name syntax (a wildcard as the
 *   whole leftmost label allowed), rfc822Name SANs mailboxes, iPAddress SANs 4 or 16 octets (§4.2.1.6); an empty
 *   subject only with a critical subjectAltName (§4.1.2.6). A name that does not parse cannot be placed inside
 *   or outside a name constraint, and a peer-name check would read it some other way.
 */
function checkProfile(path: readonly ParsedCertificate[], i: number, anchor: boolean): void {
  const cert = path[i]!;
  if (cert.version !== 3 && !anchor) {
    throw profileFailure(cert, i, 'is an X.509 v1 certificate; only a trust anchor may be v1');
  }
  for (const oid of KEY_IDENTIFIER_EXTENSIONS) {
    if (cert.extension(oid)?.critical === true) {
      throw profileFailure(
        cert,
        i,
        `marks its ${oid === id_ce_authorityKeyIdentifier ? 'authority' : 'subject'} key identifier critical (RFC 5280 §4.2.1.1, §4.2.1.2: never critical)`,
      );
    }
  }
  if (cert.keyUsage?.keyCertSign === true && !isCaCertificate(cert)) {
    throw fail(
      ErrorCode.KEY_USAGE_INVALID,
      `${describe(cert)} has keyUsage keyCertSign but ${NOT_A_CA}`,
      i,
      cert,
    );
  }
  if (cert.nameConstraints !== undefined && cert.basicConstraints?.ca !== true) {
    throw profileFailure(
      cert,
      i,
      'carries name constraints but is not a CA (RFC 5280 §4.2.1.10: CA certificates only)',
    );
  }
  if (anchor) return;
  if (cert.authorityKeyId === undefined && path[i + 1]!.subjectKeyId !== undefined) {
    throw profileFailure(
      cert,
      i,
      'has no authority key identifier while its issuer has a subject key identifier (RFC 5280 §4.2.1.1)',
    );
  }
  for (const name of cert.subjectAltNames) {
    if (name.kind === 'dns') {
      const problem = dnsNameProblem(name.value, { wildcard: true });
      if (problem !== undefined)
        throw profileFailure(cert, i, `has a malformed DNS name SAN "${name.value}": ${problem}`);
    } else if (name.kind === 'email' && parseMailbox(name.value) === undefined) {
      throw profileFailure(cert, i, `has a malformed email address SAN "${name.value}" (not a mailbox)`);
    } else if (name.kind === 'ip' && !isIpAddressBytes(name.bytes ?? new Uint8Array(0))) {
      throw profileFailure(cert, i, `has a malformed IP address SAN ${name.value} (4 or 16 octets)`);
    }
  }
  if (isEmptyDn(cert.subjectDer)) {
    const san = cert.extension(id_ce_subjectAltName);
    if (san === undefined || !san.critical) {
      throw profileFailure(
        cert,
        i,
        'has an empty subject without a critical subjectAltName (RFC 5280 §4.1.2.6, §4.2.1.6)',
      );
    }
  }
}

const KEY_IDENTIFIER_EXTENSIONS = [id_ce_authorityKeyIdentifier, id_ce_subjectKeyIdentifier] as const;

function profileFailure(cert: ParsedCertificate, i: number, rule: string): PathFailure {
  return fail(ErrorCode.CERT_PROFILE_INVALID, `${describe(cert)} ${rule}`, i, cert);
}

/**
 * Rules for a certificate that signed the one below it: §6.1.4 (k), (l), (m), (n), and §4.2.1.2 / §4.2.1.9 /
 * §4.1.2.6 for CA certificates. A v1 trust anchor states none of them and is taken as a name and a key.
 */
function checkIssuerRole(path: readonly ParsedCertificate[], i: number, anchor: boolean): void {
  const cert = path[i]!;
  if (isEmptyDn(cert.subjectDer)) {
    throw fail(
      ErrorCode.CERT_PROFILE_INVALID,
      `${describe(cert)} issued ${describe(path[i - 1]!)} but has an empty subject (RFC 5280 §4.1.2.6: a CA is named)`,
      i,
      cert,
    );
  }
  if (anchor && cert.version === 1) return;
  const bc = cert.basicConstraints;
  if (bc === undefined || !isCaCertificate(cert)) {
    throw fail(
      ErrorCode.NOT_A_CA,
      cert.version === 1
        ? `${describe(cert)} issued ${describe(path[i - 1]!)} but is an X.509 v1 certificate, which cannot state that it is a CA; only a trust anchor may be v1`
        : `${describe(cert)} issued ${describe(path[i - 1]!)} but ${NOT_A_CA}`,
      i,
      cert,
    );
  }
  if (cert.extension(id_ce_basicConstraints)?.critical !== true) {
    throw fail(
      ErrorCode.CERT_PROFILE_INVALID,
      `${describe(cert)} is a CA whose basicConstraints is not critical (RFC 5280 §4.2.1.9)`,
      i,
      cert,
    );
  }
  if (cert.subjectKeyId === undefined) {
    throw fail(
      ErrorCode.CERT_PROFILE_INVALID,
      `${describe(cert)} is a CA without a subject key identifier (RFC 5280 §4.2.1.2)`,
      i,
      cert,
    );
  }
  // A trust anchor may leave keyUsage out (see checkPath).
  const keyUsage = keyCertSignProblem(cert, anchor);
  if (keyUsage !== undefined) {
    throw fail(ErrorCode.KEY_USAGE_INVALID, `${describe(cert)} is a CA ${keyUsage}`, i, cert);
  }
  const pathLen = bc.pathLen;
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

/** A CA's name constraints must be readable before they are applied (see subtreeProblem). */
function checkSubtrees(cert: ParsedCertificate, i: number): void {
  const nc = cert.nameConstraints!;
  for (const s of [...nc.permitted, ...nc.excluded]) {
    const problem = subtreeProblem(s);
    if (problem !== undefined) {
      throw fail(
        ErrorCode.CERT_PROFILE_INVALID,
        `${describe(cert)} has a malformed name constraint (${s.kind} "${s.value}": ${problem})`,
        i,
        cert,
      );
    }
  }
}

type PathFailure = PathValidationError | UnsupportedKeyError | UnsupportedAlgorithmError;

function fail(code: PathFailure['code'], message: string, i: number, cert: ParsedCertificate): PathFailure {
  // These classes all take the certificate they are about; errorClasses is typed for the common options only.
  const Class = errorClasses[code] as new (message: string, options: CertificateErrorOptions) => PathFailure;
  return new Class(message, { certIndex: i, certSha256Hex: cert.sha256Hex });
}

/** A short human name for a certificate in error messages: its first URI SAN, else its subject DN. */
export function describe(cert: ParsedCertificate): string {
  const name =
    cert.uriSans[0] ??
    (isEmptyDn(cert.subjectDer) ? '(empty subject)' : cert.node.subject.replace(/\n/g, ', '));
  return `certificate "${name}" (serial ${cert.serialHex})`;
}
