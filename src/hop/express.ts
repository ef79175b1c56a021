/**
 * Express middleware (entry point `lanyard/express`; not exported from the package root, and express is
 * never imported at runtime): verifies the TLS peer of every request, authorizes it for `METHOD /path` (the route
 * pattern on a route, else the canonical path), and sets `req.agent`. Refuses with 400 (request target with no
 * one meaning), 401 (no or invalid certificate), 403 (authorizer or policy denied) or 503 (this
 * service has no SVID yet) and a JSON body `{error: {code, message}}`.
 *
 * Serve the app with `https.createServer(tlsServerOptions(source), app)` and `followSource(server, source)`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { actionMethod, canonicalRequestPath } from './http-action';
import { guardRequest, writeRefusal, type HttpGuard } from './http-guard';
import { httpVerifyOptions, type HopHttpOptions } from './http-peer';
import type { HopPeer } from './peer';
import { rememberRequestPeer } from './tls';

export type { HopHttpOptions } from './http-peer';
export type { HopPeer } from './peer';

/** What the middleware needs of an express request; express's Request fits. */
export interface HopExpressRequest extends IncomingMessage {
  /** The whole request target, also under a mounted router (where `url` and `path` are relative). */
  originalUrl?: string;
  /** Where a router this middleware runs in is mounted. */
  baseUrl?: string;
  /** The matched route, set when the middleware runs as route middleware (`app.delete(path, mw, handler)`). */
  route?: { path?: unknown };
  agent?: HopPeer;
}

export interface HopExpressOptions extends HopHttpOptions {
  /**
   * The action a policy sees. Default `METHOD /route-pattern` when the middleware runs on a route, otherwise
   * `METHOD /canonical/path` of the whole target (see canonicalRequestPath; `caseSensitive` should match the
   * app's router). A target with no one meaning is refused with 400 (ERR_INVALID_REQUEST_TARGET).
   */
  action?: (req: HopExpressRequest) => string;
}

function defaultAction(req: HopExpressRequest, options: HopExpressOptions): string {
  const method = actionMethod(req.method);
  const routePath = req.route?.path;
  if (typeof routePath === 'string') {
    // The router already decided which handler runs: the policy sees that handler's pattern.
    const base =
      req.baseUrl !== undefined && req.baseUrl !== '' ? canonicalRequestPath(req.baseUrl, options) : '';
    return `${method} ${base}${routePath}`;
  }
  // `method` is the policy's already: canonicalHttpAction would upper-case it a second time.
  return `${method} ${canonicalRequestPath(req.originalUrl ?? req.url ?? '/', options)}`;
}

export type HopExpressMiddleware = (
  req: HopExpressRequest,
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void;

export function lanyardExpress(options: HopExpressOptions): HopExpressMiddleware {
  const verify = httpVerifyOptions(options);
  const guard: HttpGuard<HopExpressRequest, ServerResponse, (err?: unknown) => void> = {
    action: (req) => options.action?.(req) ?? defaultAction(req, options),
    socket: (req) => req.socket,
    accept,
    refuse: writeRefusal,
  };
  return (req, res, next) => guardRequest(guard, verify, req, res, next);
}

function accept(req: HopExpressRequest, peer: HopPeer, next: (err?: unknown) => void): void {
  req.agent = peer;
  rememberRequestPeer(req, peer);
  next();
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by lanyardExpress for every request it let through. */
      agent?: HopPeer;
    }
  }
}
