/**
 * Per-call durability for unary methods: the handler runs in a durability scope (store/durability-scope.ts), so
 * its store reads note the last commit they could have seen instead of each waiting for its fsync, and its
 * answer (a response or an error: a refusal derived from what it read is an answer too) is sent only once
 * every commit noted is durable. A call that commits afterwards waits for its own commit's fsync alone.
 *
 * Only the methods in SCOPED_METHODS get a scope; every other call (and every stream) keeps the store's strict
 * rule, each read waiting for itself. A method joins the list once someone has checked that nothing it reads
 * reaches another call before it answers (a cache it fills, a memoised promise, a stream it writes to): such a
 * value would leave without the wait. A settle that fails (the store could not make its log durable) turns the
 * answer into that failure (INTERNAL): fail closed.
 */
import * as grpc from '@grpc/grpc-js';
import { toStatus } from '../internal/grpc-call';
import type { Logger } from '../internal/logging';
import { wrapMethods, type WrappableService } from '../internal/method-wrap';
import { DurabilityScope, runInDurabilityScope } from '../store/durability-scope';

/**
 * The unary methods answered in a scope. Each was checked: what it reads from the store goes to no one but its
 * caller before it answers (no cache, memo, feed or stream fed from it), and what it writes commits in the
 * group commit, which waits for its own fsync.
 * - Renew: caller resolution reads (revocation, session, entry); the CSR check and the signature use no store,
 *   the federated bundles and the policy come from memory; its serial and audit record commit together.
 * - StartSession: caller resolution, the session quota (a count, checked again inside the transaction), the
 *   principal's token against the issuer's JWKS file (not the store); the session, its first serial and its
 *   audit record commit together.
 * - BatchNewX509Svid (the node agent's issuance): caller resolution and each entry the agent asks for (read
 *   and judged for this call only); the audit records of the batch commit together.
 */
export const SCOPED_METHODS: ReadonlySet<string> = new Set([
  '/lanyard.v1.AttestationService/Renew',
  '/lanyard.v1.SessionService/StartSession',
  '/lanyard.v1.NodeService/BatchNewX509Svid',
]);

export function answerWhenDurable<S extends WrappableService>(
  service: S,
  logger: Logger,
  scoped: ReadonlySet<string> = SCOPED_METHODS,
): S {
  return wrapMethods(service, {
    unary: (method, unary) => {
      if (!scoped.has(method.path)) return unary;
      return (call, callback) => {
        const scope = new DurabilityScope();
        const answer: grpc.sendUnaryData<unknown> = (err, value, trailer, flags) => {
          scope.settle().then(
            () => callback(err, value, trailer, flags),
            (e: unknown) => {
              logger.error(
                { err: e, method: method.path, peer: call.getPeer() },
                'answer withheld: what the call read could not be made durable',
              );
              callback(toStatus(e));
            },
          );
        };
        runInDurabilityScope(scope, () => unary(call, answer));
      };
    },
  });
}
