/**
 * `lanyard/tls`: verifying at a Node tls/https hop. Servers and agents that require a peer X509-SVID, check
 * it (path, SVID profile, agent context, revocation) and authorize it before any data flows, and close live
 * connections whose SVID is revoked. No gRPC.
 */
export {
  createHopHttpsServer,
  createHopTlsServer,
  followSource,
  HopHttpsAgent,
  peerOf,
  tlsClientOptions,
  tlsServerOptions,
} from '../hop/tls';
export type { HopClientOptions, HopServerOptions, HopTlsClientOptions } from '../hop/tls';
export { verifyHopPeer, verifyHopPeerSync } from '../hop/peer';
export type { HopPeer, HopRequestInfo, HopVerifyOptions } from '../hop/peer';
export type { HopLogger } from '../internal/logging';
export type { HopDecision, HopDecisionListener, HopTransport } from '../hop/decision';
export type { HopAuthorize, HopPolicy, HopRequest, PolicyDecision } from '../hop/policy';
export { canonicalHttpAction, canonicalRequestPath } from '../hop/http-action';
export type { HttpActionOptions } from '../hop/http-action';
export type { HopHttpOptions } from '../hop/http-peer';
