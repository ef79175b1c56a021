/**
 * Starts a worker thread running a module that sits next to the caller: the compiled `.js` in dist, or, when the
 * caller is the TypeScript source (tests, `tsx` scripts), the `.ts` behind tsx's require hook, which does not
 * follow into threads by itself.
 */
import path from 'node:path';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * @param callerFile the caller's `__filename` (its extension says compiled or source)
 * @param name the worker module's file name without extension, in the caller's folder
 */
export function startWorkerScript(
  callerFile: string,
  name: string,
  options: Omit<WorkerOptions, 'eval'> = {},
): Worker {
  const ext = path.extname(callerFile);
  const file = path.join(path.dirname(callerFile), `${name}${ext}`);
  if (ext === '.ts') {
    return new Worker(`require('tsx/cjs'); require(${JSON.stringify(file)});`, { ...options, eval: true });
  }
  return new Worker(file, options);
}

/**
 * `bytes` in an ArrayBuffer of its own (itself when it already is), so it can be put in a transfer list: a view
 * into a shared pool (small Buffers) must never be transferred, which would detach the whole pool.
 */
export function ownedBytes(bytes: Uint8Array): Uint8Array {
  if (
    bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength &&
    !(typeof SharedArrayBuffer !== 'undefined' && bytes.buffer instanceof SharedArrayBuffer)
  ) {
    return bytes;
  }
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}
