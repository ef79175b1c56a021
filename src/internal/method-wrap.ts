/**
 * The one loop over a gRPC service's methods. Every concern that applies per method (the server's answering
 * undecodable requests, admin guard and auditing; the hop helpers' peer check) is a set of wrappers handed to
 * `wrapMethods`, which walks the service definition once, passes each method's handler to the wrapper for its
 * call type, and leaves methods without a wrapper for their type untouched. A method added to a service later is
 * wrapped like the others without anyone listing it.
 */
import type * as grpc from '@grpc/grpc-js';

export interface MethodInfo {
  /** The implementation key, e.g. "listEntries". */
  name: string;
  /** The gRPC path, e.g. "/lanyard.v1.RegistrationService/ListEntries". */
  path: string;
  definition: grpc.MethodDefinition<unknown, unknown>;
}

type Unary = grpc.handleUnaryCall<unknown, unknown>;
type ServerStream = grpc.handleServerStreamingCall<unknown, unknown>;
type ClientStream = grpc.handleClientStreamingCall<unknown, unknown>;
type Bidi = grpc.handleBidiStreamingCall<unknown, unknown>;

export interface MethodWrappers {
  unary?(method: MethodInfo, handler: Unary): Unary;
  serverStream?(method: MethodInfo, handler: ServerStream): ServerStream;
  /** Client-streaming and bidirectional methods (their request arrives as stream events). */
  requestStream?(method: MethodInfo, handler: ClientStream | Bidi): ClientStream | Bidi;
  /** Replaces a method's definition (e.g. its request deserializer); called for every method. */
  definition?(method: MethodInfo): grpc.MethodDefinition<unknown, unknown>;
}

export interface WrappableService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

export function wrapMethods<S extends WrappableService>(service: S, wrappers: MethodWrappers): S {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const implementation: grpc.UntypedServiceImplementation = { ...service.implementation };
  for (const [name, attrs] of Object.entries(service.definition)) {
    const method: MethodInfo = { name, path: attrs.path, definition: attrs };
    definition[name] = wrappers.definition?.(method) ?? attrs;
    const handler = service.implementation[name];
    if (handler === undefined) continue;
    if (attrs.requestStream) {
      if (wrappers.requestStream) {
        implementation[name] = wrappers.requestStream(method, handler as ClientStream | Bidi);
      }
    } else if (attrs.responseStream) {
      if (wrappers.serverStream)
        implementation[name] = wrappers.serverStream(method, handler as ServerStream);
    } else if (wrappers.unary) {
      implementation[name] = wrappers.unary(method, handler as Unary);
    }
  }
  return { ...service, definition: definition as grpc.ServiceDefinition, implementation };
}
