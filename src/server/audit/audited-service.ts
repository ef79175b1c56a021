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
import { toStatus, ERROR_CODE_METADATA_KEY } from '../grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import type { Logger } from '../logging';
import { verifyPeerSvid, type PeerCall } from '../tls/peer-svid';
import type { StoreOps } from '../../store/store';
import { withTransactionalAudit } from './in-transaction';
import type { AuditRecorder } from './recorder';
import { contextFields, svidFields, type SvidFields } from './svid-fields';

/** The caller as the audit trail names it: its verified SVID, else what it presented, else the listener's actor. */
export interface AuditCaller extends SvidFields {
  actor?: string;
}

export interface MethodAudit {
  event: AuditEventType;
  /**
   * Records for an allowed call (several for a cascade or a batch). `tx` is the handler's transaction when
   * they are written inside it (read through it, not the store, which refuses calls from inside).
   */
  allowed(
    request: never,
    response: never,
    caller: AuditCaller,
    tx?: StoreOps,
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
  /** Methods that change nothing and are not recorded. */
  readOnly: readonly string[];
}

/** Who called: verified SVID fields when it verifies, otherwise the SPIFFE ID the certificate claims. */
export function auditCaller(
  call: PeerCall,
  options: Pick<AuditServiceOptions, 'ca' | 'clock' | 'defaultActor'>,
): AuditCaller {
  const raw = call.getAuthContext?.()?.sslPeerCertificate?.raw;
  if (raw === undefined || raw.length === 0) {
    return options.defaultActor !== undefined ? { actor: options.defaultActor } : {};
  }
  if (options.ca !== undefined) {
    try {
      const peer = verifyPeerSvid(call, options.ca, options.clock());
      const leaf = peer.chain[0]!;
      return {
        actor: peer.id.toString(),
        serial: leaf.serialHex,
        ...(peer.context !== undefined && contextFields(peer.context)),
      };
    } catch {
      // Not a valid SVID of ours: record what it claims, nothing more (its context is not trustworthy).
    }
  }
  const claimed = svidFields(new Uint8Array(raw)).subject;
  return claimed !== undefined ? { actor: `unverified:${claimed}` } : { actor: 'unverified:no SPIFFE ID' };
}

export function errorCodeOf(status: Partial<grpc.StatusObject> | grpc.ServiceError | null): string {
  const meta = status?.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
  if (typeof meta === 'string') return meta;
  const code = status?.code;
  return code !== undefined ? `GRPC_${grpc.status[code] ?? code}` : 'GRPC_UNKNOWN';
}

export function auditService(
  service: ServiceRegistration,
  options: AuditServiceOptions,
): ServiceRegistration {
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(service.implementation)) {
    const attrs = service.definition[name];
    const audit = options.methods[name];
    if (audit === undefined) {
      if (
        attrs !== undefined &&
        !attrs.requestStream &&
        !attrs.responseStream &&
        !options.readOnly.includes(name)
      ) {
        throw new Error(`${service.name}.${name}: no audit describer and not marked read-only`);
      }
      implementation[name] = handler;
      continue;
    }
    const unary = handler as grpc.handleUnaryCall<unknown, unknown>;
    implementation[name] = (
      call: grpc.ServerUnaryCall<unknown, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ): void => {
      const caller = auditCaller(call as unknown as PeerCall, options);
      const base = { event: audit.event, ...(caller.actor !== undefined && { actor: caller.actor }) };
      // Set once the handler's transaction wrote the allow records; a rolled-back one ends in `err` anyway.
      let recordedInTransaction = false;
      const done: grpc.sendUnaryData<unknown> = (err, response, trailer, flags) => {
        if (err) {
          const denied: AuditEvent = {
            ...caller,
            ...audit.denied?.(call.request as never, caller),
            ...base,
            decision: 'deny',
            reason: errorCodeOf(err),
          };
          // Queued (the store serialises appends, so it lands before any later call's records), not awaited:
          // the refused call may still hold a store transaction that ends only once the caller has its answer.
          options.recorder
            .record(denied)
            .catch((e: unknown) =>
              options.logger.error({ err: e, method: name }, 'refusal not recorded in the audit trail'),
            );
          callback(err, response, trailer, flags);
          return;
        }
        if (recordedInTransaction) {
          callback(null, response, trailer, flags);
          return;
        }
        Promise.resolve()
          .then(() => audit.allowed(call.request as never, response as never, caller))
          .then(async (events) => {
            for (const e of events) await options.recorder.record({ ...base, ...e, decision: 'allow' });
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
      withTransactionalAudit(
        {
          record: async (tx, response) => {
            const events = await audit.allowed(call.request as never, response as never, caller, tx);
            for (const e of events) await options.recorder.recordIn(tx, { ...base, ...e, decision: 'allow' });
            recordedInTransaction = true;
          },
        },
        () => unary(call, done),
      );
    };
  }
  return { ...service, implementation };
}
