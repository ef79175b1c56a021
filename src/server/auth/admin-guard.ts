/**
 * Remote admin: the admin services on the public listener, for callers that resolveCaller accepts as
 * `admin` (a verified, unrevoked workload SVID of ours whose registration entry exists, issues it and has
 * admin=true; never a session SVID). Every unary method is wrapped, so a method added to a service later is
 * guarded too; streaming methods are refused (they are served on the admin socket only).
 *
 * The audit wrapper around this guard (audit/audited-service.ts) logs and records every admin call, allowed
 * or refused, with the caller.
 */
import * as grpc from '@grpc/grpc-js';
import type { CaManager } from '../../ca';
import type { Store } from '../../store/store';
import { resolveCaller, type ResolvedCaller } from './resolve-caller';
import { toStatus } from '../../internal/grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import { wrapMethods } from '../../internal/method-wrap';
import type { PeerCall } from '../tls/peer-svid';

export interface AdminGuardDeps {
  ca: CaManager;
  store: Store;
  clock: () => Date;
}

/**
 * Resolves with the admin caller; rejects with UNAUTHENTICATED (no, invalid or revoked SVID) or
 * PERMISSION_DENIED (not an admin, a session SVID, an ended session, a deleted entry) otherwise.
 */
export function requireAdmin(deps: AdminGuardDeps, call: PeerCall): Promise<ResolvedCaller> {
  return resolveCaller(deps, call, 'admin', deps.clock());
}

const NOT_HERE: Partial<grpc.StatusObject> = {
  code: grpc.status.UNIMPLEMENTED,
  details: 'not available over the public listener: use the admin socket',
};

export function guardAdmin(service: ServiceRegistration, deps: AdminGuardDeps): ServiceRegistration {
  return wrapMethods(service, {
    unary: (_method, unary) => (call, callback) => {
      requireAdmin(deps, call).then(
        () => unary(call, callback),
        (e: unknown) => callback(toStatus(e)),
      );
    },
    serverStream: () => (call) => void call.emit('error', NOT_HERE),
    requestStream: (method) =>
      method.definition.responseStream
        ? (call: grpc.ServerDuplexStream<unknown, unknown>): void => void call.emit('error', NOT_HERE)
        : (_call: grpc.ServerReadableStream<unknown, unknown>, callback: grpc.sendUnaryData<unknown>): void =>
            callback(NOT_HERE),
  });
}
