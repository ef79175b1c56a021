import { ErrorCode, InvalidSpiffeIdError, LanyardError } from '../errors';
import { SpiffeId, TrustDomain } from '../spiffe';

/**
 * The name checks issuance needs before it puts a value into a certificate: a SPIFFE ID for a leaf, a trust
 * domain for a CA's URI SAN, DNS names. Issuance refuses to write a name a verifier would refuse.
 */

/** The bare trust domain name (`example.org`); its ID form (`spiffe://example.org`) is accepted too. */
export function trustDomainName(trustDomain: string): string {
  return TrustDomain.parse(trustDomain).name;
}

/** A leaf SPIFFE ID, which must have a non-root path (X509-SVID §3.1). Returns its trust domain name. */
export function leafTrustDomain(spiffeId: string): string {
  const id = SpiffeId.parse(spiffeId);
  if (id.isTrustDomainId()) {
    throw new InvalidSpiffeIdError(
      ErrorCode.INVALID_SPIFFE_ID,
      `invalid SPIFFE ID for an X.509-SVID "${spiffeId}": a leaf needs a path after the trust domain`,
    );
  }
  return id.trustDomain.name;
}

const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** A DNS SAN: LDH labels, at most 253 characters, optionally a wildcard as the whole leftmost label. */
export function checkDnsName(name: string): void {
  const fail = (rule: string): never => {
    throw new LanyardError(ErrorCode.INVALID_ARGUMENT, `invalid DNS name "${String(name)}": ${rule}`);
  };
  if (typeof name !== 'string' || name === '') fail('it is empty');
  if (name.length > 253) fail('it is longer than 253 characters');
  const labels = name.split('.');
  labels.forEach((label, i) => {
    if (i === 0 && label === '*' && labels.length > 2) return;
    if (!DNS_LABEL.test(label)) fail(`label "${label}" is not a letters-digits-hyphens label`);
  });
}
