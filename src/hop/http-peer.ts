/** The verification step shared by the HTTP helpers (https server, express, fastify): per request, not per connection. */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { X509BundleSource } from '../bundle';
import type { X509Source } from '../client/x509-source';
import { trackLivePeer } from './live-peers';
import {
  checkHopPeer,
  checkHopVerifyOptions,
  prepareHopVerifyOptions,
  type HopPeer,
  type HopVerifyOptions,
} from './peer';
import type { HttpActionOptions } from './http-action';
import type { OwnChainSource } from '../internal/peer-chain';
import { connectionChains } from './connection-chain';
import { objectSlot } from './object-slot';

/** Options of the HTTP middlewares: `bundles` defaults to the source. */
export interface HopHttpOptions extends Omit<HopVerifyOptions, 'bundles'>, HttpActionOptions {
  source: X509Source;
  bundles?: X509BundleSource;
  /**
   * DER intermediates to complete a peer's chain with, besides the source SVID's own: a client resuming a TLS
   * session presents only its leaf.
   */
  intermediates?: readonly Uint8Array[];
}

/** What verifyHttpPeer needs: the verifier's options and how to complete a leaf-only chain. */
export interface HttpVerifyOptions extends HopVerifyOptions {
  chainSource?: OwnChainSource;
  intermediates?: readonly Uint8Array[];
}

/**
 * The verify options of a server-side helper, made once when the helper is made: the connection keeps its
 * verdict for this very object (kept-verdict.ts), so what decides a verdict is copied here and not read from
 * the caller's object again (`federatedTrustDomains` included).
 */
export function httpVerifyOptions(o: HopHttpOptions): HttpVerifyOptions {
  return prepareHopVerifyOptions(
    checkHopVerifyOptions({
      ...o,
      bundles: o.bundles ?? o.source,
      chainSource: o.source,
      ...(o.federatedTrustDomains !== undefined
        ? { federatedTrustDomains: Object.freeze([...o.federatedTrustDomains]) }
        : {}),
    }),
  );
}

/**
 * Verifies the peer of the connection `socket` for `action`. A plain-TCP socket (no TLS) has no certificate
 * and is refused like a TLS peer that sent none. Re-run for every request, so that a revocation or an expiry
 * applies to the next request on a kept-alive connection; a revocation that arrives while the connection is
 * open closes it (watchConnection).
 */
export async function verifyHttpPeer(
  socket: Socket,
  options: HttpVerifyOptions,
  action: string,
): Promise<HopPeer> {
  return checkHttpPeer(socket, options, action);
}

/**
 * verifyHttpPeer without the promise when an Authorizer (not an async policy) decides: the middlewares call the
 * next handler in the same turn. Everything verifyHttpPeer checks is checked on every call; only the reading of
 * the peer's chain is done once per connection (connection-chain.ts), and the verifier's memo answers the same
 * chain again from memory while re-checking time, bundle and revocation.
 * @throws LanyardError for a refusal (synchronously, or as the promise's rejection).
 */
export function checkHttpPeer(
  socket: Socket,
  options: HttpVerifyOptions,
  action: string,
): HopPeer | Promise<HopPeer> {
  if (typeof (socket as Partial<TLSSocket>).getPeerCertificate !== 'function') {
    return checkHopPeer({ chain: [] }, options, {
      transport: 'http',
      action,
      noCertificateMessage: 'not a TLS connection: this service needs mutual TLS with an X509-SVID',
    });
  }
  const peer = checkHopPeer(connectionChains(socket as TLSSocket, options), options, {
    transport: 'http',
    action,
  });
  if (!(peer instanceof Promise)) {
    watchConnection(socket, options, peer);
    return peer;
  }
  return peer.then((p) => {
    watchConnection(socket, options, p);
    return p;
  });
}

const watched = objectSlot<true>();

/**
 * A kept-alive connection (and a response still streaming on it) would run until its next request: it is
 * closed as soon as a notifying revocation checker reports its peer revoked. Once per connection: the peer's
 * certificate cannot change within it (renegotiation is off).
 */
function watchConnection(socket: Socket, options: HttpVerifyOptions, peer: HopPeer): void {
  // Nothing to watch for without a checker that notifies: the WeakSet is not even consulted.
  if (options.revocation === undefined || watched.get(socket) === true || socket.destroyed) return;
  watched.set(socket, true);
  const untrack = trackLivePeer(options, { transport: 'http' }, peer, () => socket.destroy());
  socket.once('close', untrack);
}
