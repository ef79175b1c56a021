/**
 * The one place that decides which services each listener serves. Add a service here, not in the server
 * shell: the admin socket carries the registration and CA admin APIs (guarded by file permissions); the
 * public TLS listener carries attestation and the bundle to anyone, and those admin APIs to admin SVIDs only.
 */
import * as grpc from '@grpc/grpc-js';
import type { Attestors } from '../attest';
import type { IssuancePolicySource } from '../policy';
import type { CaManager } from '../ca';
import type { TrustDomain } from '../spiffe';
import type { Store } from '../store/store';
import { createAdminService } from './admin/service';
import type { IngestQuota } from './audit/ingest-quota';
import { auditListener } from './audit-listener';
import type { AuditRecorder } from './audit/recorder';
import { bindPrivately, clearStaleSocket, removeSocket } from '../internal/unix-socket';
import { createAttestationService } from './attestation/service';
import { createBundleService } from './bundle/service';
import { formatHostPort, type ServerConfig } from './config';
import type { JwtAuthority } from './node/jwt-authority';
import { createNodeService } from './node/service';
import type { ListenerSpec } from './grpc-server';
import type { Logger } from '../internal/logging';
import { createRegistrationService } from './registration/service';
import type { PrincipalVerifier } from './sessions/principal';
import type { RevocationFeed } from './sessions/revocation-feed';
import type { RevocationWatchers } from './sessions/watch-revocations';
import { createSessionAdminService } from './sessions/admin-service';
import type { SessionDeps } from './sessions/deps';
import { createSessionService } from './sessions/service';
import { guardAdmin } from './auth/admin-guard';
import type { CaCertificateProvider } from './tls/svid-credentials';
import { publicListenerCredentials } from './tls/svid-credentials';
import type { FederationManager } from './federation/manager';

export interface ServerContext {
  config: ServerConfig;
  trustDomain: TrustDomain;
  store: Store;
  logger: Logger;
  clock: () => Date;
  ca: CaManager;
  attestors: Attestors;
  /** The server SVID and bundle for the public listener's TLS, following rotation. */
  certificates: CaCertificateProvider;
  /** Trusted issuers of principal tokens (StartSession). */
  principals: PrincipalVerifier;
  /** Committed revocations, to WatchRevocations streams. */
  revocations: RevocationFeed;
  /** The open WatchRevocations streams of both listeners, with their limits. */
  watchers: RevocationWatchers;
  /** The audit trail: records every attestation, issuance, session, grant, revocation and admin change. */
  audit: AuditRecorder;
  /** The issuance policy engine when policy.files is set. */
  policy?: IssuancePolicySource;
  /** Signs JWT-SVIDs (NodeService.NewJwtSvid); its public keys are in the bundle as jwt-svid keys. */
  jwt: JwtAuthority;
  /** Federation relationships and the foreign bundles polled for them. */
  federation?: FederationManager;
  /** What workloads may ship into the audit trail (audit.ingest). */
  auditIngest?: {
    quota: IngestQuota;
    times: { maxClockSkewSeconds: number; maxAgeSeconds: number };
  };
}

export function buildListeners(ctx: ServerContext): ListenerSpec[] {
  // Every state-changing call on either listener is audited, and both serve the AuditService (admin only).
  return [auditListener(ctx, adminListener(ctx), 'admin'), auditListener(ctx, publicListener(ctx), 'public')];
}

/**
 * The public listener: TLS with the server's SVID. Attest and the bundle need only server-authenticated
 * TLS; Renew and the registration API verify the caller's client SVID per call (tls/peer-svid.ts).
 */
export function publicListener(ctx: ServerContext): ListenerSpec {
  const registration = createRegistrationService(
    registrationDeps(ctx, ctx.logger.child({ listener: 'public' })),
  );
  const adminGuard = { ca: ctx.ca, store: ctx.store, clock: ctx.clock };
  return {
    name: 'public',
    address: formatHostPort(ctx.config.listenAddress),
    credentials: publicListenerCredentials(ctx.certificates),
    services: [
      createAttestationService({ ...issuanceDeps(ctx), attestors: ctx.attestors }),
      createBundleService({
        ca: ctx.ca,
        logger: ctx.logger,
        extraKeys: () => [...ctx.audit.ring().jwks(), ...ctx.jwt.jwks()],
      }),
      createSessionService(sessionDeps(ctx)),
      // Node agents, over mTLS with their own SVID: only the entries whose parent_id is the agent.
      createNodeService({ ...issuanceDeps(ctx), jwt: ctx.jwt }),
      guardAdmin(registration, adminGuard),
      guardAdmin(
        createAdminService({ ca: ctx.ca, logger: ctx.logger.child({ listener: 'public' }) }),
        adminGuard,
      ),
    ],
  };
}

/** The local admin socket: insecure credentials, because only the socket's owner can connect at all. */
export function adminListener(ctx: ServerContext): ListenerSpec {
  const socketPath = ctx.config.adminSocketPath;
  return {
    name: 'admin',
    address: `unix://${socketPath}`,
    credentials: grpc.ServerCredentials.createInsecure(),
    services: [
      createRegistrationService(registrationDeps(ctx, ctx.logger)),
      // For `lanyard bundle show` on the server host.
      createBundleService({
        ca: ctx.ca,
        logger: ctx.logger,
        extraKeys: () => [...ctx.audit.ring().jwks(), ...ctx.jwt.jwks()],
      }),
      // `lanyard ca rotate` and `lanyard ca show`.
      createAdminService({ ca: ctx.ca, logger: ctx.logger }),
      // `lanyard session end` and `lanyard svid revoke`.
      createSessionAdminService(sessionDeps(ctx)),
    ],
    beforeBind: () => clearStaleSocket(socketPath),
    bind: (doBind) => bindPrivately(socketPath, doBind),
    afterClose: () => removeSocket(socketPath),
  };
}

/**
 * What every service that issues SVIDs (attestation, node, sessions) takes from the context: the same store,
 * CA, clock, log and default lifetime, and the issuance policy and federated bundles when they are configured.
 */
function issuanceDeps(ctx: ServerContext) {
  return {
    store: ctx.store,
    ca: ctx.ca,
    defaultTtlSeconds: ctx.config.svidDefaultTtlSeconds,
    clock: ctx.clock,
    logger: ctx.logger,
    ...(ctx.policy !== undefined && { policy: ctx.policy }),
    ...(ctx.federation !== undefined && { federation: ctx.federation }),
  };
}

/** The registration API's dependencies; each listener names its own logger. */
function registrationDeps(ctx: ServerContext, logger: Logger) {
  return {
    store: ctx.store,
    trustDomain: ctx.trustDomain,
    logger,
    clock: ctx.clock,
    ...(ctx.federation !== undefined && { federation: ctx.federation }),
  };
}

function sessionDeps(ctx: ServerContext): SessionDeps {
  return {
    ...issuanceDeps(ctx),
    caTtlSeconds: ctx.config.caTtlSeconds,
    principals: ctx.principals,
    revocations: ctx.revocations,
    limits: ctx.config.limits,
    watchers: ctx.watchers,
  };
}
