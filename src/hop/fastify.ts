/**
 * Fastify plugin (entry point `lanyard/fastify`; fastify is imported for types only): an onRequest hook
 * that verifies the TLS peer of every request, authorizes it for `METHOD /route` (the route pattern, so a policy
 * sees `/docs/:id`, not every id), and sets `request.agent`. Refuses with 401/403/503 and a JSON body
 * `{error: {code, message}}`. Registered without encapsulation, so it guards every route of the instance.
 *
 * Create the instance with `fastify({ https: tlsServerOptions(source) })` and `followSource(app.server, source)`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { actionMethod, canonicalHttpAction } from './http-action';
import { httpRefusal, type HttpRefusal } from './http-refusal';
import { checkHttpPeer, httpVerifyOptions, type HopHttpOptions } from './http-peer';
import type { HopPeer } from './peer';
import { rememberPeer } from './tls';

export type { HopHttpOptions } from './http-peer';
export type { HopPeer } from './peer';

export interface HopFastifyOptions extends HopHttpOptions {
  /**
   * The action a policy sees; default `METHOD /route-pattern`, or `METHOD /canonical/path` when no route
   * matched (a target with no one meaning is then refused with 400, ERR_INVALID_REQUEST_TARGET).
   */
  action?: (request: FastifyRequest) => string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by lanyardFastify for every request it let through. */
    agent?: HopPeer;
  }
}

async function plugin(app: FastifyInstance, options: HopFastifyOptions): Promise<void> {
  const verify = httpVerifyOptions(options);
  const caseSensitive = { caseSensitive: options.caseSensitive ?? true };
  const routes = new RouteActions();
  // Read when the plugin is registered, like every other option (httpVerifyOptions).
  const custom = options.action;
  // The route pattern when the router matched one; otherwise (a 404) the canonical path, with fastify's
  // case-sensitive routing as the default.
  const action = (request: FastifyRequest): string => {
    if (custom !== undefined) {
      const a = custom(request);
      if (a !== undefined) return a;
    }
    const route = request.routeOptions.url;
    return route !== undefined
      ? routes.action(request.method, route)
      : canonicalHttpAction(request.method, request.url, caseSensitive);
  };
  app.decorateRequest('agent', undefined);
  // A callback hook, not an async one: an Authorizer's accept continues in the same turn, with no promise made
  // per request. A refusal answers and never calls `done`, so no handler runs. The check itself is
  // guardRequest's, written out here: on a kept-alive connection it is the one look-up of the connection's kept
  // verdict, its re-checks and the authorizer (checkHttpPeer).
  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    let checked: HopPeer | Promise<HopPeer>;
    try {
      checked = checkHttpPeer(request.raw.socket, verify, action(request));
    } catch (e) {
      refuse(reply, httpRefusal(e));
      return;
    }
    if (checked instanceof Promise) {
      checked.then(
        (peer) => accept(request, peer, done),
        (e: unknown) => refuse(reply, httpRefusal(e)),
      );
    } else {
      accept(request, checked, done);
    }
  });
}

/**
 * `METHOD /route-pattern` per pattern and request method, made on the first request of each: the same string
 * every time (a string is immutable, so sharing it is invisible), without upper-casing the method and joining
 * the two on every request. Bounded by the routes the application registered times the methods Node's parser
 * accepts; a 404's path is never kept.
 */
class RouteActions {
  private readonly byRoute = new Map<string, Map<string, string>>();

  action(method: string, route: string): string {
    let byMethod = this.byRoute.get(route);
    if (byMethod === undefined) this.byRoute.set(route, (byMethod = new Map()));
    let action = byMethod.get(method);
    if (action === undefined) byMethod.set(method, (action = `${actionMethod(method)} ${route}`));
    return action;
  }
}

function accept(request: FastifyRequest, peer: HopPeer, done: () => void): void {
  request.agent = peer;
  rememberPeer(request.raw, peer);
  done();
}

function refuse(reply: FastifyReply, r: HttpRefusal): void {
  void reply.code(r.status).type('application/json; charset=utf-8').send(r.body);
}

// What fastify-plugin does: skip encapsulation, so the hook applies to routes registered outside the plugin.
(plugin as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')] = true;
(plugin as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')] = 'lanyard';

export const lanyardFastify: (app: FastifyInstance, options: HopFastifyOptions) => Promise<void> = plugin;
