/**
 * The HTTP edge's one table: the status a hop HTTP helper (Node https, express, fastify) answers a refused
 * request with. It tells a caller what the code's gRPC status tells it (grpc-status-map.ts, the one per-code
 * table), in HTTP's coarser terms: 401 when the peer did not authenticate (no, or an invalid, certificate); 503
 * when this service cannot currently decide (no SVID of its own, revocation state too old, a write that did not
 * land); 500 for a bug; 403 for everything else a peer can be refused for. Only a code whose HTTP answer is not
 * the one of its gRPC status is listed by code.
 */
import type { LanyardError, LanyardErrorCode } from '../errors';
import { GrpcStatus, grpcStatusByCode, type GrpcStatusCode } from './grpc-status-map';

/** The HTTP status of a gRPC status that says the same thing; any other refusal is 403. */
const httpStatusByGrpcStatus: Partial<Record<GrpcStatusCode, number>> = {
  [GrpcStatus.UNAUTHENTICATED]: 401,
  [GrpcStatus.UNAVAILABLE]: 503,
  [GrpcStatus.INTERNAL]: 500,
};

/** Codes whose HTTP answer is not the one of their gRPC status. */
const httpStatusOverrides: Partial<Record<LanyardErrorCode, number>> = {
  // A request target whose path has no one meaning is a malformed request, refused before any policy sees it.
  ERR_INVALID_REQUEST_TARGET: 400,
};

/** The HTTP status of every code. */
export const httpStatusByCode: Readonly<Record<LanyardErrorCode, number>> = Object.fromEntries(
  Object.entries(grpcStatusByCode).map(([code, grpc]) => [
    code,
    httpStatusOverrides[code as LanyardErrorCode] ?? httpStatusByGrpcStatus[grpc] ?? 403,
  ]),
) as Record<LanyardErrorCode, number>;

/** The HTTP status a refusal with a Lanyard error is answered with. */
export function httpStatusOf(e: LanyardError): number {
  return httpStatusByCode[e.code];
}
