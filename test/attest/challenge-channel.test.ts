/**
 * StreamChallengeChannel's closed state (src/attest/challenge-channel.ts): the error a closed channel fails
 * challenges with is built only when a challenge needs it, and is still the same error every time: the one
 * close() was given, or "the stream ended" when it was given none.
 */
import assert from 'node:assert/strict';
import { StreamChallengeChannel } from '../../src/attest';
import { ErrorCode, InternalError } from '../../src/errors';

/** What `p` rejects with; fails the test when it resolves. */
const rejection = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => assert.fail('resolved'),
    (e: unknown) => e,
  );

describe('StreamChallengeChannel once closed', () => {
  it('closed without a reason: every later challenge rejects with one INVALID_ARGUMENT "stream ended" error', async () => {
    const channel = new StreamChallengeChannel(() => assert.fail('a closed channel sent a challenge'));
    channel.close();
    channel.close(new InternalError('a second close changes nothing'));
    const first = await rejection(channel.challenge(new Uint8Array(8)));
    assert.equal((first as { code?: string }).code, ErrorCode.INVALID_ARGUMENT);
    assert.match((first as Error).message, /stream ended before the challenge was answered/);
    const second = await rejection(channel.challenge(new Uint8Array(8)));
    assert.equal(second, first);
  });

  it('a pending challenge rejects with the error close() builds; a later one with the same', async () => {
    const channel = new StreamChallengeChannel(() => undefined);
    const pending = rejection(channel.challenge(new Uint8Array(8)));
    await new Promise((r) => setImmediate(r));
    channel.close();
    const e = await pending;
    assert.equal((e as { code?: string }).code, ErrorCode.INVALID_ARGUMENT);
    assert.equal(await rejection(channel.challenge(new Uint8Array(8))), e);
  });

  it('closed with a reason: challenges reject with that reason', async () => {
    const channel = new StreamChallengeChannel(() => undefined);
    const reason = new InternalError('the attestation failed');
    channel.close(reason);
    assert.equal(await rejection(channel.challenge(new Uint8Array(8))), reason);
  });
});
