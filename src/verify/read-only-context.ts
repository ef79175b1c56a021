import type { AgentContext } from '../x509/agent-context/types';

/**
 * A verified agent context that one verifier can hand to any number of callers: every object and array is
 * frozen, and every byte array and Date (which JavaScript cannot freeze) is an accessor that returns a fresh
 * copy on each read. Whatever a caller does with what it read, the next caller sees the context as it was
 * proven, so the verified-chain memo can return the same result object on every hit instead of copying the
 * whole context each time (the copy was most of a hit's cost).
 *
 * The view is built once per verified context over data the verifier owns (`context` must not be used
 * afterwards by anyone else). It is a plain object graph with enumerable own properties, so spreading,
 * JSON.stringify, structuredClone and deep equality see the same fields and values as on the decoded context.
 */
export function readOnlyContext(context: AgentContext): Readonly<AgentContext> {
  return readOnly(context) as Readonly<AgentContext>;
}

const sliceBytes = Uint8Array.prototype.slice;

function readOnly(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== 'object')) return Object.freeze(value.slice());
    const out: unknown[] = [];
    for (let i = 0; i < value.length; i++) defineReadOnly(out, String(i), value[i]);
    return Object.freeze(out);
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) defineReadOnly(out, key, (value as Record<string, unknown>)[key]);
  return Object.freeze(out);
}

function defineReadOnly(target: object, key: string, value: unknown): void {
  if (value instanceof Uint8Array) {
    const kept = value;
    // TypedArray's own slice: a copy even for a Buffer (whose slice is a view of the same memory).
    Object.defineProperty(target, key, { enumerable: true, get: () => sliceBytes.call(kept) });
  } else if (value instanceof Date) {
    const ms = value.getTime();
    Object.defineProperty(target, key, { enumerable: true, get: () => new Date(ms) });
  } else {
    Object.defineProperty(target, key, { enumerable: true, writable: false, value: readOnly(value) });
  }
}
