/**
 * The one place that decides which services each listener serves. Add a service here, not in the server
 * shell: the admin socket carries the registration API (guarded by file permissions); the public TLS
 * listener (attestation, bundle, later sessions) joins here with the CA work of issue 3.
 */
import * as grpc from '@grpc/grpc-js';
import type { TrustDomain } from '../spiffe';
import type { Store } from '../store/store';
import { bindPrivately, clearStaleSocket, removeSocket } from './admin-socket';
import type { ServerConfig } from './config';
import type { ListenerSpec } from './grpc-server';
import type { Logger } from './logging';
import { createRegistrationService } from './registration/service';

export interface ServerContext {
  config: ServerConfig;
  trustDomain: TrustDomain;
  store: Store;
  logger: Logger;
  clock: () => Date;
}

export function buildListeners(ctx: ServerContext): ListenerSpec[] {
  return [
    adminListener(ctx),
    // Issue 3: the public listener on ctx.config.listenAddress with TLS credentials from the server's own
    // SVID, serving AttestationService and BundleService (and, over mTLS, RegistrationService for callers
    // whose entry is admin).
  ];
}

/** The local admin socket: insecure credentials, because only the socket's owner can connect at all. */
export function adminListener(ctx: ServerContext): ListenerSpec {
  const socketPath = ctx.config.adminSocketPath;
  return {
    name: 'admin',
    address: `unix://${socketPath}`,
    credentials: grpc.ServerCredentials.createInsecure(),
    services: [
      createRegistrationService({
        store: ctx.store,
        trustDomain: ctx.trustDomain,
        logger: ctx.logger,
        clock: ctx.clock,
      }),
    ],
    beforeBind: () => clearStaleSocket(socketPath),
    bind: (doBind) => bindPrivately(socketPath, doBind),
    afterClose: () => removeSocket(socketPath),
  };
}
