/** `lanyard/express`: middleware that verifies and authorizes the peer X509-SVID of each express request. */
export { lanyardExpress } from '../hop/express';
export type { HopExpressMiddleware, HopExpressOptions, HopExpressRequest } from '../hop/express';
export type { HopHttpOptions } from '../hop/http-peer';
export type { HopPeer } from '../hop/peer';
