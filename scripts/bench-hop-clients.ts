/**
 * The client side of `scripts/bench-hop.ts`, in a worker thread: the servers keep the main thread to themselves,
 * so the CPU a server spends per handshake or request can be read from that thread alone, and clients on the
 * other core are not what limits the server. Answers one message per measuring window.
 */
import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { createPrivateKey } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { X509Bundle } from '../src/bundle';
import { StaticX509Source } from '../src/client/static-x509-source';
import { tlsClientOptions } from '../src/hop/tls';
import { TrustDomain } from '../src/spiffe';
import { toX509Svid } from '../src/svid/x509-svid';
import { authorizeId } from '../src/verify';

/** What the worker is started with: the client SVID and the bundle, as PEM and DER. */
export interface HopClientsSetup {
  trustDomain: string;
  serviceId: string;
  keyPem: string;
  certPem: string;
  chainDer: Uint8Array[];
  caPem: string;
}

/**
 * `plain-handshake`: Node TLS, one secure context made once (key, cert, CA file), no host-name check (SVIDs
 * have none). `lanyard-handshake`: tlsClientOptions per connection, as a client following rotation calls it.
 * `request`: GET over kept-alive TLS connections opened once per server with the plain client's context, by a
 * minimal HTTP/1.1 client (RequestConnection); the same client for both servers of a pair, so only the server
 * differs.
 */
export type HopClientKind = 'plain-handshake' | 'lanyard-handshake' | 'request';

export interface HopWindow {
  kind: HopClientKind;
  port: number;
  seconds: number;
  concurrency: number;
}

export interface HopWindowResult {
  ops: number;
  wallNs: number;
  /** CPU time of the client thread over the window. */
  clientCpuNs: number;
  /** Request connections the server had closed and that were opened again in this window (a handshake each). */
  reopened: number;
}

/**
 * CPU time of the calling thread in nanoseconds (Linux schedstat); undefined where the kernel has none. Read
 * from the thread itself, so the servers' and the clients' threads are measured apart.
 */
export function threadCpuNs(): number | undefined {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);
  } catch {
    return undefined;
  }
}

function handshake(port: number, options: tls.ConnectionOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    socket.once('data', () => socket.end());
    socket.once('error', reject);
    socket.once('close', () => resolve());
  });
}

/**
 * One kept-alive connection of the request client: a GET written as prepared bytes, the response read by its
 * status line and Content-Length, and the next GET sent when it is complete. A few microseconds of client CPU
 * per request where Node's http client (ClientRequest, IncomingMessage, agent bookkeeping) takes as much as the
 * server's whole request, so that the server, not the client, is what a window measures.
 */
class RequestConnection {
  private socket: tls.TLSSocket | undefined;
  private buffered: Buffer | undefined;
  private done: ((e?: Error) => void) | undefined;
  /** Connections the server closed between requests and that were opened again (should stay 0). */
  reopened = 0;

  constructor(
    private readonly port: number,
    private readonly context: tls.SecureContext,
    private readonly request: Buffer,
  ) {}

  private open(): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port: this.port,
        secureContext: this.context,
        checkServerIdentity: () => undefined,
      });
      let connected = false;
      socket.setNoDelay(true);
      socket.once('secureConnect', () => {
        connected = true;
        resolve(socket);
      });
      // After the handshake an error is followed by 'close', which fails the request in flight.
      socket.on('error', (e) => {
        if (!connected) reject(e);
      });
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.once('close', () => {
        if (this.socket === socket) this.socket = undefined;
        this.done?.(new Error('connection closed during a request'));
      });
    });
  }

  /** Opens the connection ahead of the measured windows (the same for both servers of a pair). */
  async connect(): Promise<void> {
    this.socket ??= await this.open();
  }

  /** One GET and its whole response. */
  async get(): Promise<void> {
    if (this.socket === undefined || this.socket.destroyed) {
      this.reopened += 1;
      this.socket = await this.open();
    }
    const socket = this.socket;
    await new Promise<void>((resolve, reject) => {
      this.done = (e) => {
        this.done = undefined;
        if (e === undefined) resolve();
        else reject(e);
      };
      socket.write(this.request);
    });
  }

  private onData(chunk: Buffer): void {
    const data = this.buffered === undefined ? chunk : Buffer.concat([this.buffered, chunk]);
    const head = data.indexOf('\r\n\r\n');
    if (head === -1) {
      this.buffered = data;
      return;
    }
    const header = data.toString('latin1', 0, head);
    const m = /\r\ncontent-length: *(\d+)/i.exec(header);
    if (m === null) {
      this.buffered = undefined;
      this.done?.(new Error('response without Content-Length'));
      return;
    }
    const total = head + 4 + Number(m[1]);
    if (data.length < total) {
      this.buffered = data;
      return;
    }
    this.buffered = undefined;
    const status = header.slice(9, 12);
    if (data.length > total) this.done?.(new Error('bytes after the response'));
    else if (status !== '200') this.done?.(new Error(`status ${status}`));
    else this.done?.();
  }
}

function clients(setup: HopClientsSetup): (w: HopWindow) => Promise<HopWindowResult> {
  const td = TrustDomain.parse(setup.trustDomain);
  const bundle = X509Bundle.fromPem(td, setup.caPem);
  const source = new StaticX509Source(toX509Svid(setup.chainDer, createPrivateKey(setup.keyPem)), bundle);
  const plainContext = tls.createSecureContext({ key: setup.keyPem, cert: setup.certPem, ca: setup.caPem });
  const noHostName = (): undefined => undefined;
  // Made once, as a client does: the authorizer is configuration. tlsClientOptions runs per connection, as a
  // client following rotation calls it.
  const authorize = authorizeId(setup.serviceId);
  // Both servers of a request pair are reached by the same kind of client with the same number of connections,
  // opened once (before the warm-up) and kept for the whole run: no handshake falls into a measured window.
  const pools = new Map<number, RequestConnection[]>();
  const poolFor = async (port: number, concurrency: number): Promise<RequestConnection[]> => {
    let pool = pools.get(port);
    if (pool === undefined) {
      const request = Buffer.from(
        `GET /docs/1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`,
        'latin1',
      );
      pool = Array.from({ length: concurrency }, () => new RequestConnection(port, plainContext, request));
      pools.set(port, pool);
    }
    await Promise.all(pool.map((c) => c.connect()));
    return pool;
  };
  const loop = async (end: bigint, op: () => Promise<void>): Promise<number> => {
    let ops = 0;
    while (process.hrtime.bigint() < end) {
      await op();
      ops += 1;
    }
    return ops;
  };
  return async (w) => {
    const pool = w.kind === 'request' ? await poolFor(w.port, w.concurrency) : undefined;
    const reopened0 = pool?.reduce((n, c) => n + c.reopened, 0) ?? 0;
    const cpu0 = threadCpuNs() ?? 0;
    const start = process.hrtime.bigint();
    const end = start + BigInt(Math.round(w.seconds * 1e9));
    let counts: number[];
    switch (w.kind) {
      case 'plain-handshake':
        counts = await Promise.all(
          Array.from({ length: w.concurrency }, () =>
            loop(end, () =>
              handshake(w.port, { secureContext: plainContext, checkServerIdentity: noHostName }),
            ),
          ),
        );
        break;
      case 'lanyard-handshake':
        counts = await Promise.all(
          Array.from({ length: w.concurrency }, () =>
            loop(end, () => handshake(w.port, tlsClientOptions({ source, authorize }))),
          ),
        );
        break;
      case 'request':
        counts = await Promise.all(pool!.map((c) => loop(end, () => c.get())));
        break;
    }
    return {
      ops: counts.reduce((a, b) => a + b, 0),
      wallNs: Number(process.hrtime.bigint() - start),
      clientCpuNs: (threadCpuNs() ?? 0) - cpu0,
      reopened: (pool?.reduce((n, c) => n + c.reopened, 0) ?? 0) - reopened0,
    };
  };
}

if (parentPort !== null && workerData !== null && typeof workerData === 'object') {
  const port = parentPort;
  const run = clients(workerData as HopClientsSetup);
  port.on('message', (w: HopWindow) => {
    run(w).then(
      (result) => port.postMessage({ ok: true, result }),
      (e: unknown) => port.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e) }),
    );
  });
}
