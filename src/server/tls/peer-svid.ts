/**
 * Who is calling over mTLS: the client certificate of the TLS session, verified as an X509-SVID of our
 * trust domain with verifyX509Svid against the CA's current bundle.
 *
 * grpc-js (1.14) exposes the peer certificate as `call.getAuthContext().sslPeerCertificate` (Node's
 * `getPeerCertificate()` of the session's socket): the leaf only, not the intermediates the client sent.
 * A Lanyard SVID is signed directly by a Lanyard CA, so the leaf is completed with the certificates of the
 * CA's own non-root authorities (upstream mode); with self-signed CAs the leaf alone chains to the bundle.
 */
import type { CaManager } from '../../ca';
import { ErrorCode, IssuanceError } from '../../errors';
import { verifyX509Svid, type VerifiedSvid } from '../../verify';

/** The part of a grpc-js server call this needs (grpc-js does not export its AuthContext type). */
export interface PeerCall {
  getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } };
}

/**
 * @throws IssuanceError(ERR_CLIENT_CERT_REQUIRED) without a client certificate; the verifier's errors
 *   (ERR_SVID_EXPIRED, ERR_UNKNOWN_AUTHORITY, ERR_WRONG_TRUST_DOMAIN, ...) for one that is not a valid SVID.
 */
export function verifyPeerSvid(call: PeerCall, ca: CaManager, now: Date): VerifiedSvid {
  const raw = call.getAuthContext().sslPeerCertificate?.raw;
  if (raw === undefined || raw.length === 0) {
    throw new IssuanceError(
      ErrorCode.CLIENT_CERT_REQUIRED,
      'this call needs mTLS: connect with your current X509-SVID as the client certificate',
    );
  }
  const intermediates = ca
    .authorities()
    .filter((a) => !a.selfSigned)
    .map((a) => a.certDer);
  return verifyX509Svid([new Uint8Array(raw), ...intermediates], ca.bundle(), {
    at: now,
    trustDomain: ca.trustDomain,
  });
}
