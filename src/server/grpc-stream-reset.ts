/**
 * Resetting one server stream (HTTP/2 RST_STREAM) from a grpc-js handler. grpc-js (1.14) has no public way to
 * do it: ending a call with a status queues the trailers behind whatever data the peer has not taken, so a
 * peer that keeps its flow-control window at zero would hold the stream, and the messages queued on it,
 * for as long as it likes. The HTTP/2 stream is reached through the call's private `call`/`nextCall` chain,
 * checked by shape at every step; when the shape is not there (a grpc-js change), the call is destroyed and
 * ended instead, which frees what this process queued but may leave the HTTP/2 stream open until the peer
 * goes away. test/integration/revocation/watch-limits.test.ts proves the reset against the grpc-js in use.
 */
import * as http2 from 'node:http2';

interface ResettableStream {
  close(code?: number): void;
  destroyed: boolean;
}

function isResettable(v: unknown): v is ResettableStream {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as { close?: unknown }).close === 'function' &&
    typeof (v as { destroyed?: unknown }).destroyed === 'boolean' &&
    typeof (v as { rstCode?: unknown }).rstCode !== 'undefined'
  );
}

/** The HTTP/2 stream under a grpc-js server call, or undefined when grpc-js does not have the known shape. */
function http2StreamOf(call: object): ResettableStream | undefined {
  let node: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; depth < 8 && typeof node === 'object' && node !== null; depth++) {
    const stream = (node as { stream?: unknown }).stream;
    if (isResettable(stream)) return stream;
    node = (node as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

/**
 * Cuts a server call now, whatever its peer's window: RST_STREAM with CANCEL (the client sees CANCELLED).
 * Returns whether the HTTP/2 stream itself was reset.
 */
export function resetServerStream(call: NodeJS.EventEmitter & { destroy(error?: Error): void }): boolean {
  const stream = http2StreamOf(call);
  if (stream !== undefined) {
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    return true;
  }
  call.destroy();
  return false;
}
