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
import { ErrorCode, LanyardError } from '../errors';
import { toStatus } from './grpc-call';
import type { Logger } from './logging';

/** What the wrapped deserializer hands over instead of a message it could not decode. */
class MalformedRequest {
  constructor(readonly reason: string) {}
}

export function answerMalformedRequests(
  definition: grpc.ServiceDefinition,
  implementation: grpc.UntypedServiceImplementation,
  logger: Logger,
): { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation } {
  const wrappedDefinition: Record<string, grpc.MethodDefinition<object, object>> = {};
  const wrappedImplementation: grpc.UntypedServiceImplementation = { ...implementation };
  for (const [name, attrs] of Object.entries(definition)) {
    const handler = implementation[name];
    if (attrs.requestStream || handler === undefined) {
      wrappedDefinition[name] = attrs;
      continue;
    }
    const decode = attrs.requestDeserialize;
    wrappedDefinition[name] = {
      ...attrs,
      requestDeserialize: (bytes: Buffer): object => {
        try {
          return decode(bytes);
        } catch (e) {
          return new MalformedRequest(e instanceof Error ? e.message : String(e));
        }
      },
    };
    const refuse = (call: { request: unknown; getPeer(): string }): grpc.StatusObject | undefined => {
      if (!(call.request instanceof MalformedRequest)) return undefined;
      const status = toStatus(
        new LanyardError(
          ErrorCode.MALFORMED_REQUEST,
          `the request is not a valid ${attrs.path} message (protobuf decoding failed: ${call.request.reason})`,
        ),
      );
      logger.warn({ method: attrs.path, peer: call.getPeer() }, 'malformed request refused');
      return { metadata: new grpc.Metadata(), details: '', ...status };
    };
    if (attrs.responseStream) {
      const stream = handler as grpc.handleServerStreamingCall<unknown, unknown>;
      wrappedImplementation[name] = (call: grpc.ServerWritableStream<unknown, unknown>): void => {
        const status = refuse(call);
        // grpc-js turns an 'error' on a server stream into the call's status and ends it.
        if (status !== undefined) call.emit('error', status);
        else stream(call);
      };
    } else {
      const unary = handler as grpc.handleUnaryCall<unknown, unknown>;
      wrappedImplementation[name] = (
        call: grpc.ServerUnaryCall<unknown, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ): void => {
        const status = refuse(call);
        if (status !== undefined) callback(status);
        else unary(call, callback);
      };
    }
  }
  return { definition: wrappedDefinition, implementation: wrappedImplementation };
}
