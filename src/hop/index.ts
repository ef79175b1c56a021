/**
 * Verifying at every hop: Node tls/https, grpc-js, handoff, and the policy hook. The express and fastify helpers
 * have their own entry points (`lanyard/hop/express`, `lanyard/hop/fastify`) so that neither is loaded here.
 */
export type { HopDecision, HopDecisionListener, HopTransport } from './decision';
export { PolicyDeniedError, runAuthorize } from './policy';
export type { HopAuthorize, HopPolicy, HopRequest, PolicyDecision } from './policy';
export { noPeerCertificate, reportClosedPeer, verifyHopPeer, verifyHopPeerSync } from './peer';
export { liveConnectionCount, trackLivePeer } from './live-peers';
export type { HopPeer, HopRequestInfo, HopVerifyOptions } from './peer';
export type { HopLogger } from '../internal/logging';
export { auditHopDecisions, hopDecisionEvent } from './audit';
export type { HopAuditListener, HopAuditOptions } from './audit';
export { peerChainOf, socketPeerChain, withKnownIntermediates } from '../internal/peer-chain';
export type { OwnChainSource } from '../internal/peer-chain';
export { canonicalHttpAction, canonicalRequestPath } from './http-action';
export type { HttpActionOptions } from './http-action';
export { httpRefusal } from './http-refusal';
export type { HttpRefusal } from './http-refusal';
export type { HopHttpOptions } from './http-peer';
export { rootsPem, X509SourceCertificateProvider } from '../client/certificate-provider';
export {
  createHopHttpsServer,
  createHopTlsServer,
  followSource,
  HopHttpsAgent,
  peerOf,
  tlsClientOptions,
  tlsServerOptions,
} from './tls';
export type { HopClientOptions, HopServerOptions, HopTlsClientOptions } from './tls';
export {
  agentOf,
  HOP_CHANNEL_OPTIONS,
  HOP_ERROR_CODE_METADATA_KEY,
  hopChannelCredentials,
  hopServerCredentials,
  hopService,
} from './grpc';
export type { HopChannelOptions, HopGrpcServiceOptions } from './grpc';
export {
  addHandoffService,
  grantForPeer,
  HANDOFF_GRANT_HEADER,
  OFFER_KEY_METHOD,
  offerKeyFrom,
  redeemFromCaller,
} from './handoff';
