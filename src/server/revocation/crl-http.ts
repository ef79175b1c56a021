/**
 * The CRLs over plain HTTP, where nginx, OpenSSL and curl look for them. Plain HTTP is the norm for CRLs
 * (RFC 5280 §4.2.1.13): the content is public and signed, so the transport adds nothing to its integrity.
 * Only two paths exist; everything else is 404, anything but GET/HEAD is 405, and requests must arrive
 * quickly (the listener is unauthenticated, so it must not let slow clients hold sockets).
 */
import * as http from 'node:http';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { listenOn } from '../http-listen';
import type { Logger } from '../../internal/logging';
import { derChunks, pemChunks, pemLength, writeChunks } from './crl-body';
import type { CrlPublisher, PublishedCrls } from './crl-publisher';

export interface CrlHttpServer {
  /** host:port actually bound (the real port when the config said 0). */
  address: string;
  close(): Promise<void>;
}

/** `/crl/<trust-domain>.crl` (DER, the active CA) and `/crl/<trust-domain>.pem` (every CA's CRL). */
export function crlPaths(trustDomain: string): { der: string; pem: string } {
  return { der: `/crl/${trustDomain}.crl`, pem: `/crl/${trustDomain}.pem` };
}

export async function startCrlHttpServer(opts: {
  listen: { host: string; port: number };
  trustDomain: string;
  publisher: CrlPublisher;
  /** Warned when the bound address is not loopback. */
  logger?: Logger;
}): Promise<CrlHttpServer> {
  const paths = crlPaths(opts.trustDomain);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const path = (req.url ?? '').split('?')[0];
    if (path !== paths.der && path !== paths.pem) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    // Built here, on demand (and only when something changed): a server whose CRLs nobody fetches builds none.
    opts.publisher.read().then(
      ({ crls, release }) => {
        // Released once the response is closed: written out to the kernel or abandoned, the socket holds no
        // view of the CRL's buffer any more, and a later build may write into it (crl-buffers.ts).
        if (res.closed) release();
        else res.once('close', release);
        serve(req, res, crls, path === paths.der ? 'der' : 'pem');
      },
      () => {
        if (!res.headersSent) {
          res.writeHead(503, { 'Content-Type': 'text/plain', 'Retry-After': '5' }).end('no CRL yet\n');
        }
      },
    );
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  const { bound, address } = await listenOn(server, opts.listen);
  // Judged on the address actually bound, so a host name that resolves to a public address is caught too.
  if (opts.logger !== undefined) warnIfNotLoopback(bound.address, address, opts.logger);
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Answers with `crls` in the asked form: 304 when the request's validators match, else the body written in chunks
 * (crl-body.ts). The ETag is the cRLNumber (with the form): every build takes a new number from the store,
 * across restarts, CA rotations and servers sharing a store, so one number names exactly one set of bytes and
 * no hash of 33 MiB is needed.
 */
function serve(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  crls: PublishedCrls,
  form: 'der' | 'pem',
): void {
  const etag = `"${crls.crlNumber.toString(16)}${form === 'pem' ? '-pem' : ''}"`;
  const headers = {
    ETag: etag,
    'Last-Modified': crls.thisUpdate.toUTCString(),
    // A CRL changes on every revocation: caches may keep it briefly, never past nextUpdate.
    'Cache-Control': `max-age=${Math.max(0, Math.min(60, Math.floor((crls.nextUpdate.getTime() - Date.now()) / 1000)))}`,
  };
  if (notModified(req, etag, crls.thisUpdate)) {
    res.writeHead(304, headers).end();
    return;
  }
  const ders = crls.crls.map((c) => c.der);
  res.writeHead(200, {
    ...headers,
    // RFC 2585 §4.2 for DER; PEM has no registered type.
    'Content-Type': form === 'der' ? 'application/pkix-crl' : 'application/x-pem-file',
    'Content-Length': form === 'der' ? crls.activeDer.byteLength : pemLength(ders, 'X509 CRL'),
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  void writeChunks(res, form === 'der' ? derChunks(crls.activeDer) : pemChunks(ders, 'X509 CRL'));
}

/**
 * RFC 9110 §13.1: If-None-Match (a list of entity tags, or `*`) decides when present; else If-Modified-Since, at
 * the second (HTTP dates have no finer unit). A malformed date is ignored, as the RFC says.
 */
function notModified(req: http.IncomingMessage, etag: string, lastModified: Date): boolean {
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) {
    return inm
      .split(',')
      .map((t) => t.trim().replace(/^W\//, ''))
      .some((t) => t === '*' || t === etag);
  }
  const ims = req.headers['if-modified-since'];
  if (ims === undefined) return false;
  const since = Date.parse(ims);
  return Number.isFinite(since) && Math.floor(lastModified.getTime() / 1000) * 1000 <= since;
}

/** Logs a warning when `ip` (the bound address) is not loopback. Returns whether it warned. */
export function warnIfNotLoopback(ip: string, address: string, logger: Logger): boolean {
  if (isLoopbackAddress(ip)) return false;
  logger.warn(
    { crlAddress: address },
    'the CRL HTTP listener is bound to a non-loopback address: anyone who can reach it can read the CRLs',
  );
  return true;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.x.y.z). The wildcards 0.0.0.0 and :: are not. */
export function isLoopbackAddress(ip: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return isIPv4(mapped[1]!) && LOOPBACK.check(mapped[1]!, 'ipv4');
  if (isIPv4(ip)) return LOOPBACK.check(ip, 'ipv4');
  return isIPv6(ip) && LOOPBACK.check(ip, 'ipv6');
}
