/**
 * Refusal expectations: the one place tests assert that Lanyard said no, and with which code. Library
 * refusals are LanyardErrors (`expectRefusal`, `rejectsWithCode`, and the `...As` forms that also fix the
 * class); refusals that crossed gRPC are in ./grpc-refusal.
 */
import assert from 'node:assert/strict';
import type { X509BundleSource } from '../../src/bundle';
import { isLanyardError, type LanyardError } from '../../src/errors';
import { verifyX509Svid, type VerifyX509SvidOptions } from '../../src/verify';

export type LanyardErrorClass<E extends LanyardError = LanyardError> = abstract new (...args: never[]) => E;

export interface Refusal {
  /** The class the error must be (any LanyardError when omitted). */
  class?: LanyardErrorClass;
  /** The message matches this pattern, or contains this text. */
  message?: RegExp | string;
  /** Text the message must not echo: no refusal may repeat a token or a key. */
  secrets?: readonly string[];
}

const describeError = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

/** Asserts that `e` (already caught) is the refusal `code`, as `expect` further describes. */
export function assertRefusal(
  e: unknown,
  code: string,
  expect: Refusal | RegExp | string = {},
): LanyardError {
  const want: Refusal = typeof expect === 'string' || expect instanceof RegExp ? { message: expect } : expect;
  assert.ok(isLanyardError(e), `expected a LanyardError ${code}, got ${describeError(e)}`);
  if (want.class !== undefined)
    assert.ok(e instanceof want.class, `expected ${want.class.name}, got ${describeError(e)}`);
  assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
  if (want.message instanceof RegExp) assert.match(e.message, want.message);
  else if (want.message !== undefined)
    assert.ok(e.message.includes(want.message), `message ${JSON.stringify(e.message)} lacks ${want.message}`);
  for (const s of want.secrets ?? [])
    assert.ok(!e.message.includes(s), `the message echoes a secret: ${e.message}`);
  return e;
}

/**
 * What `fn` came to: 'accepted' when it returned, else the code of the LanyardError it threw. Anything else thrown
 * fails the test: a refusal must be typed.
 */
export function outcomeCode(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (e) {
    assert.ok(isLanyardError(e), `not a typed refusal: ${describeError(e)}`);
    return e.code;
  }
}

/** 'accepted', or the code verifyX509Svid refuses `chain` with: fast paths are compared with a cold run by it. */
export function verifyOutcome(
  chain: readonly Uint8Array[],
  bundle: X509BundleSource,
  options: VerifyX509SvidOptions = {},
): string {
  return outcomeCode(() => verifyX509Svid(chain, bundle, options));
}

/** Asserts that `fn` throws the refusal `code`. */
export function expectRefusal(
  fn: () => unknown,
  code: string,
  expect?: Refusal | RegExp | string,
): LanyardError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `expected ${code}, but nothing was thrown`);
  return assertRefusal(thrown, code, expect);
}

/** Asserts that `fn` throws the refusal `code` as an instance of `cls`. */
export function expectRefusalAs<E extends LanyardError>(
  fn: () => unknown,
  cls: LanyardErrorClass<E>,
  code: string,
  message?: RegExp | string,
): E {
  return expectRefusal(fn, code, { class: cls, message }) as E;
}

/** Awaits `p` and asserts it rejected with the refusal `code`; `secrets` must not appear in the message. */
export async function rejectsWithCode(
  p: Promise<unknown>,
  code: string,
  expect?: Refusal | RegExp | string,
  secrets?: readonly string[],
): Promise<LanyardError> {
  let thrown: unknown;
  try {
    await p;
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `expected ${code}, but nothing was thrown`);
  const want: Refusal =
    typeof expect === 'string' || expect instanceof RegExp ? { message: expect } : (expect ?? {});
  return assertRefusal(thrown, code, secrets === undefined ? want : { ...want, secrets });
}

/** Awaits `p` and asserts it rejected with the refusal `code` as an instance of `cls`. */
export async function rejectsWithCodeAs<E extends LanyardError>(
  p: Promise<unknown>,
  cls: LanyardErrorClass<E>,
  code: string,
  message?: RegExp | string,
): Promise<E> {
  return (await rejectsWithCode(p, code, { class: cls, message })) as E;
}
