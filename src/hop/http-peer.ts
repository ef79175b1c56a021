/** The verification step shared by the HTTP helpers (https server, express, fastify): per request, not per connection. */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { X509BundleSource } from '../bundle';
import type { X509Source } from '../client/x509-source';
import { trackLivePeer } from './live-peers';
import { checkHopVerifyOptions, type HopPeer, type HopVerifyOptions, verifyHopPeer } from './peer';
import type { HttpActionOptions } from './http-action';
import { type OwnChainSource, socketPeerChain, withKnownIntermediates } from '../internal/peer-chain';

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

export function httpVerifyOptions(o: HopHttpOptions): HttpVerifyOptions {
  return checkHopVerifyOptions({ ...o, bundles: o.bundles ?? o.source, chainSource: o.source });
}

const chains = new WeakMap<object, Uint8Array[]>();

/**
 * The peer's chain, read once per connection: Node builds the detailed certificate objects anew on every call,
 * which costs more than the (cached) verification. Renegotiation is switched off first, because it is the one
 * way a peer's certificate could change within a connection (TLS 1.3 has none anyway).
 */
function connectionChain(socket: TLSSocket): Uint8Array[] {
  let chain = chains.get(socket);
  if (chain === undefined) {
    socket.disableRenegotiation();
    chain = socketPeerChain(socket);
    chains.set(socket, chain);
  }
  return chain;
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
  const peer = await verifyHttpPeerOnce(socket, options, action);
  watchConnection(socket, options, peer);
  return peer;
}

const watched = new WeakSet<Socket>();

/**
 * A kept-alive connection (and a response still streaming on it) would run until its next request: it is
 * closed as soon as a notifying revocation checker reports its peer revoked. Once per connection: the peer's
 * certificate cannot change within it (renegotiation is off).
 */
function watchConnection(socket: Socket, options: HttpVerifyOptions, peer: HopPeer): void {
  if (watched.has(socket) || socket.destroyed) return;
  watched.add(socket);
  const untrack = trackLivePeer(options, { transport: 'http' }, peer, () => socket.destroy());
  socket.once('close', untrack);
}

function verifyHttpPeerOnce(socket: Socket, options: HttpVerifyOptions, action: string): Promise<HopPeer> {
  const tlsSocket = socket as Partial<TLSSocket>;
  const chain =
    typeof tlsSocket.getPeerCertificate === 'function'
      ? withKnownIntermediates(
          connectionChain(socket as TLSSocket),
          options.chainSource,
          options.intermediates,
        )
      : [];
  return verifyHopPeer(chain, options, {
    transport: 'http',
    action,
    ...(typeof tlsSocket.getPeerCertificate !== 'function'
      ? { noCertificateMessage: 'not a TLS connection: this service needs mutual TLS with an X509-SVID' }
      : {}),
  });
}
