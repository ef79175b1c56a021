/**
 * Puts the audit trail on a server's listeners: every state-changing service is wrapped (audited-service.ts,
 * attest-audit.ts) and the AuditService is added, admin only. Services are matched by name, so the table
 * below is the one place that says what is audited.
 */
import type { CaManager } from '../ca';
import type { Store } from '../store/store';
import { ADMIN_SERVICE_NAME } from './admin/service';
import { ATTESTATION_SERVICE_NAME } from './attestation/service';
import type { ListenerSpec, ServiceRegistration } from './grpc-server';
import type { Logger } from '../internal/logging';
import { NODE_SERVICE_NAME } from './node/service';
import { REGISTRATION_SERVICE_NAME } from './registration/service';
import { SESSION_SERVICE_NAME } from './sessions/service';
import { guardAdmin } from './auth/admin-guard';
import { resolveCaller } from './auth/resolve-caller';
import { wrapMethods } from '../internal/method-wrap';
import { auditAttest } from './audit/attest-audit';
import { auditService, type MethodAudit } from './audit/audited-service';
import {
  ADMIN_READ_ONLY,
  adminMethods,
  attestationMethods,
  NODE_READ_ONLY,
  nodeMethods,
  REGISTRATION_READ_ONLY,
  registrationMethods,
  SESSION_READ_ONLY,
  sessionMethods,
} from './audit-describers';
import type { IngestQuota } from './audit/ingest-quota';
import type { AuditRecorder } from './audit/recorder';
import { createAuditService } from './audit/service';

/** How the admin socket is named as the actor: whoever can open it is an admin. */
export const ADMIN_SOCKET_ACTOR = 'admin-socket';

export interface AuditListenerDeps {
  store: Store;
  ca: CaManager;
  clock: () => Date;
  logger: Logger;
  audit: AuditRecorder;
  /** What workloads may ship on the public listener: their quota, and how a shipped record may be dated. */
  auditIngest?: {
    quota: IngestQuota;
    times: { maxClockSkewSeconds: number; maxAgeSeconds: number };
  };
}

interface ServiceAudit {
  methods: Record<string, MethodAudit>;
  readOnly: readonly string[];
  /** The admin calls among the methods (logged and recorded with their caller, reads included). */
  admin?: 'all' | readonly string[];
}

function table(store: Store, kind: 'admin' | 'public'): Record<string, ServiceAudit> {
  return {
    [SESSION_SERVICE_NAME]: {
      methods: sessionMethods(store),
      readOnly: SESSION_READ_ONLY,
      // RevokeSvid and the session reads are admin only; on the socket, ending a session is an admin act too.
      admin:
        kind === 'admin'
          ? ['endSession', 'revokeSvid', 'getSession', 'listSessions']
          : ['revokeSvid', 'getSession', 'listSessions'],
    },
    [REGISTRATION_SERVICE_NAME]: {
      methods: registrationMethods,
      readOnly: REGISTRATION_READ_ONLY,
      admin: 'all',
    },
    [ADMIN_SERVICE_NAME]: { methods: adminMethods, readOnly: ADMIN_READ_ONLY, admin: 'all' },
    [NODE_SERVICE_NAME]: { methods: nodeMethods, readOnly: NODE_READ_ONLY },
    [ATTESTATION_SERVICE_NAME]: { methods: attestationMethods, readOnly: [] },
  };
}

export function auditListener(
  deps: AuditListenerDeps,
  spec: ListenerSpec,
  kind: 'admin' | 'public',
): ListenerSpec {
  const audited = table(deps.store, kind);
  const logger = deps.logger.child({ component: 'audit', listener: kind });
  const callerOptions = kind === 'public' ? { ca: deps.ca } : ({ defaultActor: ADMIN_SOCKET_ACTOR } as const);
  const wrap = (s: ServiceRegistration): ServiceRegistration => {
    const t = audited[s.name];
    if (t === undefined) return s;
    const wrapped = auditService(s, {
      recorder: deps.audit,
      logger,
      clock: deps.clock,
      methods: t.methods,
      readOnly: t.readOnly,
      listener: kind,
      ...(t.admin !== undefined && { admin: t.admin }),
      ...callerOptions,
    });
    if (s.name !== ATTESTATION_SERVICE_NAME) return wrapped;
    return wrapMethods(wrapped, {
      requestStream: (method, handler) =>
        method.name === 'attest'
          ? auditAttest(handler as Parameters<typeof auditAttest>[0], deps.audit, logger)
          : handler,
    });
  };
  const auditApi = createAuditService({
    store: deps.store,
    recorder: deps.audit,
    logger: deps.logger,
    clock: deps.clock,
    // On the public listener a service ships its own chain with its own SVID (no admin right needed),
    // resolved like every mTLS caller: an ended session or a revoked SVID ships nothing.
    ...(kind === 'public' && {
      callerId: async (call) => (await resolveCaller(deps, call, 'workload-or-session', deps.clock())).id,
      ...(deps.auditIngest !== undefined && { quota: deps.auditIngest.quota }),
    }),
    ...(deps.auditIngest !== undefined && { shippedRecordTimes: deps.auditIngest.times }),
  });
  // Queries and export are admin only; ingest checks the caller itself (the chain must be the caller's).
  // The guard sits inside the audit wrapper, so its refusals are logged and recorded too.
  const served =
    kind === 'public'
      ? withUnguarded(
          guardAdmin(auditApi, { ca: deps.ca, store: deps.store, clock: deps.clock }),
          auditApi,
          'ingestAuditChain',
        )
      : auditApi;
  const api = auditService(served, {
    recorder: deps.audit,
    logger,
    clock: deps.clock,
    ...callerOptions,
    listener: kind,
    // Shipping a chain is an admin act only on the socket (any chain); on the public listener it is the
    // shipper's own.
    admin: kind === 'admin' ? 'all' : ['queryAuditRecords', 'getAuditHead', 'exportAudit'],
    adminReads: 'refusals',
    methods: {
      ingestAuditChain: {
        event: 'audit.ingest',
        allowed: (_req: never, res: { chain: string; added: number; headSeq: number }) => [
          {
            event: 'audit.ingest',
            decision: 'allow',
            subject: res.chain,
            reason: `${res.added} records, head ${res.headSeq}`,
          },
        ],
      },
    },
    readOnly: ['queryAuditRecords', 'getAuditHead', 'readAuditWitness'],
  });
  return { ...spec, services: [...spec.services.map(wrap), api] };
}

function withUnguarded(
  guarded: ServiceRegistration,
  original: ServiceRegistration,
  method: string,
): ServiceRegistration {
  return {
    ...guarded,
    implementation: { ...guarded.implementation, [method]: original.implementation[method]! },
  };
}
