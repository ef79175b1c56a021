import { InvalidArgumentError, InvalidSpiffeIdError } from '../errors';
import { SpiffeId, TrustDomain } from '../spiffe';
import { dnsNameProblem } from './name-syntax';

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
      `invalid SPIFFE ID for an X.509-SVID "${spiffeId}": a leaf needs a path after the trust domain`,
    );
  }
  return id.trustDomain.name;
}

/** A DNS SAN: LDH labels, at most 253 characters, optionally a wildcard as the whole leftmost label. */
export function checkDnsName(name: string): void {
  const problem = dnsNameProblem(name, { wildcard: true });
  if (problem !== undefined) {
    throw new InvalidArgumentError(`invalid DNS name "${String(name)}": ${problem}`);
  }
}
