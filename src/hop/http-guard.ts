/**
 * The accept path every HTTP helper (createHopHttpsServer, express, fastify) runs for a request: the action,
 * the peer check of the request's connection, then the framework's own way to go on or to answer a refusal.
 * Made once per helper: nothing is allocated per request beyond what the check itself needs, and an Authorizer's
 * accept goes on in the same turn (a HopPolicy's answer is awaited).
 */
import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { checkHttpPeer, type HttpVerifyOptions } from './http-peer';
import { httpRefusal, type HttpRefusal } from './http-refusal';
import type { HopPeer } from './peer';

/** What a framework adapter tells guardRequest about its request, reply and continuation. */
export interface HttpGuard<Req, Res, Next> {
  /**
   * The action the authorizer or policy sees for `req`.
   * @throws LanyardError(ERR_INVALID_REQUEST_TARGET) for a target with no one meaning.
   */
  action(req: Req): string;
  /** The connection the request came on. */
  socket(req: Req): Socket;
  /** Hands the request on with its verified peer (`next` is the framework's continuation). */
  accept(req: Req, peer: HopPeer, next: Next): void;
  /** Answers a refused request; the handler never runs. */
  refuse(res: Res, refusal: HttpRefusal): void;
}

/** Checks `req`'s peer for its action and calls `guard.accept` or `guard.refuse`, never both. */
export function guardRequest<Req, Res, Next>(
  guard: HttpGuard<Req, Res, Next>,
  verify: HttpVerifyOptions,
  req: Req,
  res: Res,
  next: Next,
): void {
  let checked: HopPeer | Promise<HopPeer>;
  try {
    checked = checkHttpPeer(guard.socket(req), verify, guard.action(req));
  } catch (e) {
    guard.refuse(res, httpRefusal(e));
    return;
  }
  if (checked instanceof Promise) {
    checked.then(
      (peer) => guard.accept(req, peer, next),
      (e: unknown) => guard.refuse(res, httpRefusal(e)),
    );
  } else {
    guard.accept(req, checked, next);
  }
}

/** A refusal on Node's own response object (https server, express): the status and the JSON body. */
export function writeRefusal(res: ServerResponse, refusal: HttpRefusal): void {
  res.statusCode = refusal.status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(refusal.body));
}
