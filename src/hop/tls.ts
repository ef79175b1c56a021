/**
 * Node `tls` and `https` at a hop. The TLS layer requests the peer's certificate but does not judge it
 * (`rejectUnauthorized: false` on servers): Lanyard's verifier does, with SPIFFE rules OpenSSL does not know,
 * and names the reason. On clients, OpenSSL still checks the chain against the bundle roots and
 * `checkServerIdentity` runs verifyX509Svid plus the authorizer in place of a host-name check.
 *
 * Rotation: servers follow the X509Source with `setSecureContext` on every `update` (the listener stays bound,
 * open connections keep their context); clients build their context from the source's current SVID for each
 * new connection.
 */
import { randomBytes } from 'node:crypto';
import * as https from 'node:https';
import { isIP } from 'node:net';
import type * as http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type { X509Bundle, X509BundleSource } from '../bundle';
import type { X509Source } from '../client/x509-source';
import type { X509Svid } from '../svid/x509-svid';
import { SourceNotReadyError } from '../errors';
import type { Authorizer } from '../verify/authorize';
import { verifyX509Svid, type VerifyX509SvidResult } from '../verify/verify-x509-svid';
import { encodePem } from '../x509/pem';
import { rootsPem } from '../client/certificate-provider';
import { canonicalHttpAction, type HttpActionOptions } from './http-action';
import { guardRequest, writeRefusal, type HttpGuard } from './http-guard';
import { httpVerifyOptions } from './http-peer';
import { HandshakeChains } from './connection-chain';
import { NOT_TRACKED, trackLivePeer } from './live-peers';
import { objectSlot } from './object-slot';
import {
  checkHopVerifyOptions,
  hopPeerOf,
  prepareHopVerifyOptions,
  type HopPeer,
  type HopVerifyOptions,
  checkHopPeer,
  verifyHopPeerSync,
} from './peer';
import { peerChainOf, socketPeerChain, withKnownIntermediates } from '../internal/peer-chain';

/** Options of every hop server helper: `bundles` defaults to the source itself. */
export interface HopServerOptions extends Omit<HopVerifyOptions, 'bundles'>, HttpActionOptions {
  source: X509Source;
  bundles?: X509BundleSource;
  /**
   * DER intermediates to complete a peer's chain with, besides the source SVID's own: a client resuming a TLS
   * session presents only its leaf.
   */
  intermediates?: readonly Uint8Array[];
  /** Trust domains whose roots the server names in its certificate request; default the source's own. */
  caTrustDomains?: readonly string[];
  /** Extra Node TLS options (e.g. `minVersion`); key, cert, ca, requestCert and rejectUnauthorized are ours. */
  tlsOptions?: tls.TlsOptions;
}

/**
 * The peer each accepted socket or request was accepted with: a private field of the object (object-slot.ts),
 * which on sockets and Node's own requests costs a property store where a WeakMap entry cost a hash insert and
 * ephemeron work in every scavenge. express's requests are the exception (`rememberRequestPeer`).
 */
const peers = objectSlot<HopPeer>();
/**
 * express's requests: express 5 gives every request its own hidden class, so a field added to one copies its
 * descriptors (about 1 KB a request); a WeakMap entry is the cheaper mark there (CPU profile of the express
 * bench: the field's store 1.2 % of the server thread, the entry 0.2 %).
 */
const requestPeers = new WeakMap<object, HopPeer>();

const TLS_REQUEST = Object.freeze({ transport: 'tls' as const });

/** An 'error' listener shared by every connection (Node calls it with the socket as `this`). */
function destroySocket(this: tls.TLSSocket): void {
  this.destroy();
}

/**
 * The verified peer of a socket or request that a hop helper accepted; undefined for anything it did not
 * accept (so a handler that reads it never mistakes an unverified connection for a verified one).
 */
export function peerOf(target: tls.TLSSocket | IncomingMessage): HopPeer | undefined {
  return peers.get(target) ?? requestPeers.get(target);
}

/** Marks `target` as accepted with `peer`, for helpers in this folder (fastify's raw request). */
export function rememberPeer(target: object, peer: HopPeer): void {
  peers.set(target, peer);
}

/** rememberPeer for a request whose hidden class is its own (express's). */
export function rememberRequestPeer(target: object, peer: HopPeer): void {
  requestPeers.set(target, peer);
}

function svidContextOptions(svid: X509Svid, caPem: string): tls.SecureContextOptions {
  return {
    // Exported only into this process's TLS stack.
    key: svid.privateKey.export({ type: 'pkcs8', format: 'pem' }),
    cert: svid.chain.map((c) => encodePem('CERTIFICATE', c.der)).join(''),
    ...(caPem !== '' ? { ca: caPem } : {}),
  };
}

/**
 * Options for `tls.createServer` / `https.createServer` from the source's current SVID: requestCert on,
 * rejectUnauthorized off (a hop helper or middleware verifies). Pair with `followSource` to rotate.
 * @throws LanyardError(ERR_SOURCE_NOT_READY) when the source has no current SVID.
 */
export function tlsServerOptions(
  source: X509Source,
  options: { caTrustDomains?: readonly string[]; tlsOptions?: tls.TlsOptions } = {},
): tls.TlsOptions {
  return {
    minVersion: 'TLSv1.2',
    ...options.tlsOptions,
    ...svidContextOptions(source.getX509Svid(), rootsPem(source, options.caTrustDomains)),
    requestCert: true,
    rejectUnauthorized: false,
  };
}

/**
 * Swaps `server`'s secure context in place whenever the source updates: new handshakes present the new SVID,
 * the listener is never re-bound. Returns a function that stops following (also called on 'close').
 */
export function followSource(
  server: tls.Server,
  source: X509Source,
  options: {
    caTrustDomains?: readonly string[];
    tlsOptions?: tls.TlsOptions;
    onError?: (e: Error) => void;
  } = {},
): () => void {
  const onUpdate = (): void => {
    try {
      server.setSecureContext({
        ...options.tlsOptions,
        ...svidContextOptions(source.getX509Svid(), rootsPem(source, options.caTrustDomains)),
      });
    } catch (e) {
      // Keep the last good context: an expired or missing SVID is refused by peers anyway.
      options.onError?.(e instanceof Error ? e : new Error(String(e)));
    }
  };
  source.on('update', onUpdate);
  const stop = (): void => {
    source.off('update', onUpdate);
  };
  server.once('close', stop);
  return stop;
}

/**
 * A TLS server whose every connection is verified and authorized before `listener` sees it; refused
 * connections are destroyed unread, and an accepted one is destroyed as soon as a notifying `revocation` checker
 * reports its peer's SVID or session revoked. `peerOf(socket)` gives the peer later.
 */
export function createHopTlsServer(
  options: HopServerOptions,
  listener: (socket: tls.TLSSocket, peer: HopPeer) => void,
): tls.Server {
  // Options first: a bad one must not leave a listener on the source.
  const verify = httpVerifyOptions(options);
  const server = tls.createServer(tlsServerOptions(options.source, options));
  followSource(server, options.source, options);
  const handshakes = new HandshakeChains(verify);
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    // The peer is verified once per connection: a TLS 1.2 renegotiation must not swap its certificate later
    // (HandshakeChains switches it off). Node reports an attempt as an 'error' and would carry on; the
    // connection ends instead.
    socket.on('error', destroySocket);
    let checked: HopPeer | Promise<HopPeer>;
    try {
      checked = checkHopPeer(handshakes.chains(socket), verify, TLS_REQUEST);
    } catch {
      socket.destroy();
      return;
    }
    if (checked instanceof Promise) {
      checked.then(
        (peer) => acceptConnection(socket, peer),
        () => socket.destroy(),
      );
    } else {
      acceptConnection(socket, checked);
    }
  });
  const acceptConnection = (socket: tls.TLSSocket, peer: HopPeer): void => {
    if (socket.destroyed) return;
    peers.set(socket, peer);
    // Checked once per connection: a later revocation of the peer closes it (live-peers.ts).
    const untrack = trackLivePeer(verify, TLS_REQUEST, peer, () => socket.destroy());
    if (untrack !== NOT_TRACKED) socket.once('close', untrack);
    listener(socket, peer);
  };
  // Handshake failures (a peer that aborts) have nothing to report to the application.
  server.on('tlsClientError', () => undefined);
  return server;
}

/**
 * An https server whose every request is verified and authorized (action `METHOD /canonical/path`, see
 * canonicalRequestPath; `caseSensitive` should say how `handler` routes) before `handler` runs; refused requests
 * get 400/401/403 with `{error: {code, message}}`. The peer is re-checked per request, so a
 * revocation applies to the next request on a kept-alive connection; with a notifying `revocation` checker the
 * connection (and any response still streaming on it) is also closed as soon as the revocation arrives.
 */
export function createHopHttpsServer(
  options: HopServerOptions,
  handler: (req: IncomingMessage, res: ServerResponse, peer: HopPeer) => void,
): https.Server {
  // Options first: a bad one must not leave a listener on the source.
  const verify = httpVerifyOptions(options);
  const server = https.createServer(tlsServerOptions(options.source, options));
  followSource(server, options.source, options);
  const guard: HttpGuard<IncomingMessage, ServerResponse, ServerResponse> = {
    action: (req) => canonicalHttpAction(req.method, req.url, options),
    socket: (req) => req.socket,
    accept: (req, peer, res) => {
      peers.set(req, peer);
      handler(req, res, peer);
    },
    refuse: writeRefusal,
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) =>
    guardRequest(guard, verify, req, res, res),
  );
  return server;
}

export interface HopClientOptions extends Omit<HopVerifyOptions, 'bundles' | 'authorize'> {
  source: X509Source;
  bundles?: X509BundleSource;
  /** Who the server must be (runs in the handshake, so synchronous): e.g. authorizeId(serviceB). */
  authorize: Authorizer;
  /** Trust domains whose roots OpenSSL checks the server chain against; default the source's own. */
  caTrustDomains?: readonly string[];
  /** Receives the verified server once the handshake has checked it. */
  onServer?: (peer: HopPeer) => void;
}

/**
 * Options for `https.request` / `tls.connect` from the source's current SVID (call it per request to follow
 * rotation, or use `HopHttpsAgent` to keep connections alive): the client certificate, the bundle roots, and
 * `checkServerIdentity` replaced by verifyX509Svid + `authorize` (Node runs it during the handshake; an error
 * aborts the connection before any data is sent). Set `servername` yourself when the server needs SNI.
 *
 * Every use is a fresh, fully checked handshake: `agent: false` keeps `https.request` off Node's global agent
 * (which pools sockets by host and port only, so a request checked for one server identity would ride a socket
 * another check accepted), `session: undefined` stops any agent from resuming a TLS session (Node skips
 * `checkServerIdentity` on a resumed one), and a per-call `sessionIdContext` (part of an agent's pool key, unused
 * by TLS clients) keeps even a caller-supplied agent from sharing sockets or sessions between calls.
 */
export function tlsClientOptions(options: HopClientOptions): HopTlsClientOptions {
  return hopClientOptions(options, clientVerifyOptions(options));
}

/** tlsClientOptions with the verify options made once (HopHttpsAgent) and the server's chain reported. */
function hopClientOptions(
  options: HopClientOptions,
  verify: HopVerifyOptions,
  onChain?: (chain: Uint8Array[]) => void,
): HopTlsClientOptions {
  const svid = options.source.getX509Svid();
  const caPem = clientRootsPem(options.source, options.caTrustDomains);
  if (caPem === '') {
    throw new SourceNotReadyError('the source has no bundle to check the server against');
  }
  return {
    secureContext: clientContext(svid, caPem),
    rejectUnauthorized: true,
    agent: false,
    session: undefined,
    sessionIdContext: nextSessionIdContext(),
    checkServerIdentity: checkServer.bind(new ServerCheck(options, verify, onChain)),
  };
}

/** What checkServer needs of one tlsClientOptions call. */
class ServerCheck {
  constructor(
    readonly options: HopClientOptions,
    readonly verify: HopVerifyOptions,
    readonly onChain: ((chain: Uint8Array[]) => void) | undefined,
  ) {}
}

/**
 * The `checkServerIdentity` of a tlsClientOptions call, bound to that call's ServerCheck (a bound function
 * costs less to make per connection than a closure named by a `checkServerIdentity:` property under tsx).
 */
function checkServer(this: ServerCheck, _host: string, cert: tls.PeerCertificate): Error | undefined {
  try {
    // Node has just read the detailed chain for this call; nobody needs to read it again.
    const chain = withKnownIntermediates(peerChainOf(cert), this.options.source);
    this.onChain?.(chain);
    const peer = verifyHopPeerSync(chain, this.verify, CLIENT_TLS_REQUEST);
    this.options.onServer?.(peer);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}

const CLIENT_TLS_REQUEST = Object.freeze({ transport: 'tls' as const });

/**
 * A `sessionIdContext` unique to each call (32 hex digits: a random prefix drawn once per process, then a
 * counter). It is part of an https agent's pool key and unused by a TLS client, so unique is all it must be;
 * a counter is that without a UUID drawn, formatted and stripped of its dashes per connection.
 */
const sessionIdPrefix = randomBytes(8).toString('hex');
let sessionIdCount = 0;

function nextSessionIdContext(): string {
  sessionIdCount = sessionIdCount >= Number.MAX_SAFE_INTEGER ? 0 : sessionIdCount + 1;
  return sessionIdPrefix + sessionIdCount.toString(16).padStart(16, '0');
}

/**
 * The PEM of each bundle object. A client encoded its own trust domain's roots on every call (a tenth of
 * tlsClientOptions); a bundle never changes (the source hands out a new object when it does), so its PEM is
 * made once. The same string each time also lets clientContext's look-up use its cached hash.
 */
const bundlePems = new WeakMap<X509Bundle, string>();

function clientRootsPem(source: X509Source, caTrustDomains: readonly string[] | undefined): string {
  // An explicit list (federation) is rare on a hot path: the shared function, as it was.
  if (caTrustDomains !== undefined) return rootsPem(source, caTrustDomains);
  let bundle: X509Bundle | undefined;
  try {
    bundle = source.getX509BundleForTrustDomain(source.getX509Svid().id.trustDomain);
  } catch {
    return '';
  }
  if (bundle === undefined) return '';
  let pem = bundlePems.get(bundle);
  if (pem === undefined) bundlePems.set(bundle, (pem = bundle.toPem()));
  return pem;
}

/**
 * Client secure contexts, per SVID object and CA list. Making one parses the key, the chain and the roots (several
 * milliseconds with OpenSSL 3, more than the handshake's own cryptography), so a client connecting often reuses
 * it while the source hands out the same SVID and the bundle gives the same roots; a rotation brings a new SVID
 * object and so a new context. Sharing a context shares no TLS session: Node keeps no client session cache in it
 * (a session is resumed only when passed as `session`, which these options never do).
 */
const clientContexts = new WeakMap<X509Svid, Map<string, tls.SecureContext>>();
/** Different CA lists for one SVID (a client per caTrustDomains choice) are few; past this, start over. */
const MAX_CONTEXTS_PER_SVID = 8;

function clientContext(svid: X509Svid, caPem: string): tls.SecureContext {
  let byRoots = clientContexts.get(svid);
  if (byRoots === undefined) clientContexts.set(svid, (byRoots = new Map()));
  let context = byRoots.get(caPem);
  if (context === undefined) {
    context = tls.createSecureContext(svidContextOptions(svid, caPem));
    if (byRoots.size >= MAX_CONTEXTS_PER_SVID) byRoots.clear();
    byRoots.set(caPem, context);
  }
  return context;
}

/** What tlsClientOptions returns: Node's connection options, never pooled and never resumed. */
export type HopTlsClientOptions = tls.ConnectionOptions & {
  agent: false;
  session: undefined;
  sessionIdContext: string;
};

function clientVerifyOptions(options: HopClientOptions): HopVerifyOptions {
  const made = clientVerifies.get(options.source);
  if (made !== undefined) {
    for (const kept of made) if (madeFrom(kept, options)) return kept.verify;
  }
  const verify = prepareHopVerifyOptions(
    checkHopVerifyOptions({
      ...options,
      bundles: options.bundles ?? options.source,
      // A client that trusts a domain's roots for its server (caTrustDomains) has chosen to call into it.
      federatedTrustDomains: Object.freeze([
        ...(options.federatedTrustDomains ?? []),
        ...(options.caTrustDomains ?? []),
      ]),
    }),
  );
  const kept: ClientVerify = { keys: [], values: [], domains: [], verify };
  for (const key in options) {
    if (key === 'onServer') continue;
    kept.keys.push(key);
    kept.values.push(options[key as keyof HopClientOptions]);
  }
  kept.domains.push(...(options.federatedTrustDomains ?? []), ...(options.caTrustDomains ?? []));
  if (made === undefined) clientVerifies.set(options.source, [kept]);
  else {
    // The oldest first: a bound for a caller that changes its options on every call, not a recency order.
    if (made.length >= MAX_VERIFIES_PER_SOURCE) made.shift();
    made.push(kept);
  }
  return verify;
}

/**
 * The verify options made for each source, and what each was made from. A client calls tlsClientOptions for
 * every connection, usually with a new options object of the same values (`tlsClientOptions({ source,
 * authorize })`), and making them (a copy of the options, the domain lists joined, the verifier's options) was
 * the largest part of the call (about a quarter of what the client helper added to a handshake, CPU profile of
 * the handshake bench): options of the same own properties, the same values and domain lists of the same
 * contents get the ones made before, whichever object holds them. A property added, removed or set to another
 * value, or a domain list whose contents changed in place, makes them anew. `onServer` is left out: the verify
 * options never read it (hopClientOptions calls it), and a caller may well pass a new one per connection.
 */
const clientVerifies = new WeakMap<X509Source, ClientVerify[]>();
/** Option sets kept per source (one per server identity a client calls, typically); past this, the oldest go. */
const MAX_VERIFIES_PER_SOURCE = 8;

interface ClientVerify {
  /** The own enumerable keys of the options they were made from, in order, without onServer; their values. */
  keys: string[];
  values: unknown[];
  /** The contents of federatedTrustDomains then caTrustDomains when they were made. */
  domains: unknown[];
  verify: HopVerifyOptions;
}

function madeFrom(made: ClientVerify, options: HopClientOptions): boolean {
  let i = 0;
  for (const key in options) {
    if (key === 'onServer') continue;
    if (made.keys[i] !== key || made.values[i] !== options[key as keyof HopClientOptions]) return false;
    i++;
  }
  if (i !== made.keys.length) return false;
  let j = 0;
  for (const list of [options.federatedTrustDomains, options.caTrustDomains]) {
    for (const d of list ?? []) if (made.domains[j++] !== d) return false;
  }
  return j === made.domains.length;
}

/** The parts of Node's http.Agent this agent relies on that @types/node does not declare. */
interface AgentInternals {
  addRequest(req: http.ClientRequest, options: http.RequestOptions): void;
  removeSocket(socket: Duplex, options: http.RequestOptions): void;
}

/**
 * An https.Agent for calls to Lanyard-protected services, with kept-alive connections: every new connection
 * takes the source's current SVID and checks the server as `tlsClientOptions` does. The pool is this agent's
 * own, so every pooled connection was checked with this agent's `authorize`; use one agent per server identity
 * you authorize. TLS sessions are never resumed (Node skips checkServerIdentity on a resumed session; should one
 * be resumed anyway, the server is checked on 'secureConnect' and the connection ends if it fails).
 *
 * Before every request, each kept-alive connection waiting in the pool has its server's chain verified again
 * (expiry, trust bundle, revocation); one that fails is closed, so the request opens a new connection and
 * goes through the full check, and a revoked or expired server is refused from the next request on. With a
 * notifying `revocation` checker, a connection to a server revoked since is closed as soon as that arrives.
 */
export class HopHttpsAgent extends https.Agent {
  private readonly verify: HopVerifyOptions;
  private readonly serverChains = new WeakMap<Duplex, Uint8Array[]>();
  private readonly connectOptions = new WeakMap<Duplex, http.RequestOptions>();

  constructor(
    private readonly hop: HopClientOptions,
    agentOptions: https.AgentOptions = {},
  ) {
    super({ keepAlive: true, ...agentOptions, maxCachedSessions: 0 });
    this.verify = clientVerifyOptions(hop);
  }

  override createConnection(
    options: http.RequestOptions & tls.ConnectionOptions,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    let ours: HopTlsClientOptions;
    let checkedChain: Uint8Array[] | undefined;
    try {
      ours = hopClientOptions(this.hop, this.verify, (chain) => {
        checkedChain = chain;
      });
    } catch (e) {
      // No current SVID: the request fails with the reason instead of connecting without one.
      callback?.(e instanceof Error ? e : new Error(String(e)), undefined as unknown as Duplex);
      return undefined;
    }
    const { agent: _agent, sessionIdContext: _context, ...client } = ours;
    const { servername, ...rest } = options;
    // An IP address is not a valid SNI name (RFC 6066); the server is identified by SPIFFE ID anyway.
    const sni = servername !== undefined && servername !== '' && isIP(servername) === 0 ? { servername } : {};
    const socket = tls.connect({ ...(rest as tls.ConnectionOptions), ...client, ...sni });
    this.connectOptions.set(socket, options);
    socket.once('secureConnect', () => {
      // checkServerIdentity verified (and reported) a full handshake and kept the chain it read; a resumed one
      // is read and checked here.
      const resumed = socket.isSessionReused() || checkedChain === undefined;
      const chain = resumed
        ? withKnownIntermediates(socketPeerChain(socket), this.hop.source)
        : checkedChain!;
      this.serverChains.set(socket, chain);
      let server: HopPeer;
      try {
        server = resumed
          ? verifyHopPeerSync(chain, this.verify, { transport: 'tls' })
          : hopPeerOf(this.verifiedChain(chain));
      } catch (e) {
        socket.destroy(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      // A response still streaming from a server revoked since is cut, not only the next request refused.
      const untrack = trackLivePeer(this.verify, { transport: 'tls' }, server, () => socket.destroy());
      socket.once('close', untrack);
    });
    return socket;
  }

  /** Node's Agent runs this for every request, before it takes a pooled connection. */
  addRequest(req: http.ClientRequest, options: http.RequestOptions): void {
    this.closeStaleConnections();
    (https.Agent.prototype as unknown as AgentInternals).addRequest.call(this, req, options);
  }

  private closeStaleConnections(): void {
    for (const list of Object.values(this.freeSockets)) {
      for (const socket of [...(list ?? [])]) {
        if (this.stillValid(socket)) continue;
        socket.destroy();
        // Out of the pool now, not at 'close': the request being added must not be handed this socket.
        (this as unknown as AgentInternals).removeSocket(socket, this.connectOptions.get(socket) ?? {});
      }
    }
  }

  private stillValid(socket: Duplex): boolean {
    const chain = this.serverChains.get(socket);
    if (chain === undefined || socket.destroyed) return false;
    try {
      this.verifiedChain(chain);
      return true;
    } catch {
      return false;
    }
  }

  private verifiedChain(chain: readonly Uint8Array[]): VerifyX509SvidResult {
    return verifyX509Svid(chain, this.verify.bundles, {
      ...(this.verify.trustDomain !== undefined ? { trustDomain: this.verify.trustDomain } : {}),
      ...(this.verify.revocation !== undefined ? { revocation: this.verify.revocation } : {}),
      ...(this.verify.cache !== undefined ? { cache: this.verify.cache } : {}),
      ...(this.verify.agentContextOid !== undefined ? { agentContextOid: this.verify.agentContextOid } : {}),
    });
  }
}
