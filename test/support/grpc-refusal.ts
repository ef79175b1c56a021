/**
 * Refusals that crossed the wire: the gRPC status, the stable `lanyard-error-code` trailer, and the details
 * text a caller sees. Library-level refusals are in ./refusal.
 */
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { AdminCallError } from '../../src/server/admin-client';
import { ERROR_CODE_METADATA_KEY } from '../../src/internal/grpc-call';

/** Asserts a gRPC failure with `code` whose details mention every fragment. */
export async function rejectsGrpc(
  p: Promise<unknown>,
  code: grpc.status,
  ...fragments: string[]
): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    const err = e as grpc.ServiceError;
    if (err.code !== code)
      throw new Error(`expected ${grpc.status[code]}, got ${grpc.status[err.code]}: ${err.details}`);
    for (const f of fragments) {
      if (!err.details.includes(f)) throw new Error(`"${err.details}" lacks "${f}"`);
    }
    return err;
  }
  throw new Error(`expected gRPC status ${grpc.status[code]}, but the call succeeded`);
}

/** Asserts that `p` fails with gRPC status `code` and that the details mention every fragment. */
export async function rejectsWithStatus(
  p: Promise<unknown>,
  code: number,
  ...fragments: string[]
): Promise<AdminCallError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AdminCallError, `expected AdminCallError, got ${String(e)}`);
    assert.equal(e.code, code, `status ${e.code} (${e.details})`);
    for (const f of fragments) assert.ok(e.details.includes(f), `"${e.details}" lacks "${f}"`);
    return e;
  }
  assert.fail(`expected gRPC status ${code}`);
}

/** Asserts a gRPC failure with `status` and the stable Lanyard `code`, details mentioning every fragment. */
export async function rejectsGrpcWithCode(
  p: Promise<unknown>,
  status: grpc.status,
  code: string,
  ...fragments: string[]
): Promise<grpc.ServiceError> {
  const err = await rejectsGrpc(p, status, ...fragments);
  assert.deepEqual(err.metadata.get(ERROR_CODE_METADATA_KEY), [code], err.details);
  return err;
}

/**
 * Asserts a failure carrying the stable Lanyard `code`, whatever its status: the `lanyardCode` an
 * AdminCallError decoded, or the trailer of a raw gRPC error; the details match `details` when given.
 */
export async function rejectsWithWireCode(
  p: Promise<unknown>,
  code: string,
  details?: RegExp,
): Promise<void> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: number; lanyardCode?: string; details?: string; metadata?: grpc.Metadata };
    const got = err.lanyardCode ?? err.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
    assert.equal(got, code, `${err.code === undefined ? '' : `${grpc.status[err.code]}: `}${err.details}`);
    if (details !== undefined) assert.match(err.details ?? '', details);
    return;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}
