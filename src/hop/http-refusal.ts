/** How an HTTP helper (https server, express, fastify) answers a refused peer: status + JSON body naming why. */
import { ErrorCode, GrpcStatus, isLanyardError } from '../errors';

export interface HttpRefusal {
  status: number;
  body: { error: { code: string; message: string } };
}

/** 400: a request target with no one meaning; 401: no or invalid certificate; 403: authorization or policy denied; 503: this service has no SVID yet. */
export function httpRefusal(e: unknown): HttpRefusal {
  if (!isLanyardError(e)) {
    return { status: 500, body: { error: { code: ErrorCode.INTERNAL, message: 'peer check failed' } } };
  }
  const status =
    e.code === ErrorCode.INVALID_REQUEST_TARGET
      ? 400
      : e.grpcStatus === GrpcStatus.UNAUTHENTICATED
        ? 401
        : e.grpcStatus === GrpcStatus.PERMISSION_DENIED
          ? 403
          : e.grpcStatus === GrpcStatus.UNAVAILABLE
            ? 503
            : e.grpcStatus === GrpcStatus.INTERNAL
              ? 500
              : 403;
  return { status, body: { error: { code: e.code, message: e.message } } };
}
