/**
 * A mutual-TLS server and client on 127.0.0.1 that authenticate each other with X509-SVIDs and put Lanyard's
 * verifier in the handshake path:
 *  - the server lets Node's TLS layer check the client chain against the roots (unless told not to), then in
 *    'secureConnection' runs verifyX509Svid and an authorizer on the client's chain and destroys the socket,
 *    unread, when either refuses;
 *  - the client runs verifyX509Svid and an authorizer on the server's chain inside `checkServerIdentity`, which
 *    Node calls during the handshake; returning the error aborts the connection before any data is sent.
 *
 * Nothing here waits on a clock: every outcome is settled by a socket's 'close' event.
 */
import { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import type { X509BundleSource } from '../../../../src/bundle';
import {
  Authorizer,
  RevocationChecker,
  VerificationCache,
  VerifyX509SvidResult,
  verifyX509Svid,
} from '../../../../src/verify';
import { certsPem, keyPem, Svid } from '../../../support/pki';

/** What the server knows about one client connection once it has closed. */
export interface ServerConnection {
  /** Node emitted 'secureConnection': its TLS layer accepted the client and handed it to the application. */
  reachedApplication: boolean;
  /** The client as Lanyard verified and authorized it. */
  peer?: VerifyX509SvidResult;
  /** Why Lanyard's verifier or the authorizer refused the client; the socket was then destroyed unread. */
  refusal?: unknown;
  /** Application data the server read from the client. */
  received: string;
}

export interface SvidServerOptions {
  svid: Svid;
  /** PEM of the roots Node's TLS layer trusts for client chains. */
  caPem: string;
  /** Where Lanyard's verifier finds the bundle of the client's trust domain. */
  bundles: X509BundleSource;
  authorizer: Authorizer;
  revocation?: RevocationChecker;
  /** Node's own check of the client chain (default true); false leaves the client chain to Lanyard alone. */
  rejectUnauthorized?: boolean;
}

/** What the server answers a verified client: what it saw of that client. */
export interface ServerReply {
  peer: string;
  principal: string | undefined;
  scopes: string[] | undefined;
  delegatedBy: string[];
  request: string;
}

interface Pending<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}

function pending<T>(): Pending<T> {
  let resolve: ((value: T) => void) | undefined;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve: (v) => resolve?.(v) };
}

/**
 * The certificates a TLS peer presented, leaf first, as DER: Node's detailed peer certificate links each
 * certificate to its issuer (the last one, found in the local trust store, links to itself).
 */
export function peerChain(cert: tls.PeerCertificate | tls.DetailedPeerCertificate): Uint8Array[] {
  const chain: Uint8Array[] = [];
  const seen = new Set<string>();
  let current: tls.PeerCertificate | tls.DetailedPeerCertificate | undefined = cert;
  while (current?.raw !== undefined && !seen.has(current.fingerprint256)) {
    seen.add(current.fingerprint256);
    chain.push(new Uint8Array(current.raw));
    current = 'issuerCertificate' in current ? current.issuerCertificate : undefined;
  }
  return chain;
}

export class SvidServer {
  private readonly records = new Map<
    number,
    { record: ServerConnection; closed: Pending<ServerConnection> }
  >();
  private readonly sockets = new Set<Socket>();
  private readonly cache = new VerificationCache();

  private constructor(
    private readonly server: tls.Server,
    private readonly options: SvidServerOptions,
  ) {
    server.on('connection', (raw: Socket) => this.onConnection(raw));
    server.on('secureConnection', (socket: tls.TLSSocket) => this.onSecureConnection(socket));
    // Handshake failures are read from the connection records; without a listener Node would only log them.
    server.on('tlsClientError', () => undefined);
  }

  static async start(options: SvidServerOptions): Promise<SvidServer> {
    const server = tls.createServer({
      key: keyPem(options.svid.key.privateKey),
      cert: certsPem(options.svid.chain),
      ca: options.caPem,
      requestCert: true,
      rejectUnauthorized: options.rejectUnauthorized ?? true,
      minVersion: 'TLSv1.3',
    });
    const svidServer = new SvidServer(server, options);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return svidServer;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The record of the connection made from client port `clientPort`, settled when that connection closed. */
  connectionFrom(clientPort: number): Promise<ServerConnection> {
    return this.entry(clientPort).closed.promise;
  }

  /** Stop listening and destroy every connection still open; resolves once the server has closed. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private entry(port: number): { record: ServerConnection; closed: Pending<ServerConnection> } {
    let e = this.records.get(port);
    if (e === undefined) {
      e = { record: { reachedApplication: false, received: '' }, closed: pending() };
      this.records.set(port, e);
    }
    return e;
  }

  private onConnection(raw: Socket): void {
    const port = raw.remotePort;
    if (port === undefined) return;
    const { record, closed } = this.entry(port);
    this.sockets.add(raw);
    raw.on('error', () => undefined);
    raw.once('close', () => {
      this.sockets.delete(raw);
      closed.resolve(record);
    });
  }

  private onSecureConnection(socket: tls.TLSSocket): void {
    socket.on('error', () => undefined);
    const port = socket.remotePort;
    if (port === undefined) {
      socket.destroy();
      return;
    }
    const { record } = this.entry(port);
    record.reachedApplication = true;
    let peer: VerifyX509SvidResult;
    try {
      peer = verifyX509Svid(peerChain(socket.getPeerCertificate(true)), this.options.bundles, {
        cache: this.cache,
        ...(this.options.revocation !== undefined ? { revocation: this.options.revocation } : {}),
      });
      this.options.authorizer(peer);
    } catch (e) {
      // Refused before a single byte of the client's data is read.
      record.refusal = e;
      socket.destroy();
      return;
    }
    record.peer = peer;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      record.received += chunk;
      if (!record.received.endsWith('\n')) return;
      const reply: ServerReply = {
        peer: peer.id.toString(),
        principal: peer.context?.principal.id,
        scopes: peer.context?.scopes,
        delegatedBy: peer.context?.delegation.map((l) => l.spiffeId) ?? [],
        request: record.received.trim(),
      };
      socket.end(`${JSON.stringify(reply)}\n`);
    });
  }
}

export interface ClientOptions {
  port: number;
  svid: Svid;
  /** PEM of the roots Node's TLS layer trusts for the server chain. */
  caPem: string;
  bundles: X509BundleSource;
  /** Who the server must be: runs on the verified server SVID in place of a hostname check. */
  authorizer: Authorizer;
  /** One line sent once the handshake has completed. */
  request: string;
}

export interface ClientOutcome {
  /** The server as Lanyard verified and authorized it inside checkServerIdentity. */
  server?: VerifyX509SvidResult;
  /** What ended the connection, if anything did: the checkServerIdentity verdict or a transport error. */
  error?: Error;
  /** 'secureConnect' fired and the request was written. */
  sentRequest: boolean;
  /** TLS version negotiated, read at 'secureConnect'. */
  protocol?: string;
  /** What the server sent back. */
  received: string;
  /** The client's local port: finds the server's record of this connection. */
  localPort?: number;
  /** The server's certificate as Node handed it to checkServerIdentity. */
  serverCertificate?: tls.PeerCertificate;
}

/** Connect, verify the server inside the handshake, send `request`, and settle once the connection has closed. */
export function connectWithSvid(options: ClientOptions): Promise<ClientOutcome> {
  const outcome: ClientOutcome = { sentRequest: false, received: '' };
  const cache = new VerificationCache();
  return new Promise<ClientOutcome>((resolve) => {
    const socket: tls.TLSSocket = tls.connect({
      host: '127.0.0.1',
      port: options.port,
      key: keyPem(options.svid.key.privateKey),
      cert: certsPem(options.svid.chain),
      ca: options.caPem,
      minVersion: 'TLSv1.3',
      // Called by Node during the handshake with the server's detailed certificate; an Error aborts it.
      checkServerIdentity: (_hostname, cert) => {
        outcome.serverCertificate = cert;
        try {
          const server = verifyX509Svid(peerChain(cert), options.bundles, { cache });
          options.authorizer(server);
          outcome.server = server;
          return undefined;
        } catch (e) {
          return e instanceof Error ? e : new Error(String(e));
        }
      },
    });
    socket.once('connect', () => {
      outcome.localPort = socket.localPort;
    });
    socket.once('secureConnect', () => {
      outcome.protocol = socket.getProtocol() ?? undefined;
      outcome.sentRequest = true;
      socket.write(`${options.request}\n`);
    });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      outcome.received += chunk;
    });
    socket.on('error', (e: Error) => {
      outcome.error ??= e;
    });
    socket.once('close', () => resolve(outcome));
  });
}
