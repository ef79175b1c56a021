/**
 * The client certificate of a grpc-js server call's TLS socket, also when OpenSSL refused it.
 *
 * Why reach past the public API: grpc-js 1.14's `getAuthContext()` answers `{}` when the socket is not
 * `authorized`, so a caller with an expired or foreign certificate is indistinguishable from one that sent
 * none. The path (server call -> `call` -> [`nextCall`...] -> `stream.session.socket`) is grpc-js internals:
 * each step is checked, and when any is missing the answer is undefined and the caller gets the generic
 * refusal instead of a precise one. The certificate found here is only used to explain a refusal.
 */
import { TLSSocket } from 'node:tls';

export interface TlsPeer {
  /** DER of the leaf the client sent, or undefined when it sent none. */
  raw?: Buffer;
  /** OpenSSL's verdict, e.g. CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE. */
  authorizationError?: string;
}

const MAX_INTERCEPTORS = 16;

export function tlsPeerOf(call: unknown): TlsPeer | undefined {
  const socket = socketOf(call);
  if (socket === undefined) return undefined;
  const cert = socket.getPeerCertificate();
  const raw = cert !== null && typeof cert === 'object' && Buffer.isBuffer(cert.raw) ? cert.raw : undefined;
  const reason = socket.authorizationError as unknown;
  return {
    ...(raw !== undefined && raw.length > 0 && { raw }),
    ...(reason !== undefined && reason !== null && { authorizationError: String(reason) }),
  };
}

/**
 * The DER of the client certificate OpenSSL authorized on the call's connection: what grpc-js's
 * `getAuthContext().sslPeerCertificate.raw` answers, but read once per connection instead of once per ask
 * (`getPeerCertificate()` converts the whole certificate into an object every time, and every mTLS call asked
 * two or three times). A connection's certificate cannot change: HTTP/2 forbids TLS renegotiation and Node's
 * http2 disables it on the socket. Undefined when the connection's certificate was not authorized or none was
 * sent. When the socket cannot be reached (another grpc-js), the call's own auth context answers.
 */
export function authorizedPeerDer(call: {
  getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } };
}): Buffer | undefined {
  const socket = socketOf(call);
  if (socket === undefined) {
    const raw = call.getAuthContext().sslPeerCertificate?.raw;
    return raw !== undefined && raw.length > 0 ? raw : undefined;
  }
  if (!socket.authorized) return undefined;
  let raw = authorizedPeers.get(socket);
  if (raw === undefined) {
    const cert = socket.getPeerCertificate() as { raw?: unknown } | null;
    raw = cert !== null && Buffer.isBuffer(cert.raw) && cert.raw.length > 0 ? cert.raw : null;
    authorizedPeers.set(socket, raw);
  }
  return raw ?? undefined;
}

const authorizedPeers = new WeakMap<TLSSocket, Buffer | null>();

function socketOf(call: unknown): TLSSocket | undefined {
  let inner = field(call, 'call');
  for (let i = 0; i < MAX_INTERCEPTORS && inner !== undefined; i++) {
    const stream = field(inner, 'stream');
    if (stream !== undefined) {
      const socket = field(field(stream, 'session'), 'socket');
      return socket instanceof TLSSocket ? socket : undefined;
    }
    inner = field(inner, 'nextCall');
  }
  return undefined;
}

function field(o: unknown, name: string): unknown {
  return o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[name] : undefined;
}
