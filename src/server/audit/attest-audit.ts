/**
 * Auditing the Attest stream (bidirectional, so the unary wrapper does not apply): the attestor type is read
 * from the params message as it arrives; the allow record is lent to the handler (lendAttestAudit), which
 * writes it in the transaction that spends the evidence and issues the SVID, so the SVID, the spent token and
 * the record commit together or not at all (a handler that does not take it gets its result held until the
 * record is durable); a refusal's deny record is queued and the error sent without waiting for it. A call the client cancelled gets no
 * record: nothing is sent to it, and a join-token transaction still open rolls back.
 */
import type * as grpc from '@grpc/grpc-js';
import type { AttestRequest, AttestResponse } from '../../gen/lanyard/v1/attestation';
import { toStatus } from '../../internal/grpc-call';
import type { Logger } from '../../internal/logging';
import { errorCodeOf } from './audited-service';
import { lendAttestAudit } from './in-transaction';
import type { AuditRecorder } from './recorder';
import { signedLeafFields, svidFields } from './svid-fields';

type AttestCall = grpc.ServerDuplexStream<AttestRequest, AttestResponse>;

export function auditAttest(
  handler: grpc.handleBidiStreamingCall<AttestRequest, AttestResponse>,
  recorder: AuditRecorder,
  logger: Logger,
): grpc.handleBidiStreamingCall<AttestRequest, AttestResponse> {
  return (call: AttestCall) => {
    let attestor: string | undefined;
    let requested: string | undefined;
    // Registered before the handler's own listener, so the params are known when it decides.
    call.on('data', (req: AttestRequest) => {
      if (req.step?.$case === 'params' && attestor === undefined) {
        attestor = req.step.value.attestorType.slice(0, 64);
        requested = req.step.value.spiffeId.slice(0, 2048);
      }
    });
    let pending: Promise<void> = Promise.resolve();
    let failed = false;
    const write = call.write.bind(call);
    const end = call.end.bind(call);
    const emit = call.emit.bind(call);
    const base = (): { action?: string } => (attestor !== undefined ? { action: attestor } : {});
    // Set once the handler wrote the allow record inside its own transaction (committed before it answers).
    let recordedInTransaction = false;
    lendAttestAudit(call, {
      record: async (tx, leaf, spent) => {
        // From the fields the leaf was signed with, as Renew's record: the same record as a parse of its DER.
        await recorder.recordIn(tx, {
          event: 'svid.attest',
          decision: 'allow',
          ...base(),
          ...signedLeafFields(leaf),
          ...(spent !== undefined && { reason: spent }),
        });
        recordedInTransaction = true;
      },
    });

    call.write = ((msg: AttestResponse, ...rest: unknown[]): boolean => {
      if (msg.step?.$case !== 'result' || recordedInTransaction) {
        return (write as (...a: unknown[]) => boolean)(msg, ...rest);
      }
      const leaf = msg.step.value.svid?.certChain[0];
      pending = pending.then(() =>
        recorder
          .record({
            event: 'svid.attest',
            decision: 'allow',
            ...base(),
            ...svidFields(leaf !== undefined ? new Uint8Array(leaf) : undefined),
          })
          .then(
            () => void (write as (...a: unknown[]) => boolean)(msg, ...rest),
            (e: unknown) => {
              failed = true;
              emit('error', toStatus(e));
            },
          ),
      );
      return true;
    }) as typeof call.write;

    call.end = ((...args: unknown[]) => {
      pending = pending.then(() => {
        if (!failed) (end as (...a: unknown[]) => void)(...args);
      });
      return call;
    }) as typeof call.end;

    call.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
      if (event !== 'error') return emit(event, ...args);
      const status = args[0] as Partial<grpc.StatusObject>;
      // Queued, not awaited: the failed attestation may still hold a store transaction (a join token) that
      // rolls back only after the error went out. A result already pending is sent (or failed) first.
      recorder
        .record({
          event: 'svid.attest',
          decision: 'deny',
          reason: errorCodeOf(status),
          ...base(),
          ...(requested !== undefined && requested !== '' && { subject: requested }),
        })
        .catch((e: unknown) =>
          logger.error({ err: e }, 'refused attestation not recorded in the audit trail'),
        );
      pending = pending.then(() => void emit('error', ...args));
      return true;
    }) as typeof call.emit;

    handler(call);
  };
}
