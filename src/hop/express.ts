/**
 * Express middleware (entry point `lanyard/hop/express`; not exported from the package root, and express is
 * never imported at runtime): verifies the TLS peer of every request, authorizes it for `METHOD /path`, and sets
 * `req.agent`. Refuses with 401 (no or invalid certificate), 403 (authorizer or policy denied) or 503 (this
 * service has no SVID yet) and a JSON body `{error: {code, message}}`.
 *
 * Serve the app with `https.createServer(tlsServerOptions(source), app)` and `followSource(server, source)`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { httpRefusal } from './http-refusal';
import { httpVerifyOptions, type HopHttpOptions, verifyHttpPeer } from './http-peer';
import type { HopPeer } from './peer';
import { rememberPeer } from './tls';

export type { HopHttpOptions } from './http-peer';
export type { HopPeer } from './peer';

/** What the middleware needs of an express request; express's Request fits. */
export interface HopExpressRequest extends IncomingMessage {
  /** Express's path (without the query string); falls back to the URL. */
  path?: string;
  agent?: HopPeer;
}

export interface HopExpressOptions extends HopHttpOptions {
  /** The action a policy sees; default `METHOD /path`. */
  action?: (req: HopExpressRequest) => string;
}

export type HopExpressMiddleware = (
  req: HopExpressRequest,
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void;

export function lanyardExpress(options: HopExpressOptions): HopExpressMiddleware {
  const verify = httpVerifyOptions(options);
  return (req, res, next) => {
    const action =
      options.action?.(req) ?? `${req.method ?? 'GET'} ${req.path ?? (req.url ?? '/').split('?')[0]}`;
    verifyHttpPeer(req.socket, verify, action).then(
      (peer) => {
        req.agent = peer;
        rememberPeer(req, peer);
        next();
      },
      (e: unknown) => {
        const r = httpRefusal(e);
        res.statusCode = r.status;
        res.setHeader('content-type', 'application/json; charset=utf-8');
        res.end(JSON.stringify(r.body));
      },
    );
  };
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
