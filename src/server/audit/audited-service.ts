/**
 * Auditing at the service boundary: wraps a service's unary handlers so that every call of a state-changing
 * method, allowed or refused, becomes audit records before the caller gets its answer. One wrapper for all
 * services keeps the handlers free of audit code and makes refusals (decision deny, the stable error code as
 * reason) as complete as successes. A unary method with neither a describer nor a place in `readOnly`
 * refuses to build: a method added later cannot silently go unaudited.
 *
 * Allowed: the records are appended (durably) and then the response is sent; if appending fails the caller
 * gets UNAVAILABLE (ERR_AUDIT_WRITE_FAILED) instead of an acknowledgement. For `inTransaction` methods the
 * handler appends them inside its own transaction, so a failed append also rolls the state change back. Refused: the deny record is queued
 * and the error sent at once (a refusal acknowledges nothing; a failure to record it is logged).
 */
import * as grpc from '@grpc/grpc-js';
import type { CaManager } from '../../ca';
import type { AuditEvent, AuditEventType } from '../../audit/record';
import { toStatus, ERROR_CODE_METADATA_KEY } from '../../internal/grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import type { Logger } from '../../internal/logging';
import { wrapMethods, type MethodInfo } from '../../internal/method-wrap';
import type { VerifyX509SvidResult } from '../../verify';
import { verifyPeerSvid, type PeerCall } from '../tls/peer-svid';
import { authorizedPeerDer } from '../tls/tls-socket';
import type { StoreOps } from '../../store/store';
import { authenticatedPeerOf } from './authenticated-peer';
import { withTransactionalAudit } from './in-transaction';
import type { AuditRecorder } from './recorder';
import { contextFields, type SvidFields } from '../../audit/context-fields';
import { svidFields } from './svid-fields';

/** The caller as the audit trail names it: its verified SVID, else what it presented, else the listener's actor. */
export interface AuditCaller extends SvidFields {
  actor?: string;
}

export interface MethodAudit {
  event: AuditEventType;
  /**
   * Records for an allowed call (several for a cascade or a batch). `tx` is the handler's transaction when
   * they are written inside it (read through it, not the store, which refuses calls from inside). Each event
   * returned must be a new object: the wrapper completes it in place (`completeAllowed`).
   */
  allowed(
    request: never,
    response: never,
    caller: AuditCaller,
    tx?: StoreOps,
    detail?: never,
  ): AuditEvent[] | Promise<AuditEvent[]>;
  /**
   * The handler writes the allow records inside its own store transaction (in-transaction.ts), so they commit
   * with the state change; the wrapper then appends none of its own.
   */
  inTransaction?: boolean;
  /** Fields of a refused call beyond event, decision, reason and the caller (e.g. the subject asked for). */
  denied?(request: never, caller: AuditCaller): Partial<AuditEvent>;
}

export interface AuditServiceOptions {
  recorder: AuditRecorder;
  logger: Logger;
  /** To verify the caller's client SVID (public listener); absent on the admin socket. */
  ca?: CaManager;
  clock: () => Date;
  /** The actor when the call has no client certificate (`admin-socket` on the admin socket). */
  defaultActor?: string;
  methods: Record<string, MethodAudit>;
  /** Methods that change nothing: not recorded, unless they are admin calls (then `admin.read`). */
  readOnly: readonly string[];
  /**
   * Which methods are admin calls: each one, allowed or refused, gets a log line naming its caller, and a
   * read-only one an `admin.read` record (a state-changing one has its own record already).
   */
  admin?: 'all' | readonly string[];
  /**
   * Which admin reads get an `admin.read` record: all (default), or only refusals — for the audit trail's
   * own reads, whose record would land in the chain being read (a head that is stale when it arrives, an
   * export followed by an unsigned record); those allowed reads are in the log only.
   */
  adminReads?: 'all' | 'refusals';
  /** For the admin-call log lines: "admin" (the socket) or "public". */
  listener?: string;
}

/** Who called: verified SVID fields when it verifies, otherwise the SPIFFE ID the certificate claims. */
export function auditCaller(
  call: PeerCall,
  options: Pick<AuditServiceOptions, 'ca' | 'clock' | 'defaultActor'>,
): AuditCaller {
  return auditCallerAt(call, options, options.clock());
}

/**
 * auditCaller as of `now` (when the call came in), taking the peer the call's own authentication verified when
 * there is one (authenticated-peer.ts) instead of verifying the certificate a second time.
 */
function auditCallerAt(
  call: PeerCall,
  options: Pick<AuditServiceOptions, 'ca' | 'defaultActor'>,
  now: Date,
): AuditCaller {
  const raw = typeof call.getAuthContext === 'function' ? authorizedPeerDer(call) : undefined;
  if (raw === undefined) {
    return options.defaultActor !== undefined ? { actor: options.defaultActor } : {};
  }
  if (options.ca !== undefined) {
    const authenticated = authenticatedPeerOf(call, options.ca);
    if (authenticated !== undefined) return verifiedCaller(authenticated);
    try {
      return verifiedCaller(verifyPeerSvid(call, options.ca, now));
    } catch {
      // Not a valid SVID of ours: record what it claims, nothing more (its context is not trustworthy).
    }
  }
  const claimed = svidFields(new Uint8Array(raw)).subject;
  return claimed !== undefined ? { actor: `unverified:${claimed}` } : { actor: 'unverified:no SPIFFE ID' };
}

function verifiedCaller(peer: VerifyX509SvidResult): AuditCaller {
  const caller: AuditCaller = peer.context !== undefined ? contextFields(peer.context) : {};
  caller.actor = peer.id.toString();
  caller.serial = peer.chain[0]!.serialHex;
  return caller;
}

/**
 * The caller of `call` as its records name it, worked out once and only when a record or log line needs it: by
 * then the handler's authentication has usually verified the caller's SVID, and its answer is taken instead of a
 * second verification. Otherwise the certificate is verified as of the call's arrival, as it always was.
 */
function callerNaming(
  call: PeerCall,
  options: Pick<AuditServiceOptions, 'ca' | 'clock' | 'defaultActor'>,
): () => AuditCaller {
  const arrived = options.clock();
  let named: AuditCaller | undefined;
  return () => (named ??= auditCallerAt(call, options, arrived));
}

export function errorCodeOf(status: Partial<grpc.StatusObject> | grpc.ServiceError | null): string {
  const meta = status?.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
  if (typeof meta === 'string') return meta;
  const code = status?.code;
  return code !== undefined ? `GRPC_${grpc.status[code] ?? code}` : 'GRPC_UNKNOWN';
}

/**
 * An allowed call's event as recorded: the method's event type and the caller's actor unless the describer set
 * its own, decision allow (what `{ event, actor, ...e, decision: 'allow' }` gives). Completed in place rather than
 * copied: a spread copy of a describer's record-sized event cost several times what building it did (measured,
 * docs/design/performance-log.md "Renew: the audit wrapper's share"), and the recorder checks and copies it anyway.
 */
function completeAllowed(e: AuditEvent, event: AuditEventType, caller: AuditCaller): AuditEvent {
  if (!Object.hasOwn(e, 'event')) e.event = event;
  if (!Object.hasOwn(e, 'actor') && caller.actor !== undefined) e.actor = caller.actor;
  e.decision = 'allow';
  return e;
}

/** The record of an admin call that changes nothing (a read): who asked for what. */
function adminReadEvent(method: MethodInfo, caller: AuditCaller): AuditEvent {
  return {
    event: 'admin.read',
    decision: 'allow',
    ...(caller.actor !== undefined && { actor: caller.actor }),
    ...(caller.serial !== undefined && { serial: caller.serial }),
    action: method.path,
  };
}

function adminRead(method: MethodInfo, allowedToo: boolean): MethodAudit {
  return {
    event: 'admin.read',
    allowed: (_req: never, _res: never, caller) => (allowedToo ? [adminReadEvent(method, caller)] : []),
    denied: (_req: never, caller) => adminReadEvent(method, caller),
  };
}

export function auditService(
  service: ServiceRegistration,
  options: AuditServiceOptions,
): ServiceRegistration {
  const isAdmin = (name: string): boolean =>
    options.admin === 'all' || (options.admin?.includes(name) ?? false);
  /** The admin call's log line: every one, allowed or refused, names its caller. */
  const logAdmin = (
    method: MethodInfo,
    caller: AuditCaller,
    err: Partial<grpc.StatusObject> | grpc.ServiceError | null,
  ): void => {
    if (!isAdmin(method.name)) return;
    const fields = {
      listener: options.listener,
      method: method.path,
      caller: caller.actor ?? 'unknown',
      ...(caller.serial !== undefined && { serial: caller.serial }),
    };
    if (err) {
      options.logger.warn(
        { ...fields, decision: 'deny', errorCode: errorCodeOf(err) },
        `admin call refused: ${err.details ?? ''}`,
      );
    } else options.logger.info({ ...fields, decision: 'allow' }, 'admin call');
  };
  const describerOf = (method: MethodInfo): MethodAudit | undefined => {
    const described = options.methods[method.name];
    if (described !== undefined) return described;
    const attrs = method.definition;
    if (!options.readOnly.includes(method.name) && !attrs.requestStream && !attrs.responseStream) {
      throw new Error(`${service.name}.${method.name}: no audit describer and not marked read-only`);
    }
    return isAdmin(method.name) ? adminRead(method, options.adminReads !== 'refusals') : undefined;
  };
  return wrapMethods(service, {
    unary: (method, unary) => {
      const audit = describerOf(method);
      if (audit === undefined) return unary;
      const admin = isAdmin(method.name);
      return (call, answer) => {
        const name = callerNaming(call as unknown as PeerCall, options);
        // The log line says what the caller got, after the records (a failed append turns OK into UNAVAILABLE).
        const callback: grpc.sendUnaryData<unknown> = (err, response, trailer, flags) => {
          if (admin) logAdmin(method, name(), err);
          answer(err, response, trailer, flags);
        };
        // Set once the handler's transaction wrote the allow records; a rolled-back one ends in `err` anyway.
        let recordedInTransaction = false;
        const done: grpc.sendUnaryData<unknown> = (err, response, trailer, flags) => {
          if (err) {
            const caller = name();
            const denied: AuditEvent = {
              ...caller,
              ...audit.denied?.(call.request as never, caller),
              event: audit.event,
              ...(caller.actor !== undefined && { actor: caller.actor }),
              decision: 'deny',
              reason: errorCodeOf(err),
            };
            // Queued (the store serialises appends, so it lands before any later call's records), not
            // awaited: the refused call may still hold a store transaction that ends only once the caller has
            // its answer.
            options.recorder
              .record(denied)
              .catch((e: unknown) =>
                options.logger.error(
                  { err: e, method: method.name },
                  'refusal not recorded in the audit trail',
                ),
              );
            callback(err, response, trailer, flags);
            return;
          }
          if (recordedInTransaction) {
            callback(null, response, trailer, flags);
            return;
          }
          Promise.resolve()
            .then(() => audit.allowed(call.request as never, response as never, name()))
            .then(async (events) => {
              const caller = name();
              for (const e of events) await options.recorder.record(completeAllowed(e, audit.event, caller));
            })
            .then(
              () => callback(null, response, trailer, flags),
              (e: unknown) => callback(toStatus(e)),
            );
        };
        if (audit.inTransaction !== true) {
          unary(call, done);
          return;
        }
        const writeIn = async (tx: StoreOps, events: AuditEvent[], caller: AuditCaller): Promise<void> => {
          for (const e of events)
            await options.recorder.recordIn(tx, completeAllowed(e, audit.event, caller));
          recordedInTransaction = true;
        };
        withTransactionalAudit(
          {
            record: (tx, response, detail) => {
              const caller = name();
              const events = audit.allowed(
                call.request as never,
                response as never,
                caller,
                tx,
                detail as never,
              );
              // A describer that needs no store read answers at once: no turn of the microtask queue for it.
              return Array.isArray(events)
                ? writeIn(tx, events, caller)
                : events.then((e) => writeIn(tx, e, caller));
            },
          },
          () => unary(call, done),
        );
      };
    },
    // An admin stream (ExportAudit) is recorded when it ends: refused, or served (also when the client left).
    serverStream: (method, stream) => {
      if (!isAdmin(method.name)) return stream;
      return (call) => {
        const name = callerNaming(call as unknown as PeerCall, options);
        let settled = false;
        const settle = (err: Partial<grpc.StatusObject> | null): void => {
          if (settled) return;
          settled = true;
          const caller = name();
          logAdmin(method, caller, err);
          if (!err && options.adminReads === 'refusals') return;
          const event: AuditEvent = {
            ...adminReadEvent(method, caller),
            ...(err && { decision: 'deny', reason: errorCodeOf(err) }),
          };
          options.recorder
            .record(event)
            .catch((e: unknown) =>
              options.logger.error(
                { err: e, method: method.name },
                'admin read not recorded in the audit trail',
              ),
            );
        };
        call.once('error', (status: Partial<grpc.StatusObject>) => settle(status));
        call.once('finish', () => settle(null));
        call.once('cancelled', () => settle(null));
        stream(call);
      };
    },
  });
}
