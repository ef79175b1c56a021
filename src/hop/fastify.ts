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
import { guardRequest, type HttpGuard } from './http-guard';
import type { HttpRefusal } from './http-refusal';
import { httpVerifyOptions, type HopHttpOptions } from './http-peer';
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
  const guard: HttpGuard<FastifyRequest, FastifyReply, () => void> = {
    // The route pattern when the router matched one; otherwise (a 404) the canonical path, with fastify's
    // case-sensitive routing as the default.
    action: (request) => {
      const custom = options.action?.(request);
      if (custom !== undefined) return custom;
      const route = request.routeOptions.url;
      return route !== undefined
        ? routes.action(request.method, route)
        : canonicalHttpAction(request.method, request.url, caseSensitive);
    },
    socket: (request) => request.raw.socket,
    accept,
    refuse,
  };
  app.decorateRequest('agent', undefined);
  // A callback hook, not an async one: an Authorizer's accept continues in the same turn, with no promise made
  // per request. A refusal answers and never calls `done`, so no handler runs.
  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: () => void) =>
    guardRequest(guard, verify, request, reply, done),
  );
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
