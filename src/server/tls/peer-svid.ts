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
 *
 * Verified once per call: the audit wrapper (to name the actor) and resolveCaller (to authenticate) both ask
 * about the same call object, so its first verification that passed is kept with it (under `VERIFIED`) and
 * handed to the second ask when nothing it depended on has changed — the same certificate bytes, the same CA
 * object (its trust domain and agent-context OID are fixed) with the very same bundle and non-root authorities
 * objects (replaced, never edited, on rotation), and `now` inside the validity of every certificate of the path it was verified along (the
 * verifier's own chain memo keeps the same rule). A refusal is never kept: it is worked out again in full, so
 * a refused call gets the same error from each ask. Revocation is not part of this verification (resolveCaller
 * reads it from the store on every call).
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
  const held = call as PeerCall & { [VERIFIED]?: VerifiedPeer };
  const kept = held[VERIFIED];
  if (kept !== undefined && stillHolds(kept, raw, ca, now)) return kept.result;
  const result = verifyLeaf(raw, ca, now);
  // A call object that cannot take the property (frozen: not grpc-js's) is simply verified on every ask.
  if (Object.isExtensible(held)) held[VERIFIED] = keep(result, raw, ca);
  return result;
}

/** A verification that passed for one call, and everything its answer depended on. */
interface VerifiedPeer {
  readonly result: VerifyX509SvidResult;
  readonly raw: Buffer;
  readonly ca: CaManager;
  readonly bundle: ReturnType<CaManager['bundle']>;
  readonly nonRoot: readonly Uint8Array[];
  /** Milliseconds since the epoch: the latest notBefore and the earliest notAfter of the verified path. */
  readonly validFrom: number;
  readonly validUntil: number;
}

/**
 * Where a call keeps its verification: a property under a symbol no other module holds, so it goes with the call
 * object and is never shared between two calls. Not a WeakMap: a new key per call cost as much as the
 * verification it saves (a chain memo hit), measured in docs/design/performance.md.
 */
const VERIFIED = Symbol('lanyard.verifiedPeer');

function keep(result: VerifyX509SvidResult, raw: Buffer, ca: CaManager): VerifiedPeer {
  let validFrom = -Infinity;
  let validUntil = Infinity;
  for (const c of result.chain) {
    validFrom = Math.max(validFrom, c.notBefore.getTime());
    validUntil = Math.min(validUntil, c.notAfter.getTime());
  }
  return {
    result,
    raw,
    ca,
    bundle: ca.bundle(),
    nonRoot: ca.nonRootAuthoritiesDer(),
    validFrom,
    validUntil,
  };
}

function stillHolds(kept: VerifiedPeer, raw: Buffer, ca: CaManager, now: Date): boolean {
  const at = now.getTime();
  return (
    kept.ca === ca &&
    kept.bundle === ca.bundle() &&
    kept.nonRoot === ca.nonRootAuthoritiesDer() &&
    at >= kept.validFrom &&
    at <= kept.validUntil &&
    (kept.raw === raw || kept.raw.equals(raw))
  );
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
