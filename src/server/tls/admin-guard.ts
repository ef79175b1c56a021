/**
 * Remote admin: the RegistrationService on the public listener, for callers whose mTLS SVID verifies and
 * whose registration entry (named by the SVID's agent context) has admin=true. Every unary method is
 * wrapped, so a method added to the service later is guarded too; anything not unary is refused.
 */
import * as grpc from '@grpc/grpc-js';
import type { CaManager } from '../../ca';
import { AuthorizationError, isLanyardError } from '../../errors';
import type { Store } from '../../store/store';
import { toStatus } from '../grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import type { Logger } from '../logging';
import { verifyPeerSvid, type PeerCall } from './peer-svid';

export interface AdminGuardDeps {
  ca: CaManager;
  store: Store;
  clock: () => Date;
  logger: Logger;
}

/** Resolves when the caller is an admin; rejects with UNAUTHENTICATED or PERMISSION_DENIED otherwise. */
export async function requireAdmin(deps: AdminGuardDeps, call: PeerCall): Promise<string> {
  const now = deps.clock();
  const peer = verifyPeerSvid(call, deps.ca, now);
  const id = peer.id.toString();
  const entryId = peer.context?.agentId;
  if (entryId === undefined) throw new AuthorizationError(`${id} is not a workload SVID: no admin rights`);
  let admin = false;
  try {
    const entry = await deps.store.getEntry(entryId);
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
