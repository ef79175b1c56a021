import type { KeyObject } from 'node:crypto';
import type { ChallengeChannel } from '../../../src/attest';
import { answerX509PopChallenge } from '../../../src/attest';

/** A runtime that answers every challenge with `key`, remembering what it was asked and what it answered. */
export class AnsweringRuntime implements ChallengeChannel {
  readonly challenges: Uint8Array[] = [];
  readonly answers: Uint8Array[] = [];
  constructor(private readonly key: KeyObject) {}
  challenge(challenge: Uint8Array): Promise<Uint8Array> {
    this.challenges.push(challenge);
    const answer = answerX509PopChallenge(challenge, this.key);
    this.answers.push(answer);
    return Promise.resolve(answer);
  }
}

/** A runtime that answers every challenge with the same fixed bytes (a replay, or garbage). */
export function fixedAnswer(bytes: Uint8Array): ChallengeChannel & { challenges: Uint8Array[] } {
  const challenges: Uint8Array[] = [];
  return {
    challenges,
    challenge: (c) => {
      challenges.push(c);
      return Promise.resolve(bytes);
    },
  };
}

/** A runtime that never answers. */
export const silentRuntime: ChallengeChannel = { challenge: () => new Promise<Uint8Array>(() => undefined) };

/** For attestors that must not challenge: fails the test if they do. */
export const mustNotChallenge: ChallengeChannel = {
  challenge: () => Promise.reject(new Error('this attestor must not send a challenge')),
};
