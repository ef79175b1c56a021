import { InternalError, TokenInvalidError } from '../errors';
import { hashJoinToken, JOIN_TOKEN_PREFIX } from '../internal/join-token-secret';
import type { AttestationResult, AttestContext, Attestor, ChallengeChannel } from './attestor';
import { checkEvidenceSize, evidenceDigest, evidenceText } from './evidence';

export const JOIN_TOKEN_ATTESTOR = 'join_token';
/** Selector type of the join_token attestor: `join_token:<token id>`. */
export const JOIN_TOKEN_SELECTOR_TYPE = 'join_token';

/** A token is 11 + 43 characters; anything far longer is not a token, whatever it is. */
const MAX_TOKEN_BYTES = 256;
/** The whole token, anchored: prefix and 32 random bytes in base64url (see join-token-secret.ts). */
const TOKEN_SYNTAX = /^lanyard_jt_[A-Za-z0-9_-]{20,200}$/;

/** Where tokens are spent: any Store, or the transaction handle of one. */
export type JoinTokenStore = NonNullable<AttestContext['store']>;

/**
 * Join tokens: a one-time secret, created by the registration API and bound there to one registration entry.
 *
 * Constant time: the secret is never compared as a string. It is hashed (SHA-256) and the store looks the
 * hash up, so how long a lookup takes depends on hash bytes an attacker cannot steer, not on how many
 * characters of some stored token they guessed right. The only checks on the text itself are its length and
 * its syntax, which reveal nothing about any stored token.
 *
 * Single use, also across restarts and between several servers: the store marks the token spent in the same
 * transaction that finds it, on disk (store.consumeJoinToken). A replay is ERR_TOKEN_SPENT, an expired token
 * ERR_TOKEN_EXPIRED, an unknown one ERR_TOKEN_INVALID.
 *
 * Selector: `join_token:<token id>`, the non-secret handle the registration API returned with the token,
 * never the token. SPIRE names its agent `spiffe://<td>/spire/agent/join_token/<token>`, which puts the (spent)
 * secret into an identity that is logged and shown everywhere; the id pins the same single token without that.
 * The bound entry travels in `boundEntryId` (with its SPIFFE ID and the token's creation time): the server
 * issues exactly that entry.
 */
export class JoinTokenAttestor implements Attestor {
  readonly type = JOIN_TOKEN_ATTESTOR;

  /** @param store where tokens are spent; `ctx.store` of a call overrides it (a transaction handle). */
  constructor(private readonly store?: JoinTokenStore) {}

  async attest(
    evidence: Uint8Array,
    _io: ChallengeChannel,
    now: Date,
    ctx?: AttestContext,
  ): Promise<AttestationResult> {
    checkEvidenceSize(evidence, MAX_TOKEN_BYTES, 'join token');
    // A token pasted from a file often ends with a newline; the token alphabet has no white space, so
    // trimming cannot make two different tokens equal.
    const token = evidenceText(evidence, 'join token').trim();
    if (!TOKEN_SYNTAX.test(token)) {
      throw new TokenInvalidError(
        `join token is not valid: expected a token starting with ${JOIN_TOKEN_PREFIX} as issued by \`lanyard token create\``,
      );
    }
    const store = ctx?.store ?? this.store;
    if (store === undefined) {
      throw new InternalError('join_token attestor has no store to spend tokens in');
    }
    const record = await store.consumeJoinToken(hashJoinToken(token), now);
    return {
      selectors: [{ type: JOIN_TOKEN_SELECTOR_TYPE, value: record.id }],
      evidenceSha256: evidenceDigest(evidence),
      boundSpiffeId: record.spiffeId,
      ...(record.entryId !== undefined && { boundEntryId: record.entryId }),
      boundAt: record.createdAt,
      agentIdHint: `${JOIN_TOKEN_ATTESTOR}/${record.id}`,
      // Spent by this attestation: the runtime must renew with its SVID or attest with a new token.
      canReattest: false,
    };
  }
}
