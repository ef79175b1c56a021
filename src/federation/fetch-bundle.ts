/**
 * Fetching a foreign trust domain's bundle from its bundle endpoint (SPIFFE Trust Domain and Bundle §5), with
 * either endpoint profile:
 * - https_web: the endpoint's certificate is checked by the TLS stack against Web PKI roots (the system's, or
 *   the relationship's own) and the URL's host name;
 * - https_spiffe: the endpoint presents an X.509-SVID, checked with Lanyard's SVID verifier against the
 *   foreign domain's bundle as this server last accepted it (the bootstrap bundle the first time), and its
 *   SPIFFE ID must equal the pinned one. The check runs when the handshake completes, before the response is
 *   read: nothing from an endpoint that failed it is ever parsed.
 */
import * as https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { BundleSet } from '../bundle/bundle-set';
import type { X509Bundle } from '../bundle/x509-bundle';
import {
  isLanyardError,
  FederationEndpointUnauthenticatedError,
  FederationFetchFailedError,
} from '../errors';
import { socketPeerChain } from '../internal/peer-chain';
import type { SpiffeId, TrustDomain } from '../spiffe';
import { verifyX509Svid } from '../verify/verify-x509-svid';
import { MAX_BUNDLE_BYTES, readForeignBundle } from './foreign-bundle';

export type BundleEndpointTarget =
  | { profile: 'https_web'; trustDomain: TrustDomain; url: URL; webTrustRootsPem?: string }
  | { profile: 'https_spiffe'; trustDomain: TrustDomain; url: URL; endpointSpiffeId: SpiffeId };

export interface FetchedBundle {
  bundle: X509Bundle;
  /** The document as received, for the store. */
  json: string;
}

export interface FetchOptions {
  /** https_spiffe: the foreign domain's bundle this server holds; the endpoint's SVID must verify with it. */
  current?: X509Bundle;
  /** Whole request, connect to last byte. Default 10 s. */
  timeoutMs?: number;
  at?: () => Date;
}

/**
 * @throws FederationError: ERR_FEDERATION_ENDPOINT_UNAUTHENTICATED (the endpoint is not who the relationship
 *   says), ERR_FEDERATION_FETCH_FAILED (unreachable, timeout, a non-200 answer, too large), ERR_WRONG_TRUST_DOMAIN
 *   (another domain's bundle); BundleError(ERR_INVALID_BUNDLE) for a malformed document.
 */
export function fetchBundle(
  target: BundleEndpointTarget,
  options: FetchOptions = {},
): Promise<FetchedBundle> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const td = target.trustDomain.name;
  if (target.profile === 'https_spiffe' && options.current === undefined) {
    return Promise.reject(
      new FederationEndpointUnauthenticatedError(
        `no bundle of "${td}" to authenticate its https_spiffe endpoint with: give the relationship a bootstrap bundle`,
      ),
    );
  }
  return new Promise<FetchedBundle>((resolve, reject) => {
    let authenticated = target.profile === 'https_web';
    let settled = false;
    const fail = (e: unknown): void => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(
        isLanyardError(e)
          ? e
          : new FederationFetchFailedError(
              `bundle endpoint of "${td}" (${target.url.href}): ${e instanceof Error ? e.message : String(e)}`,
              { cause: e },
            ),
      );
    };
    const req = https.request(target.url, {
      method: 'GET',
      agent: false,
      headers: { accept: 'application/json' },
      timeout: timeoutMs,
      ...(target.profile === 'https_web'
        ? {
            rejectUnauthorized: true,
            ...(target.webTrustRootsPem !== undefined ? { ca: target.webTrustRootsPem } : {}),
          }
        : // The TLS stack knows nothing of SPIFFE IDs: the SVID is checked on secureConnect below instead.
          { rejectUnauthorized: false, checkServerIdentity: () => undefined }),
    });
    if (target.profile === 'https_spiffe') {
      req.on('socket', (socket) => {
        (socket as TLSSocket).once('secureConnect', () => {
          try {
            checkEndpointSvid(socket as TLSSocket, target, options.current!, options.at?.() ?? new Date());
            authenticated = true;
          } catch (e) {
            fail(e);
          }
        });
      });
    }
    const timer = setTimeout(() => fail(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    req.on('timeout', () => fail(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => fail(e));
    req.on('response', (res) => {
      // Belt and braces: a response on a connection whose SVID was not checked is never read.
      if (!authenticated) {
        fail(
          new FederationEndpointUnauthenticatedError(
            `bundle endpoint of "${td}" answered before its SVID was checked`,
          ),
        );
        return;
      }
      if (res.statusCode !== 200) {
        res.resume();
        fail(new Error(`HTTP ${res.statusCode ?? '?'} instead of 200`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BUNDLE_BYTES) {
          fail(new Error(`the answer is larger than ${MAX_BUNDLE_BYTES} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('error', (e) => fail(e));
      res.on('end', () => {
        if (settled) return;
        clearTimeout(timer);
        try {
          const json = Buffer.concat(chunks).toString('utf8');
          const bundle = readForeignBundle(target.trustDomain, json);
          settled = true;
          resolve({ bundle, json });
        } catch (e) {
          fail(e);
        }
      });
    });
    req.end();
  });
}

function checkEndpointSvid(
  socket: TLSSocket,
  target: Extract<BundleEndpointTarget, { profile: 'https_spiffe' }>,
  current: X509Bundle,
  at: Date,
): void {
  const chain = socketPeerChain(socket);
  let id: SpiffeId;
  try {
    // Only the foreign domain's own bundle: no other domain's CA can vouch for its endpoint.
    id = verifyX509Svid(chain, new BundleSet([current]), {
      at,
      trustDomain: target.trustDomain,
      cache: null,
    }).id;
  } catch (e) {
    throw new FederationEndpointUnauthenticatedError(
      `bundle endpoint ${target.url.href} did not present an SVID of "${target.trustDomain.name}" that its bundle verifies: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
  if (!id.equals(target.endpointSpiffeId)) {
    throw new FederationEndpointUnauthenticatedError(
      `bundle endpoint ${target.url.href} presented ${id.toString()}, not the pinned ${target.endpointSpiffeId.toString()}`,
    );
  }
}
