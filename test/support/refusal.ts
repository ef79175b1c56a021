import assert from 'node:assert/strict';
import { LanyardError } from '../../src/errors';

/** Assert that `fn` throws a LanyardError with `code` (and, optionally, a message matching `message`). */
export function expectCode(fn: () => unknown, code: string, message?: RegExp): LanyardError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `expected ${code}, but nothing was thrown`);
  assert.ok(thrown instanceof LanyardError, `expected a LanyardError, got ${String(thrown)}`);
  assert.equal(thrown.code, code, `expected ${code}, got ${thrown.code}: ${thrown.message}`);
  if (message !== undefined) assert.match(thrown.message, message);
  return thrown;
}
