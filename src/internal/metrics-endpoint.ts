/**
 * The Prometheus scrape listener of a server or an agent: plain HTTP, `GET /metrics` only, serving one
 * process instance's own registry (never prom-client's global one, so two servers in one process report
 * apart). Plain HTTP without authentication, so it binds loopback unless the operator says otherwise:
 * `loopbackProblem` is what the configs check before anything listens.
 */
import * as http from 'node:http';
import { BlockList, isIP, type AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from './logging';

/** The default scrape address of each runtime: loopback, a port of its own beside the others'. */
export const METRICS_DEFAULT_ADDRESSES = Object.freeze({
  server: '127.0.0.1:9464',
  agent: '127.0.0.1:9465',
});

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/** True for an address only this host can reach: 127.0.0.0/8, ::1 (also IPv4-mapped), "localhost". */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host)?.[1];
  if (mapped !== undefined) return loopback.check(mapped, 'ipv4');
  const family = isIP(host);
  if (family === 0) return false;
  return loopback.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Why `host` may not carry the metrics listener, or undefined when it may: anything but loopback needs the
 * explicit `allowNonLoopback` (the listener has neither TLS nor authentication).
 */
export function loopbackProblem(host: string, allowNonLoopback: boolean): string | undefined {
  if (allowNonLoopback || isLoopbackHost(host)) return undefined;
  return `"${host}" is not a loopback address: the metrics listener has no TLS and no authentication, so it binds 127.0.0.1 or ::1 unless non-loopback binding is allowed explicitly`;
}

export interface MetricsEndpoint {
  /** host:port as bound (port 0 becomes the chosen port). */
  address: string;
  port: number;
  close(): Promise<void>;
}

export interface MetricsEndpointOptions {
  listen: { host: string; port: number };
  registry: Registry;
  logger: Logger;
}

/** Listens and serves `registry` at /metrics; a bind failure (port taken) rejects. */
export async function startMetricsEndpoint(options: MetricsEndpointOptions): Promise<MetricsEndpoint> {
  const { registry, logger } = options;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end();
      return;
    }
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (e: unknown) => {
        logger.error({ err: e }, 'metrics could not be collected');
        res
          .writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
          .end('metrics collection failed\n');
      },
    );
  });
  // A scraper holds its connection open between scrapes; close must not wait for it.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const address =
    bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  if (!isLoopbackHost(bound.address)) {
    logger.warn(
      { metricsAddress: address },
      'metrics served on a non-loopback address (allowed by the config)',
    );
  }
  return {
    address,
    port: bound.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
