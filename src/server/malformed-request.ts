/**
 * Request bytes that are not a valid protobuf message: INVALID_ARGUMENT (ERR_MALFORMED_REQUEST) naming the
 * method, instead of grpc-js's INTERNAL "Error deserializing request" (INTERNAL says "server bug").
 *
 * grpc-js hard-codes INTERNAL when a method's requestDeserialize throws, so the deserializer is wrapped to
 * return a marker instead, and the handler answers the marker before the service code sees it. This covers
 * every method with a single request (unary and server-streaming). Client- and bidi-streaming methods (Attest)
 * keep grpc-js's INTERNAL: their messages reach the handler as stream events from grpc-js internals, and a
 * marker there would need each stream handler to know it; grpc-js ends such a call and the handler sees it
 * cancelled, which already rolls everything back.
 */
import * as grpc from '@grpc/grpc-js';
import { MalformedRequestError } from '../errors';
import { toStatus } from '../internal/grpc-call';
import type { Logger } from '../internal/logging';
import { wrapMethods, type MethodInfo, type WrappableService } from '../internal/method-wrap';

/** What the wrapped deserializer hands over instead of a message it could not decode. */
class MalformedRequest {
  constructor(readonly reason: string) {}
}

export function answerMalformedRequests<S extends WrappableService>(service: S, logger: Logger): S {
  const refuse = (
    method: MethodInfo,
    call: { request: unknown; getPeer(): string },
  ): grpc.StatusObject | undefined => {
    if (!(call.request instanceof MalformedRequest)) return undefined;
    const status = toStatus(
      new MalformedRequestError(
        `the request is not a valid ${method.path} message (protobuf decoding failed: ${call.request.reason})`,
      ),
    );
    logger.warn({ method: method.path, peer: call.getPeer() }, 'malformed request refused');
    return { metadata: new grpc.Metadata(), details: '', ...status };
  };
  return wrapMethods(service, {
    definition: (method) => {
      const attrs = method.definition;
      if (attrs.requestStream) return attrs;
      const decode = attrs.requestDeserialize;
      return {
        ...attrs,
        requestDeserialize: (bytes: Buffer): unknown => {
          try {
            return decode(bytes);
          } catch (e) {
            return new MalformedRequest(e instanceof Error ? e.message : String(e));
          }
        },
      };
    },
    // grpc-js turns an 'error' on a server stream into the call's status and ends it.
    serverStream: (method, stream) => (call) => {
      const status = refuse(method, call);
      if (status !== undefined) call.emit('error', status);
      else stream(call);
    },
    unary: (method, unary) => (call, callback) => {
      const status = refuse(method, call);
      if (status !== undefined) callback(status);
      else unary(call, callback);
    },
  });
}
