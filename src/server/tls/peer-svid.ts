/**
 * Who is calling over mTLS: the client certificate of the TLS session, verified as an X509-SVID of our
 * trust domain with verifyX509Svid against the CA's current bundle.
 *
 * grpc-js (1.14) exposes the peer certificate as `call.getAuthContext().sslPeerCertificate` (Node's
 * `getPeerCertificate()` of the session's socket): the leaf only, not the intermediates the client sent.
 * A Lanyard SVID is signed directly by a Lanyard CA, so the leaf is completed with the certificates of the
 * CA's own non-root authorities (upstream mode); with self-signed CAs the leaf alone chains to the bundle.
 *
 * grpc-js hides the certificate when OpenSSL did not authorize it (expired, another CA, another trust
 * domain): the auth context is then empty, exactly as without a certificate. To tell the caller what was
 * wrong, the certificate is read from the call's TLS socket (see tls-socket.ts) and run through the same
 * verifier, whose error names the reason. It is only ever used to explain a refusal: a call whose
 * certificate the TLS stack refused is never accepted, even when the verifier would have taken it.
 */
import type { CaManager } from '../../ca';
import { ClientCertRejectedError, ClientCertRequiredError, LanyardError } from '../../errors';
import { verifyX509Svid, type VerifyX509SvidResult } from '../../verify';
import { authorizedPeerDer, tlsPeerOf } from './tls-socket';

/** The part of a grpc-js server call this needs (grpc-js does not export its AuthContext type). */
export interface PeerCall {
  getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } };
}

/**
 * @throws IssuanceError(ERR_CLIENT_CERT_REQUIRED) without a client certificate; the verifier's errors
 *   (ERR_SVID_EXPIRED, ERR_UNKNOWN_AUTHORITY, ERR_WRONG_TRUST_DOMAIN, ...) for one that is not a valid SVID,
 *   also when the TLS stack already refused it; ERR_CLIENT_CERT_REJECTED when the TLS stack refused it and
 *   the verifier names no reason of its own.
 */
export function verifyPeerSvid(call: PeerCall, ca: CaManager, now: Date): VerifyX509SvidResult {
  const raw = authorizedPeerDer(call);
  if (raw === undefined) throw refusedPeer(call, ca, now);
  return verifyLeaf(raw, ca, now);
}

function verifyLeaf(raw: Buffer, ca: CaManager, now: Date): VerifyX509SvidResult {
  return verifyX509Svid([new Uint8Array(raw), ...ca.nonRootAuthoritiesDer()], ca.bundle(), {
    at: now,
    trustDomain: ca.trustDomain,
    // The OID this server writes: an SVID issued under another one (before an agent_context.oid change, or by
    // a server configured differently) is refused with ERR_AGENT_CONTEXT_OID_MISMATCH naming both.
    agentContextOid: ca.agentContextOid,
  });
}

/** Why no authorized client certificate: none sent, or the verifier's reason for the one that was refused. */
function refusedPeer(call: PeerCall, ca: CaManager, now: Date): LanyardError {
  const tls = tlsPeerOf(call);
  if (tls === undefined) {
    // The socket could not be read (a grpc-js change): no cert and a refused cert look the same.
    return new ClientCertRejectedError(
      'this call needs mTLS and no client certificate was accepted: none was sent, or it is expired, not ' +
        "issued by this trust domain's CA, or altered; connect with your current X509-SVID",
    );
  }
  if (tls.raw === undefined) {
    return new ClientCertRequiredError(
      'this call needs mTLS: connect with your current X509-SVID as the client certificate (none was sent)',
    );
  }
  try {
    verifyLeaf(tls.raw, ca, now);
  } catch (e) {
    if (e instanceof LanyardError) return e;
    throw e;
  }
  return new ClientCertRejectedError(
    `the TLS handshake refused the client certificate (${tls.authorizationError ?? 'no reason given'}); ` +
      'connect with your current X509-SVID and its chain',
  );
}
