import { InternalError, InvalidArgumentError, type LanyardError } from '../errors';
import type { ChallengeChannel } from './attestor';

/**
 * The ChallengeChannel of one Attest stream, independent of grpc-js: the server hands `send` (write an
 * AttestResponse.challenge), calls `respond` for every AttestRequest.challenge_response, and `close` when the
 * stream ends or the attestation is over.
 *
 * At most one challenge is outstanding; an answer is delivered once, to the challenge it answers. An answer
 * with no challenge outstanding is a protocol error for the stream (the server ends it with that error), and
 * so is a second answer: nothing the client sends can be taken as the answer to a later challenge.
 */
export class StreamChallengeChannel implements ChallengeChannel {
  private pending: { resolve: (r: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  private closed = false;
  /** Why it closed; built on first use when close() had no reason (most streams end with nothing pending). */
  private closedWith: LanyardError | undefined;

  constructor(private readonly send: (challenge: Uint8Array) => void | Promise<void>) {}

  challenge(challenge: Uint8Array): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(this.closedError());
    if (this.pending !== undefined) {
      return Promise.reject(new InternalError('a challenge is already outstanding on this stream'));
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      this.pending = { resolve, reject };
      Promise.resolve()
        .then(() => this.send(challenge))
        .catch((e: unknown) => this.settle((p) => p.reject(e instanceof Error ? e : new Error(String(e)))));
    });
  }

  /**
   * A challenge_response arrived.
   * @throws AttestationError(ERR_INVALID_ARGUMENT) when no challenge is outstanding.
   */
  respond(response: Uint8Array): void {
    if (this.pending === undefined) {
      throw new InvalidArgumentError(
        'challenge_response without an outstanding challenge: send AttestParams first and answer each challenge once',
      );
    }
    this.settle((p) => p.resolve(new Uint8Array(response)));
  }

  /**
   * The stream ended (client gone, cancelled, deadline) or the attestation finished. A pending challenge
   * rejects with `reason`; later challenges reject at once. Idempotent.
   */
  close(reason?: LanyardError): void {
    if (this.closed) return;
    this.closed = true;
    this.closedWith = reason;
    if (this.pending !== undefined) this.settle((p) => p.reject(this.closedError()));
  }

  /** The error a closed channel fails challenges with: the same instance every time. */
  private closedError(): LanyardError {
    // Built here rather than in close(): an error captures a stack trace, and a stream that ended with
    // nothing outstanding (every successful attestation) never shows it to anyone.
    this.closedWith ??= new InvalidArgumentError('the stream ended before the challenge was answered');
    return this.closedWith;
  }

  private settle(fn: (p: { resolve: (r: Uint8Array) => void; reject: (e: Error) => void }) => void): void {
    const p = this.pending;
    this.pending = undefined;
    if (p !== undefined) fn(p);
  }
}

/** For attestations that must not challenge (and tests): every challenge fails. */
export const NO_CHALLENGES: ChallengeChannel = {
  challenge: () => Promise.reject(new InternalError('this attestation cannot send challenges')),
};
