/**
 * The OIDC discovery listener: `<issuer path>/.well-known/openid-configuration` and `<issuer path>/keys`, GET or
 * HEAD, over TLS with a Web PKI certificate for the issuer's DNS name from files (re-read on change, as the
 * bundle endpoint's https_web profile). Relying parties check the issuer's name with the Web PKI: there is no
 * plain-HTTP variant. The content is public; the keys change as JwtAuthority rotates, so nothing is cached
 * longer than the lead a prepared key has before it signs.
 */
import * as https from 'node:https';
import type { Logger } from '../../internal/logging';
import { listenOn } from '../http-listen';
import type { JwtAuthority } from '../node/jwt-authority';
import { readWebCertificate, watchWebCertificate, type WebCertificateFiles } from '../tls/web-certificate';
import { jwks, OIDC_CONFIGURATION_PATH, OIDC_JWKS_PATH, providerMetadata } from './discovery-document';

export interface OidcDiscoveryEndpointOptions {
  issuer: string;
  listen: { host: string; port: number };
  tls: { certFile: string; keyFile: string };
  jwt: Pick<JwtAuthority, 'authorities'>;
  logger: Logger;
  /** How often the certificate files are checked for a change. Default 30 s. */
  certCheckIntervalMs?: number;
}

export interface OidcDiscoveryEndpoint {
  /** host:port actually bound. */
  address: string;
  close(): Promise<void>;
}

/**
 * How long relying parties may cache a document. A prepared key is published min(CA TTL / 12, 5 min) before
 * it signs, so with a CA TTL of 12 minutes or more a cached JWKS never lacks the key of a fresh token (and
 * relying parties refetch on an unknown kid anyway).
 */
const MAX_AGE_SECONDS = 60;

export async function startOidcDiscoveryEndpoint(
  opts: OidcDiscoveryEndpointOptions,
): Promise<OidcDiscoveryEndpoint> {
  const log = opts.logger.child({ component: 'oidc-discovery' });
  const files: WebCertificateFiles = { ...opts.tls, field: 'oidc_discovery' };
  const base = new URL(opts.issuer).pathname.replace(/\/+$/, '');
  const routes = new Map<string, () => object>([
    [`${base}${OIDC_CONFIGURATION_PATH}`, () => providerMetadata(opts.issuer)],
    [`${base}${OIDC_JWKS_PATH}`, () => jwks(opts.jwt.authorities())],
  ]);

  const server = https.createServer({ ...readWebCertificate(files), minVersion: 'TLSv1.2' }, (req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    const route = routes.get(path);
    if (route === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    let text: Buffer;
    try {
      text = Buffer.from(JSON.stringify(route()));
    } catch (e) {
      log.error({ err: e, path }, 'OIDC discovery could not build its answer');
      res.writeHead(503, { 'Content-Type': 'text/plain', 'Retry-After': '5' }).end('not ready\n');
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': text.length,
      'Cache-Control': `public, max-age=${MAX_AGE_SECONDS}`,
    });
    res.end(req.method === 'HEAD' ? undefined : text);
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  const stopWatch = watchWebCertificate(server, files, {
    intervalMs: opts.certCheckIntervalMs ?? 30_000,
    logger: log,
  });
  let address: string;
  try {
    ({ address } = await listenOn(server, opts.listen));
  } catch (e) {
    stopWatch();
    throw e;
  }
  log.info({ address, issuer: opts.issuer }, 'OIDC discovery serving');
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        stopWatch();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
