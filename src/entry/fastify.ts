/** `lanyard/fastify`: a plugin that verifies and authorizes the peer X509-SVID of each fastify request. */
export { lanyardFastify } from '../hop/fastify';
export type { HopFastifyOptions } from '../hop/fastify';
export type { HopHttpOptions } from '../hop/http-peer';
export type { HopPeer } from '../hop/peer';
