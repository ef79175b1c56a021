/**
 * The SPIFFE bundle endpoint (SPIFFE Trust Domain and Bundle §5): this trust domain's bundle, as a SPIFFE
 * bundle document, for the servers that federate with us. One path, `/`, GET or HEAD; anything else is 404 or
 * 405. Two profiles:
 * - https_web: a Web PKI certificate and key from files (re-read when they change, as an ACME client renews
 *   them), so the fetcher checks a DNS name;
 * - https_spiffe: the server's own SVID, renewed with the CA, so the fetcher checks our SPIFFE ID with the
 *   bundle it holds of us.
 * The content is public; TLS gives the fetcher its integrity and the publisher's identity.
 */
import * as https from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import { toSpiffeBundle } from '../../bundle/to-spiffe-bundle';
import type { SpiffeBundleJwk } from '../../bundle/spiffe-bundle-format';
import { serverTlsPem, type CaManager, type ServerSvid } from '../../ca';
import { readWebCertificate, watchWebCertificate, type WebCertificateFiles } from '../tls/web-certificate';
import { listenOn } from '../http-listen';
import type { Logger } from '../../internal/logging';

export type BundleEndpointProfileConfig =
  { profile: 'https_web'; certFile: string; keyFile: string } | { profile: 'https_spiffe' };

export interface BundleEndpointOptions {
  listen: { host: string; port: number };
  tls: BundleEndpointProfileConfig;
  ca: CaManager;
  /** Published beside the X.509 authorities (the JWT-SVID keys, as on the BundleService). */
  extraKeys?: () => readonly SpiffeBundleJwk[];
  logger: Logger;
  /**
   * More documents served over the same listener, by exact path (OIDC discovery). Each returns the JSON body.
   */
  extraRoutes?: ReadonlyMap<string, () => object>;
  /** How often https_web files are checked for a change. Default 30 s. */
  certCheckIntervalMs?: number;
}

export interface BundleEndpoint {
  /** host:port actually bound. */
  address: string;
  /** https://host:port/ */
  url: string;
  close(): Promise<void>;
}

export async function startBundleEndpoint(opts: BundleEndpointOptions): Promise<BundleEndpoint> {
  const log = opts.logger.child({ component: 'bundle-endpoint' });
  const stops: (() => void)[] = [];
  let context: SecureContextOptions;
  if (opts.tls.profile === 'https_web') {
    context = readWebCertificate(webFiles(opts.tls));
  } else {
    context = svidContext(opts.ca.serverSvid());
  }

  const server = https.createServer({ ...context, minVersion: 'TLSv1.2' }, (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const path = (req.url ?? '').split('?')[0] ?? '';
    let body: object;
    try {
      const extra = opts.extraRoutes?.get(path);
      if (path === '/') body = toSpiffeBundle(opts.ca.bundle(), opts.extraKeys?.() ?? []);
      else if (extra !== undefined) body = extra();
      else {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
        return;
      }
    } catch (e) {
      log.error({ err: e, path }, 'bundle endpoint could not build its answer');
      res.writeHead(503, { 'Content-Type': 'text/plain', 'Retry-After': '5' }).end('not ready\n');
      return;
    }
    const text = Buffer.from(JSON.stringify(body));
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': text.length,
      // Fetchers follow spiffe_refresh_hint; intermediaries must not stretch it.
      'Cache-Control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : text);
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;

  if (opts.tls.profile === 'https_spiffe') {
    stops.push(opts.ca.onServerSvidChange((svid) => server.setSecureContext(svidContext(svid))));
  } else {
    stops.push(
      watchWebCertificate(server, webFiles(opts.tls), {
        intervalMs: opts.certCheckIntervalMs ?? 30_000,
        logger: log,
      }),
    );
  }

  const { address } = await listenOn(server, opts.listen);
  log.info({ address, profile: opts.tls.profile }, 'SPIFFE bundle endpoint serving');
  return {
    address,
    url: `https://${address}/`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of stops) s();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function svidContext(svid: ServerSvid): SecureContextOptions {
  // The key is handed to the TLS stack only; it never leaves the process.
  return serverTlsPem(svid);
}

function webFiles(tls: { certFile: string; keyFile: string }): WebCertificateFiles {
  return { certFile: tls.certFile, keyFile: tls.keyFile, field: 'federation.bundle_endpoint' };
}
