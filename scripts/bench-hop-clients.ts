/**
 * The client side of `scripts/bench-hop.ts`, in a worker thread: the servers keep the main thread to themselves,
 * so the CPU a server spends per handshake or request can be read from that thread alone, and clients on the
 * other core are not what limits the server. Answers one message per measuring window.
 */
import { readFileSync } from 'node:fs';
import * as https from 'node:https';
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
 * `request`: GET over https keep-alive connections of a plain Node agent (the same client for both servers of a
 * pair, so only the server differs).
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

function get(port: number, agent: https.Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: '/docs/1', agent }, (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`)),
        );
      })
      .on('error', reject);
  });
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
  const agents = new Map<number, https.Agent>();
  const agentFor = (port: number, concurrency: number): https.Agent => {
    let agent = agents.get(port);
    if (agent === undefined) {
      agent = new https.Agent({
        keepAlive: true,
        maxSockets: concurrency,
        key: setup.keyPem,
        cert: setup.certPem,
        ca: setup.caPem,
        checkServerIdentity: noHostName,
      });
      agents.set(port, agent);
    }
    return agent;
  };
  const once = (w: HopWindow): (() => Promise<void>) => {
    switch (w.kind) {
      case 'plain-handshake':
        return () => handshake(w.port, { secureContext: plainContext, checkServerIdentity: noHostName });
      case 'lanyard-handshake':
        return () => handshake(w.port, tlsClientOptions({ source, authorize }));
      case 'request': {
        const agent = agentFor(w.port, w.concurrency);
        return () => get(w.port, agent);
      }
    }
  };
  return async (w) => {
    const op = once(w);
    const cpu0 = threadCpuNs() ?? 0;
    const start = process.hrtime.bigint();
    const end = start + BigInt(Math.round(w.seconds * 1e9));
    let ops = 0;
    await Promise.all(
      Array.from({ length: w.concurrency }, async () => {
        while (process.hrtime.bigint() < end) {
          await op();
          ops += 1;
        }
      }),
    );
    return {
      ops,
      wallNs: Number(process.hrtime.bigint() - start),
      clientCpuNs: (threadCpuNs() ?? 0) - cpu0,
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
