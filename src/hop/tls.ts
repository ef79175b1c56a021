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
import * as https from 'node:https';
import { isIP } from 'node:net';
import type * as http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type { X509BundleSource } from '../bundle';
import type { X509Source, X509Svid } from '../client/x509-source';
import { ErrorCode, LanyardError } from '../errors';
import type { Authorizer } from '../verify/authorize';
import { encodePem } from '../x509/pem';
import { rootsPem } from './certificate-provider';
import { httpRefusal } from './http-refusal';
import { verifyHttpPeer } from './http-peer';
import { type HopPeer, type HopVerifyOptions, verifyHopPeer, verifyHopPeerSync } from './peer';
import { socketPeerChain, peerChainOf } from './peer-chain';

/** Options of every hop server helper: `bundles` defaults to the source itself. */
export interface HopServerOptions extends Omit<HopVerifyOptions, 'bundles'> {
  source: X509Source;
  bundles?: X509BundleSource;
  /** Trust domains whose roots the server names in its certificate request; default the source's own. */
  caTrustDomains?: readonly string[];
  /** Extra Node TLS options (e.g. `minVersion`); key, cert, ca, requestCert and rejectUnauthorized are ours. */
  tlsOptions?: tls.TlsOptions;
}

const peers = new WeakMap<object, HopPeer>();

/**
 * The verified peer of a socket or request that a hop helper accepted; undefined for anything it did not
 * accept (so a handler that reads it never mistakes an unverified connection for a verified one).
 */
export function peerOf(target: tls.TLSSocket | IncomingMessage): HopPeer | undefined {
  return peers.get(target);
}

/** Marks `target` as accepted with `peer`, for helpers in this folder (express, fastify). */
export function rememberPeer(target: object, peer: HopPeer): void {
  peers.set(target, peer);
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

function verifyOptions(o: HopServerOptions): HopVerifyOptions {
  return { ...o, bundles: o.bundles ?? o.source };
}

/**
 * A TLS server whose every connection is verified and authorized before `listener` sees it; refused
 * connections are destroyed unread. `peerOf(socket)` gives the peer later.
 */
export function createHopTlsServer(
  options: HopServerOptions,
  listener: (socket: tls.TLSSocket, peer: HopPeer) => void,
): tls.Server {
  const server = tls.createServer(tlsServerOptions(options.source, options));
  followSource(server, options.source, options);
  const verify = verifyOptions(options);
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    // The peer is verified once per connection: a TLS 1.2 renegotiation must not swap its certificate later.
    // Node reports an attempt as an 'error' and would carry on; the connection ends instead.
    socket.disableRenegotiation();
    socket.on('error', () => socket.destroy());
    verifyHopPeer(socketPeerChain(socket), verify, { transport: 'tls' }).then(
      (peer) => {
        if (socket.destroyed) return;
        peers.set(socket, peer);
        listener(socket, peer);
      },
      () => socket.destroy(),
    );
  });
  // Handshake failures (a peer that aborts) have nothing to report to the application.
  server.on('tlsClientError', () => undefined);
  return server;
}

/**
 * An https server whose every request is verified and authorized (action `METHOD /path`) before `handler`
 * runs; refused requests get 401/403 with `{error: {code, message}}`. The peer is re-checked per request, so a
 * revocation applies to the next request on a kept-alive connection.
 */
export function createHopHttpsServer(
  options: HopServerOptions,
  handler: (req: IncomingMessage, res: ServerResponse, peer: HopPeer) => void,
): https.Server {
  const server = https.createServer(tlsServerOptions(options.source, options));
  followSource(server, options.source, options);
  const verify = verifyOptions(options);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const action = `${req.method ?? 'GET'} ${(req.url ?? '/').split('?')[0]}`;
    verifyHttpPeer(req.socket, verify, action).then(
      (peer) => {
        peers.set(req, peer);
        handler(req, res, peer);
      },
      (e: unknown) => {
        const r = httpRefusal(e);
        res.writeHead(r.status, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify(r.body));
      },
    );
  });
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
 * Options for `tls.connect` / `https.request` from the source's current SVID (call it per connection to follow
 * rotation, or use `HopHttpsAgent`): the client certificate, the bundle roots, and `checkServerIdentity`
 * replaced by verifyX509Svid + `authorize` (Node runs it during the handshake; an error aborts the connection
 * before any data is sent). Set `servername` yourself when the server needs SNI.
 */
export function tlsClientOptions(options: HopClientOptions): tls.ConnectionOptions {
  const svid = options.source.getX509Svid();
  const caPem = rootsPem(options.source, options.caTrustDomains);
  if (caPem === '') {
    throw new LanyardError(
      ErrorCode.SOURCE_NOT_READY,
      'the source has no bundle to check the server against',
    );
  }
  const verify: HopVerifyOptions = {
    ...options,
    bundles: options.bundles ?? options.source,
  };
  return {
    secureContext: tls.createSecureContext(svidContextOptions(svid, caPem)),
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: tls.PeerCertificate): Error | undefined => {
      try {
        const peer = verifyHopPeerSync(peerChainOf(cert), verify, { transport: 'tls' });
        options.onServer?.(peer);
        return undefined;
      } catch (e) {
        return e instanceof Error ? e : new Error(String(e));
      }
    },
  };
}

/**
 * An https.Agent for calls to Lanyard-protected services: every new connection takes the source's current SVID
 * and checks the server as `tlsClientOptions` does. TLS session caching is off so that every handshake runs the
 * check (Node skips checkServerIdentity on a resumed session).
 */
export class HopHttpsAgent extends https.Agent {
  constructor(
    private readonly hop: HopClientOptions,
    agentOptions: https.AgentOptions = {},
  ) {
    super({ keepAlive: true, ...agentOptions, maxCachedSessions: 0 });
  }

  override createConnection(
    options: http.RequestOptions & tls.ConnectionOptions,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    let ours: tls.ConnectionOptions;
    try {
      ours = tlsClientOptions(this.hop);
    } catch (e) {
      // No current SVID: the request fails with the reason instead of connecting without one.
      callback?.(e instanceof Error ? e : new Error(String(e)), undefined as unknown as Duplex);
      return undefined;
    }
    const { servername, ...rest } = options;
    // An IP address is not a valid SNI name (RFC 6066); the server is identified by SPIFFE ID anyway.
    const sni = servername !== undefined && servername !== '' && isIP(servername) === 0 ? { servername } : {};
    return tls.connect({ ...(rest as tls.ConnectionOptions), ...ours, ...sni });
  }
}
