/**
 * Remote admin: the RegistrationService on the public listener, for callers whose mTLS SVID verifies, was
 * not revoked by serial, is a workload SVID (not a task session's), and whose registration entry (named by
 * the SVID's agent context) has admin=true. Every unary method is wrapped, so a method added to the service
 * later is guarded too; anything not unary is refused.
 *
 * Why session SVIDs never carry admin rights: a session is scoped, delegable task authority; admin rights
 * are not scoped, so a delegated or long-forgotten session of an admin entry would hand them on unbounded.
 * An ended or expired session is named as such; a live one is refused as a session.
 */
import * as grpc from '@grpc/grpc-js';
import type { CaManager } from '../../ca';
import { AuthorizationError, isLanyardError } from '../../errors';
import type { Store } from '../../store/store';
import { toStatus } from '../grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import type { Logger } from '../logging';
import { assertLive, sessionOf, verifyCaller } from '../sessions/caller';
import type { PeerCall } from './peer-svid';

export interface AdminGuardDeps {
  ca: CaManager;
  store: Store;
  clock: () => Date;
  logger: Logger;
}

/**
 * Resolves with the caller's SPIFFE ID when it is an admin; rejects with UNAUTHENTICATED (no, invalid or
 * revoked SVID) or PERMISSION_DENIED (not an admin, a session SVID, an ended session) otherwise.
 */
export async function requireAdmin(deps: AdminGuardDeps, call: PeerCall): Promise<string> {
  const now = deps.clock();
  const caller = await verifyCaller(deps, call, now);
  const { id, context } = caller;
  const session = await sessionOf(deps.store, context);
  if (session !== undefined) {
    assertLive(session, now);
    throw new AuthorizationError(
      `${id} presented the SVID of session ${session.id}: admin calls need the entry's workload SVID`,
    );
  }
  let admin = false;
  try {
    const entry = await deps.store.getEntry(context.agentId);
    admin =
      entry.admin &&
      entry.spiffeId === id &&
      (entry.expiresAt === undefined || entry.expiresAt.getTime() > now.getTime());
  } catch (e) {
    if (!isLanyardError(e)) throw e;
  }
  if (!admin) throw new AuthorizationError(`${id} is not an admin: its registration entry lacks admin=true`);
  return id;
}

export function guardAdmin(service: ServiceRegistration, deps: AdminGuardDeps): ServiceRegistration {
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(service.implementation)) {
    const attrs = service.definition[name];
    if (attrs === undefined || attrs.requestStream || attrs.responseStream) {
      implementation[name] = refuseStreaming;
      continue;
    }
    const unary = handler as grpc.handleUnaryCall<unknown, unknown>;
    implementation[name] = (
      call: grpc.ServerUnaryCall<unknown, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ): void => {
      requireAdmin(deps, call).then(
        (admin) => {
          deps.logger.debug({ method: name, admin }, 'remote admin call');
          unary(call, callback);
        },
        (e: unknown) => {
          const status = toStatus(e);
          deps.logger.warn({ method: name, peer: call.getPeer() }, status.details ?? 'refused');
          callback(status);
        },
      );
    };
  }
  return { ...service, implementation };
}

function refuseStreaming(
  call: grpc.ServerUnaryCall<unknown, unknown>,
  callback: grpc.sendUnaryData<unknown>,
): void {
  void call;
  callback({ code: grpc.status.UNIMPLEMENTED, details: 'not available over the public listener' });
}
