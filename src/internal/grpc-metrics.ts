/**
 * Prometheus metrics for every method of a gRPC listener, through the one per-method loop (method-wrap.ts):
 * calls handled by status and error code, handling time, and the streams open now. Labels are the listener,
 * service, method, call type and codes: all fixed by the service definitions and the error catalogue, never by
 * what a caller sends (no SPIFFE IDs, session ids or serials), so the series stay bounded.
 *
 * A finished call is also handed to `observers`, with its first request, for metrics a runtime keeps on top
 * (the server's issuance counter): one wrapper, so both see the same outcome.
 */
import * as grpc from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { ERROR_CODE_METADATA_KEY } from './grpc-call';
import { wrapMethods, type MethodInfo, type WrappableService } from './method-wrap';

/** Handling-time buckets, seconds: from a cached read (~1 ms) to a slow attestation or a store under load. */
export const RPC_SECONDS_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

export type GrpcCallType = 'unary' | 'server_stream' | 'client_stream' | 'bidi_stream';

/** How one call ended, as the metrics and the observers see it. */
export interface FinishedCall {
  listener: string;
  /** "lanyard.v1.AttestationService" */
  service: string;
  /** "Attest" */
  method: string;
  type: GrpcCallType;
  /** The gRPC status name, e.g. "OK", "PERMISSION_DENIED". */
  code: string;
  /** The Lanyard error code the status carried ("ERR_..."), or "" for OK and for statuses without one. */
  errorCode: string;
  seconds: number;
  /** The unary request, or the first message of a request stream; undefined when none arrived. */
  request: unknown;
}

export type CallObserver = (call: FinishedCall) => void;

const ERROR_CODE_SHAPE = /^ERR_[A-Z0-9_]{1,64}$/;

/** The error code of a status: the trailer Lanyard sets, bounded to the catalogue's shape. */
export function statusErrorCode(status: Partial<grpc.StatusObject> | null | undefined): string {
  const value = status?.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
  if (typeof value !== 'string') return '';
  return ERROR_CODE_SHAPE.test(value) ? value : 'ERR_OTHER';
}

function codeName(code: number | undefined): string {
  if (code === undefined) return 'UNKNOWN';
  return grpc.status[code] ?? 'UNKNOWN';
}

/** "/lanyard.v1.BundleService/GetBundle" -> ["lanyard.v1.BundleService", "GetBundle"] */
function splitPath(path: string): [string, string] {
  const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
  return m ? [m[1]!, m[2]!] : ['unknown', path];
}

function callType(definition: grpc.MethodDefinition<unknown, unknown>): GrpcCallType {
  if (definition.requestStream) return definition.responseStream ? 'bidi_stream' : 'client_stream';
  return definition.responseStream ? 'server_stream' : 'unary';
}

interface StreamCall {
  once(event: 'error', listener: (status: Partial<grpc.StatusObject>) => void): unknown;
  once(event: 'finish' | 'cancelled', listener: () => void): unknown;
}

export interface GrpcServerMetricsOptions {
  registry: Registry;
  /** Called for every finished call after the metrics are updated. */
  observers?: readonly CallObserver[];
}

/** The handled/handling/open-stream metrics of one process's gRPC listeners, in its own registry. */
export class GrpcServerMetrics {
  private readonly handled: Counter<
    'listener' | 'grpc_service' | 'grpc_method' | 'grpc_type' | 'grpc_code' | 'error_code'
  >;
  private readonly handling: Histogram<'listener' | 'grpc_service' | 'grpc_method' | 'grpc_type'>;
  private readonly open: Gauge<'listener' | 'grpc_service' | 'grpc_method'>;
  private readonly observers: CallObserver[];

  constructor(options: GrpcServerMetricsOptions) {
    const registers = [options.registry];
    this.observers = [...(options.observers ?? [])];
    this.handled = new Counter({
      name: 'lanyard_grpc_server_handled_total',
      help: 'gRPC calls completed, by listener, method, status code and Lanyard error code',
      labelNames: ['listener', 'grpc_service', 'grpc_method', 'grpc_type', 'grpc_code', 'error_code'],
      registers,
    });
    this.handling = new Histogram({
      name: 'lanyard_grpc_server_handling_seconds',
      help: 'Time from the start of a gRPC call to its status, by listener and method',
      labelNames: ['listener', 'grpc_service', 'grpc_method', 'grpc_type'],
      buckets: [...RPC_SECONDS_BUCKETS],
      registers,
    });
    this.open = new Gauge({
      name: 'lanyard_grpc_server_streams_open',
      help: 'Streaming gRPC calls open now (WatchRevocations, WatchBundle, Workload API streams, ...)',
      labelNames: ['listener', 'grpc_service', 'grpc_method'],
      registers,
    });
  }

  /** Adds an observer of finished calls (e.g. a runtime's issuance counter). */
  observe(observer: CallObserver): void {
    this.observers.push(observer);
  }

  /** `service` with every method measured; `listener` names the listener in the labels. */
  instrument<S extends WrappableService>(service: S, listener: string): S {
    const begin = (method: MethodInfo) => {
      const [grpcService, grpcMethod] = splitPath(method.path);
      const type = callType(method.definition);
      const started = process.hrtime.bigint();
      let request: unknown;
      let settled = false;
      const finish = (status: Partial<grpc.StatusObject> | null): void => {
        if (settled) return;
        settled = true;
        const code = status === null ? 'OK' : codeName(status.code);
        const errorCode = status === null || status.code === grpc.status.OK ? '' : statusErrorCode(status);
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const labels = { listener, grpc_service: grpcService, grpc_method: grpcMethod, grpc_type: type };
        this.handled.inc({ ...labels, grpc_code: code, error_code: errorCode });
        this.handling.observe(labels, seconds);
        const finished: FinishedCall = {
          listener,
          service: grpcService,
          method: grpcMethod,
          type,
          code,
          errorCode,
          seconds,
          request,
        };
        for (const o of this.observers) o(finished);
      };
      return {
        finish,
        setRequest: (r: unknown) => {
          request ??= r;
        },
        streamLabels: { listener, grpc_service: grpcService, grpc_method: grpcMethod },
      };
    };
    /** A stream's status arrives as events: 'error' (the status), 'finish' (OK) or 'cancelled'. */
    const watchStream = (call: StreamCall, tracker: ReturnType<typeof begin>): void => {
      this.open.inc(tracker.streamLabels);
      let ended = false;
      const once = (status: Partial<grpc.StatusObject> | null): void => {
        if (ended) return;
        ended = true;
        this.open.dec(tracker.streamLabels);
        tracker.finish(status);
      };
      call.once('error', (status) => once(status));
      call.once('finish', () => once(null));
      call.once('cancelled', () => once({ code: grpc.status.CANCELLED }));
    };
    return wrapMethods(service, {
      unary: (method, handler) => (call, callback) => {
        const tracker = begin(method);
        tracker.setRequest(call.request);
        handler(call, (err, value, trailer, flags) => {
          tracker.finish(err ?? null);
          callback(err, value, trailer, flags);
        });
      },
      serverStream: (method, handler) => (call) => {
        const tracker = begin(method);
        tracker.setRequest(call.request);
        watchStream(call as unknown as StreamCall, tracker);
        handler(call);
      },
      requestStream: (method, handler) =>
        ((call: grpc.ServerDuplexStream<unknown, unknown>, callback?: grpc.sendUnaryData<unknown>) => {
          const tracker = begin(method);
          // Registered before the handler's own listener: the first message is known when the call ends.
          call.on('data', (r: unknown) => tracker.setRequest(r));
          if (method.definition.responseStream || callback === undefined) {
            watchStream(call as unknown as StreamCall, tracker);
            (handler as grpc.handleBidiStreamingCall<unknown, unknown>)(call);
            return;
          }
          (handler as grpc.handleClientStreamingCall<unknown, unknown>)(
            call as unknown as grpc.ServerReadableStream<unknown, unknown>,
            (err, value, trailer, flags) => {
              tracker.finish(err ?? null);
              callback(err, value, trailer, flags);
            },
          );
        }) as grpc.handleBidiStreamingCall<unknown, unknown>,
    });
  }
}
