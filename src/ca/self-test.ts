import type { KeyObject } from 'node:crypto';
import { X509Bundle } from '../bundle/x509-bundle';
import { CaSelfTestFailedError, InternalError, isLanyardError } from '../errors';
import { TrustDomain } from '../spiffe';
import { verifyX509Svid } from '../verify/verify-x509-svid';
import { ParsedCertificate } from '../x509/certificate';
import { generateSigningKeyPair } from '../x509/keys';
import { issueX509Svid } from '../x509/profiles';

/** The SPIFFE ID of the throwaway SVID; under /lanyard/ so that it can never collide with a workload's. */
export const SELF_TEST_SPIFFE_PATH = '/lanyard/ca-self-test';
const SELF_TEST_TTL_SECONDS = 60;

export interface SelfTestSubject {
  id: string;
  cert: ParsedCertificate;
  upstreamChain: readonly ParsedCertificate[];
  /** The key as the key manager returns it now, not a handle remembered from when it was made. */
  key: KeyObject;
}

/**
 * Signs a throwaway SVID with the CA and verifies it, with the same verifier workloads use, against the
 * roots the bundle will hold. This proves, before the CA is trusted with anything, that the stored key is
 * the certificate's key, that the chain reaches a root of the bundle, and that its SVIDs pass every rule.
 * @throws CaError(ERR_CA_SELF_TEST_FAILED) naming the CA and the verifier's reason; never key material.
 */
export function selfTestAuthority(
  subject: SelfTestSubject,
  trustDomain: TrustDomain,
  roots: readonly ParsedCertificate[],
  now: Date,
): void {
  try {
    const { publicKey } = generateSigningKeyPair('ec-p256');
    const leaf = issueX509Svid({
      spiffeId: `spiffe://${trustDomain.name}${SELF_TEST_SPIFFE_PATH}`,
      publicKey,
      issuer: { cert: subject.cert, key: subject.key },
      ttlSeconds: SELF_TEST_TTL_SECONDS,
      now,
    });
    const bundle = new X509Bundle(trustDomain, { x509Authorities: roots });
    const chain = [leaf.cert, subject.cert, ...subject.upstreamChain];
    // No cache: the point is to do the whole work once, not to trust a remembered result.
    verifyX509Svid(chain, bundle, { at: now, cache: null });
    if (!leaf.cert.publicKey.equals(publicKey)) {
      throw new InternalError('the SVID does not carry the requested key');
    }
  } catch (e) {
    throw new CaSelfTestFailedError(
      `CA ${subject.id} failed its self-test, so it is not used: ${reasonOf(e)}`,
    );
  }
}

/**
 * A Lanyard error's code and message are ours and hold no secrets. Anything else (a crypto library, a
 * third-party key manager) may describe key bytes, so only its class name is kept.
 */
function reasonOf(e: unknown): string {
  if (isLanyardError(e)) return `${e.code}: ${e.message}`;
  return `unexpected ${e instanceof Error ? e.name : typeof e}`;
}
