/** The verification step shared by the HTTP helpers (https server, express, fastify): per request, not per connection. */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { X509BundleSource } from '../bundle';
import type { X509Source } from '../client/x509-source';
import { trackLivePeer } from './live-peers';
import {
  authorizeHopPeer,
  checkHopPeer,
  checkHopVerifyOptions,
  hopServiceName,
  prepareHopVerifyOptions,
  type HopPeer,
  type HopVerifyOptions,
  type PeerChains,
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
 * the peer's chain is done once per connection (connection-chain.ts), and a kept-alive connection's next
 * request is answered from its kept verdict (recallHttpPeer) while the clock, the bundle and revocation still
 * hold.
 * @throws LanyardError for a refusal (synchronously, or as the promise's rejection).
 */
export function checkHttpPeer(
  socket: Socket,
  options: HttpVerifyOptions,
  action: string,
): HopPeer | Promise<HopPeer> {
  return recallHttpPeer(socket, options, action) ?? checkHttpPeerFully(socket, options, action);
}

/**
 * What a kept-alive connection's later requests are checked by, set when one of its requests was allowed on the
 * full path: the helper's options, the service's own SVID object then (a rotation may bring other intermediates,
 * another own trust domain and another service name, so a new object sends the request down the full path), the
 * chains the connection verified by, whose KeptVerdict holds the verdict, and the service's name.
 */
interface KeptConnection {
  readonly options: HttpVerifyOptions;
  readonly own: unknown;
  readonly chains: PeerChains;
  readonly service: string;
}

/** Each connection's KeptConnection, in a private field of its socket: the one look-up a request makes. */
const keptConnections = objectSlot<KeptConnection>();

/**
 * The request's check on a kept-alive connection, or undefined to take the full path: the same options and
 * own SVID object as when the connection's verdict was kept, and the verdict re-checked for now (the clock
 * inside the path's validity, the same bundle object, the revocation checker asked afresh: KeptVerdict.recall,
 * the very check the full path makes first). The authorizer or policy then runs for this request's action and
 * the decision is reported, as on the full path.
 */
function recallHttpPeer(
  socket: Socket,
  options: HttpVerifyOptions,
  action: string,
): HopPeer | Promise<HopPeer> | undefined {
  const kept = keptConnections.get(socket);
  if (kept === undefined || kept.options !== options || ownSvid(options) !== kept.own) return undefined;
  const chain = kept.chains.chain;
  const svid = kept.chains.kept?.recall(options, chain);
  if (svid === undefined) return undefined;
  return authorizeHopPeer(svid, chain, options, kept.service, { transport: 'http', action });
}

/** The service's own SVID object, which a connection's completed chain was made with; undefined with none. */
function ownSvid(options: HttpVerifyOptions): unknown {
  try {
    return options.chainSource?.getX509Svid();
  } catch {
    // No current SVID: the chain was completed with `intermediates` alone (connection-chain.ts), likewise.
    return undefined;
  }
}

/** The check without a kept verdict of the connection: its chains, verified (or recalled), then authorized. */
function checkHttpPeerFully(
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
  const own = ownSvid(options);
  const peer = checkHopPeer(connectionChains(socket as TLSSocket, options), options, {
    transport: 'http',
    action,
  });
  if (!(peer instanceof Promise)) {
    allowedOnConnection(socket as TLSSocket, options, own, peer);
    return peer;
  }
  return peer.then((p) => {
    allowedOnConnection(socket as TLSSocket, options, own, p);
    return p;
  });
}

/**
 * After an allow on the full path: the connection is watched for a revocation, and its verdict is recalled for
 * its next requests. Not kept where the own SVID read here is not what names the service (a `source` other than
 * the chain source), so that the name a decision gives is always the full path's.
 */
function allowedOnConnection(
  socket: TLSSocket,
  options: HttpVerifyOptions,
  own: unknown,
  peer: HopPeer,
): void {
  watchConnection(socket, options, peer);
  if (options.chainSource === undefined || ownSvid(options) !== own) return;
  if (options.service === undefined && (options.source as unknown) !== options.chainSource) return;
  const kept = keptConnections.get(socket);
  const chains = connectionChains(socket, options);
  if (kept?.options === options && kept.own === own && kept.chains === chains) return;
  keptConnections.set(socket, { options, own, chains, service: hopServiceName(options) });
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
