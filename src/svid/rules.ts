import { KeyUsageInvalidError, NotACaError, SvidInvalidError, SvidVerificationError } from '../errors';
import { SpiffeId } from '../spiffe';
import { EKU_CLIENT_AUTH, EKU_SERVER_AUTH, ParsedCertificate } from '../x509/certificate';

/**
 * The SPIFFE ID of an X509-SVID leaf (X509-SVID §2, §3.1, §5.2): exactly one URI SAN, which is a valid SPIFFE ID
 * with a non-root path. Other SAN types (DNS names) are allowed by the standard and ignored here.
 * Read before path validation because the ID's trust domain selects the bundle to validate against.
 * @throws SvidVerificationError (ERR_SVID_INVALID) naming the broken rule.
 */
export function spiffeIdOfLeaf(leaf: ParsedCertificate): SpiffeId {
  if (leaf.uriSans.length !== 1) {
    throw invalid(`the leaf must have exactly one URI SAN, it has ${leaf.uriSans.length}`);
  }
  const uri = leaf.uriSans[0]!;
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(uri);
  } catch (e) {
    throw new SvidInvalidError(
      `X509-SVID: the URI SAN is not a valid SPIFFE ID: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
  if (id.isTrustDomainId()) {
    throw invalid(`the leaf's SPIFFE ID "${uri}" has no path; that is the ID of a signing authority`);
  }
  return id;
}

/**
 * The X509-SVID leaf rules beyond the ID (X509-SVID §4.1, §4.3, §4.4, §5.2).
 *
 * - Not a CA: cA must not be true. An absent basicConstraints extension means "not a CA" (RFC 5280 §4.2.1.9,
 *   cA DEFAULT FALSE), so it is accepted, as go-spiffe does; only a leaf that claims to be a CA is refused.
 * - keyUsage must be present with digitalSignature, and without keyCertSign or cRLSign.
 * - extKeyUsage, when present, must list both serverAuth and clientAuth: an SVID authenticates either side of
 *   mutual TLS, and anyExtendedKeyUsage is not accepted in their place.
 * Whether keyUsage is marked critical is an issuance requirement the validation section does not ask
 * verifiers to enforce, and it is not enforced here.
 * @throws SvidVerificationError (ERR_SVID_INVALID) naming the broken rule.
 */
export function checkSvidLeaf(leaf: ParsedCertificate): void {
  if (leaf.basicConstraints?.ca === true)
    throw invalid('the leaf is a CA certificate (basicConstraints cA=true)');
  const ku = leaf.keyUsage;
  if (ku === undefined) throw invalid('the leaf has no keyUsage extension (digitalSignature is required)');
  if (!ku.digitalSignature) throw invalid('the leaf keyUsage lacks digitalSignature');
  if (ku.keyCertSign)
    throw invalid('the leaf keyUsage has keyCertSign, which only signing certificates may set');
  if (ku.cRLSign) throw invalid('the leaf keyUsage has cRLSign, which only signing certificates may set');
  const eku = leaf.extKeyUsage;
  // The list of missing purposes is built only for a refusal: this runs for every new leaf.
  if (eku !== undefined && !(eku.includes(EKU_SERVER_AUTH) && eku.includes(EKU_CLIENT_AUTH))) {
    const missing = [
      ...(eku.includes(EKU_SERVER_AUTH) ? [] : ['serverAuth']),
      ...(eku.includes(EKU_CLIENT_AUTH) ? [] : ['clientAuth']),
    ];
    throw invalid(`the leaf extKeyUsage lacks ${missing.join(' and ')}`);
  }
}

/**
 * The X509-SVID rule for the certificates that come with a leaf (X509-SVID §4.1, §4.3): each one signs SVIDs or
 * other signing certificates, so it must be a CA (basicConstraints cA=true) whose keyUsage includes
 * keyCertSign. Applied to an SVID as it is loaded, before any bundle is at hand; the verifier's path validation
 * holds every certificate it relies on to the same rule, with the same codes.
 * @throws PathValidationError ERR_NOT_A_CA or ERR_KEY_USAGE_INVALID naming the certificate by its position.
 */
export function checkSvidSigningCertificates(signing: readonly ParsedCertificate[]): void {
  signing.forEach((cert, i) => {
    const which = `certificate ${i + 1} of the chain (serial ${cert.serialHex})`;
    if (!isCaCertificate(cert)) {
      throw new NotACaError(`X509-SVID: ${which} signs for the leaf but ${NOT_A_CA}`);
    }
    const keyUsage = keyCertSignProblem(cert, false);
    if (keyUsage !== undefined) {
      throw new KeyUsageInvalidError(`X509-SVID: ${which} signs for the leaf but is a CA ${keyUsage}`);
    }
  });
}

/** What a signing certificate that fails isCaCertificate is told (ERR_NOT_A_CA). */
export const NOT_A_CA = 'is not a CA (basicConstraints cA is not true)';

/** The first half of the signing-certificate rule: basicConstraints cA=true (absent means not a CA). */
export function isCaCertificate(cert: ParsedCertificate): boolean {
  return cert.basicConstraints?.ca === true;
}

/**
 * The second half (ERR_KEY_USAGE_INVALID): a CA's keyUsage must include keyCertSign. RFC 5280 asks for it only
 * when keyUsage is present; the X509-SVID standard (§4.3) requires the extension on every signing certificate,
 * which path validation relaxes for a trust anchor alone (`absentAllowed`). Undefined when the rule holds,
 * else what is wrong, to follow "is a CA".
 */
export function keyCertSignProblem(cert: ParsedCertificate, absentAllowed: boolean): string | undefined {
  if (cert.keyUsage === undefined) {
    return absentAllowed ? undefined : 'without a keyUsage extension (keyCertSign required)';
  }
  return cert.keyUsage.keyCertSign ? undefined : 'whose keyUsage lacks keyCertSign';
}

function invalid(rule: string): SvidVerificationError {
  return new SvidInvalidError(`X509-SVID: ${rule}`);
}
