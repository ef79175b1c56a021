/** How an HTTP helper (https server, express, fastify) answers a refused peer: status + JSON body naming why. */
import { ErrorCode, isLanyardError } from '../errors';
import { httpStatusOf } from '../internal/http-status-map';

export interface HttpRefusal {
  status: number;
  body: { error: { code: string; message: string } };
}

/** The status of the error's code (internal/http-status-map.ts); 500 for anything that is not a LanyardError. */
export function httpRefusal(e: unknown): HttpRefusal {
  if (!isLanyardError(e)) {
    return { status: 500, body: { error: { code: ErrorCode.INTERNAL, message: 'peer check failed' } } };
  }
  return { status: httpStatusOf(e), body: { error: { code: e.code, message: e.message } } };
}
