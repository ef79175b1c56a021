/**
 * `lanyard/grpc`: verifying at a grpc-js hop. Server and channel credentials from an X509Source that follow
 * its rotation, a service wrapper that verifies and authorizes every call's peer, and the handoff service
 * through which a callee offers the key its delegated SVID will hold.
 */
export {
  hopPeerOf,
  HOP_CHANNEL_OPTIONS,
  HOP_ERROR_CODE_METADATA_KEY,
  hopChannelCredentials,
  hopServerCredentials,
  hopService,
} from '../hop/grpc';
export type { HopChannelOptions, HopGrpcServiceOptions } from '../hop/grpc';
export {
  addHandoffService,
  grantForPeer,
  HANDOFF_GRANT_HEADER,
  OFFER_KEY_METHOD,
  offerKeyFrom,
  redeemFromCaller,
} from '../hop/handoff';
export type { HopPeer, HopVerifyOptions } from '../hop/peer';
export type { HopDecision, HopDecisionListener } from '../hop/decision';
export type { HopAuthorize, HopPolicy, HopRequest } from '../hop/policy';
