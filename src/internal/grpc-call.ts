/**
 * How every gRPC handler reports its outcome: a LanyardError becomes the gRPC status of its code (internal/grpc-status-map.ts), with the message
 * as details and the stable code in trailing metadata; anything else is a bug and becomes INTERNAL with a
 * generic message (the details go to the log, not to the caller).
 */
import * as grpc from '@grpc/grpc-js';
import { isLanyardError } from '../errors';
import { ERROR_CODE_TRAILER, grpcStatusOf } from './grpc-status-map';
import type { Logger } from './logging';

/** Trailing-metadata key carrying the stable Lanyard error code (e.g. ERR_REVISION_CONFLICT). */
export const ERROR_CODE_METADATA_KEY = ERROR_CODE_TRAILER;

export function toStatus(e: unknown): Partial<grpc.StatusObject> & { code: grpc.status } {
  if (isLanyardError(e)) {
    const metadata = new grpc.Metadata();
    metadata.set(ERROR_CODE_METADATA_KEY, e.code);
    return { code: grpcStatusOf(e) as number as grpc.status, details: e.message, metadata };
  }
  return { code: grpc.status.INTERNAL, details: 'internal error (see the server log)' };
}

export interface CallLogOptions {
  /** Level of the line logged for a successful call. Failures are 'warn' (caller's fault) or 'error'. */
  okLevel?: 'info' | 'debug';
}

/**
 * Adapts an async function to a grpc-js unary handler: one log line per call (method, status, duration,
 * peer — never the request body, which may hold secrets), errors mapped by toStatus.
 */
export function unaryHandler<Req, Res>(
  method: string,
  logger: Logger,
  fn: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
  options: CallLogOptions = {},
): grpc.handleUnaryCall<Req, Res> {
  const okLevel = options.okLevel ?? 'info';
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const elapsedMs = (): number => Number(process.hrtime.bigint() - started) / 1e6;
    fn(call.request, call).then(
      (response) => {
        // The line's fields (the peer's address among them) are built only when the line is written: with
        // its level off (`log.level: warn` and above), a successful call costs no log work at all.
        if (logger.isLevelEnabled(okLevel)) {
          logger[okLevel]({ method, code: 'OK', durationMs: elapsedMs(), peer: call.getPeer() });
        }
        callback(null, response);
      },
      (e: unknown) => {
        const status = toStatus(e);
        const fields = {
          method,
          code: grpc.status[status.code],
          errorCode: isLanyardError(e) ? e.code : undefined,
          durationMs: elapsedMs(),
          peer: call.getPeer(),
        };
        if (status.code === grpc.status.INTERNAL) logger.error({ ...fields, err: e }, 'call failed');
        else logger.warn(fields, status.details);
        callback(status);
      },
    );
  };
}
