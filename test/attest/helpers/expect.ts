import assert from 'node:assert/strict';
import { LanyardError } from '../../../src/errors';

/**
 * Awaits `p` and asserts it rejected with a LanyardError carrying `code` (and a message matching `message`).
 * `secrets` must not appear in the message: no refusal may echo a token or a key.
 */
export async function rejectsWithCode(
  p: Promise<unknown>,
  code: string,
  message?: RegExp,
  secrets: readonly string[] = [],
): Promise<LanyardError> {
  let thrown: unknown;
  try {
    await p;
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `expected ${code}, but nothing was thrown`);
  assert.ok(thrown instanceof LanyardError, `expected a LanyardError, got ${String(thrown)}`);
  assert.equal(thrown.code, code, `expected ${code}, got ${thrown.code}: ${thrown.message}`);
  if (message !== undefined) assert.match(thrown.message, message);
  for (const s of secrets)
    assert.ok(!thrown.message.includes(s), `the message echoes a secret: ${thrown.message}`);
  return thrown;
}
