/**
 * What the CRL listener writes: the published DER as it is (views of the shared buffer the build worker wrote it
 * into, no copy; crl-buffers.ts) and the PEM encoded piece by piece as it is written, each in pieces of at most
 * `CRL_BODY_DEFAULTS.chunkBytes` with the socket's backpressure respected. A CRL over a million serials is 33 MiB:
 * one `Buffer.from` copy and one write of it, or a 45 MiB base64 string made at once, held the server's thread for
 * tens of milliseconds, and every gRPC call arriving then waited.
 */
import type { ServerResponse } from 'node:http';

export const CRL_BODY_DEFAULTS = Object.freeze({
  /** Bytes per write: small enough that a write (or a PEM piece's base64) is a short task on the thread. */
  chunkBytes: 256 * 1024,
});

/** Bytes of DER per PEM piece: whole 64-character lines (48 bytes each). */
const pemPieceBytes = (chunkBytes: number): number => Math.max(48, Math.floor(chunkBytes / 64) * 48);

/** `der` as views of at most `chunkBytes` each (no copy). */
export function* derChunks(der: Uint8Array, chunkBytes = CRL_BODY_DEFAULTS.chunkBytes): Generator<Buffer> {
  for (let at = 0; at < der.byteLength; at += chunkBytes) {
    const end = Math.min(der.byteLength, at + chunkBytes);
    yield Buffer.from(der.buffer, der.byteOffset + at, end - at);
  }
}

/**
 * PEM of each DER in turn (`label` blocks, concatenated), byte for byte what `encodePem` makes, in pieces of
 * about `chunkBytes`: 64-character lines, a newline after each, BEGIN and END lines.
 */
export function* pemChunks(
  ders: readonly Uint8Array[],
  label: string,
  chunkBytes = CRL_BODY_DEFAULTS.chunkBytes,
): Generator<Buffer> {
  const piece = pemPieceBytes(chunkBytes);
  for (const der of ders) {
    const begin = Buffer.from(`-----BEGIN ${label}-----\n`, 'latin1');
    let first = true;
    for (let at = 0; at < der.byteLength; at += piece) {
      const n = Math.min(piece, der.byteLength - at);
      // Base64 as bytes, then copied 64 at a time with a newline after each: no string per line.
      const b64 = Buffer.from(Buffer.from(der.buffer, der.byteOffset + at, n).toString('base64'), 'latin1');
      const lines = Math.ceil(b64.length / 64);
      const head = first ? begin.length : 0;
      const out = Buffer.allocUnsafe(head + b64.length + lines);
      if (first) begin.copy(out, 0);
      let o = head;
      for (let i = 0; i < b64.length; i += 64) {
        o += b64.copy(out, o, i, Math.min(b64.length, i + 64));
        out[o++] = 0x0a;
      }
      first = false;
      yield out;
    }
    // encodePem of an empty DER has one empty line; a CRL is never empty, but the bytes stay the same.
    yield Buffer.from(`${first ? `${begin.toString('latin1')}\n` : ''}-----END ${label}-----\n`, 'latin1');
  }
}

/** Bytes `pemChunks` makes for these DERs, for Content-Length, without encoding them. */
export function pemLength(ders: readonly Uint8Array[], label: string): number {
  const frame = `-----BEGIN ${label}-----\n`.length + `-----END ${label}-----\n`.length;
  let total = 0;
  for (const der of ders) {
    const b64 = Math.ceil(der.byteLength / 3) * 4;
    total += frame + b64 + Math.max(1, Math.ceil(b64 / 64));
  }
  return total;
}

/**
 * Writes `chunks` to `res` and ends it, waiting for 'drain' whenever the socket's buffer is full, so no more than
 * about one chunk waits in memory beyond the kernel's buffer, and giving the event loop a turn after every chunk.
 * Resolves when ended or when the client went away (the rest is then not made).
 *
 * The turn is what keeps gRPC calls served during a transfer. To a reader on the same host the kernel takes each
 * write whole at once: the write completes synchronously, its 'drain' comes in a nextTick, and the next write
 * followed in the same turn of the loop, so a 33 MiB CRL went out in one uninterrupted run of writes and every
 * call that arrived meanwhile waited for all of it (docs/design/performance-log.md, "EndSession beside a 1M CRL,
 * the server's thread"). With a turn after each chunk, a call waits for one chunk's write at most.
 */
export async function writeChunks(res: ServerResponse, chunks: Iterable<Buffer>): Promise<void> {
  for (const chunk of chunks) {
    if (res.destroyed) return;
    if (!res.write(chunk) && !(await drained(res))) return;
    await nextTurn();
  }
  if (!res.destroyed) res.end();
}

/** After 'drain' (true) or 'close' (false, the client went away), whichever comes first. */
function drained(res: ServerResponse): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const onDrain = (): void => {
      res.off('close', onClose);
      resolve(true);
    };
    const onClose = (): void => {
      res.off('drain', onDrain);
      resolve(false);
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

/** Resolves in the loop's next check phase: after the I/O that is ready now has been handled. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
