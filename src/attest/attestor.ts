import type { StoreOps } from '../store/store';
import type { Selector } from '../store/types';

export type { Selector } from '../store/types';

/**
 * The one plugin interface every node attestor implements, as SPIRE's server-side NodeAttestor: evidence in,
 * selectors out. An attestor only establishes facts about the runtime; which SPIFFE ID those facts earn is
 * decided afterwards by the registration entries whose selectors they satisfy (or, for a join token, by the
 * ID the token was bound to).
 */
export interface Attestor {
  /** The `attestor_type` of AttestParams that selects this attestor, e.g. "join_token". */
  readonly type: string;
  /**
   * Checks `evidence` and returns what it proves. Throws a LanyardError whose code says why the evidence was
   * refused; never one whose message contains the evidence, a secret, or a key.
   *
   * @param io the attestation stream, for attestors that must challenge the runtime (x509pop).
   * @param now the attestation time: expiry and validity are judged at this instant.
   * @param ctx per-call state: `ctx.store` replaces the attestor's store so the server can run a state-changing
   *   attestation (spending a join token) inside the transaction that issues the SVID; then a later failure,
   *   such as no matching entry, leaves the token unspent.
   */
  attest(
    evidence: Uint8Array,
    io: ChallengeChannel,
    now: Date,
    ctx?: AttestContext,
  ): Promise<AttestationResult>;
}

/** The server side of the Attest stream as an attestor sees it: one question, one answer. */
export interface ChallengeChannel {
  /**
   * Sends `challenge` to the runtime (AttestResponse.challenge) and resolves with its answer
   * (AttestRequest.challenge_response). Rejects when the stream ends first. The attestor bounds the wait.
   */
  challenge(challenge: Uint8Array): Promise<Uint8Array>;
}

export interface AttestContext {
  /** Store handle for this attestation, typically the transaction handle of `Store.transaction`. */
  store?: Pick<StoreOps, 'consumeJoinToken'>;
}

export interface AttestationResult {
  /** What the evidence proves, e.g. { type: 'k8s', value: 'ns:payments' }. Never secret. */
  selectors: Selector[];
  /** SHA-256 of the evidence bytes exactly as received: the "evidence digest" of the SVID's provenance. */
  evidenceSha256: Uint8Array;
  /**
   * The SPIFFE ID the evidence was bound to when it was created (join tokens). When set, the server issues
   * exactly this ID or nothing: the runtime may not pick another through spiffe_id or entry matching.
   */
  boundSpiffeId?: string;
  /**
   * The registration entry the evidence was bound to (join tokens): the server issues exactly this entry or
   * nothing. Evidence with boundSpiffeId but no boundEntryId (a token from before tokens named their entry,
   * whose SPIFFE ID was ambiguous then) is refused.
   */
  boundEntryId?: string;
  /** When that binding was made: an entry created after it (a deleted id reused) is not the one bound. */
  boundAt?: Date;
  /**
   * A stable name for the attested runtime, relative and without a trust domain: `<attestor>/<id>`
   * (e.g. `x509pop/<leaf sha256>`). For logs and audit, or as a path suffix for an agent ID.
   */
  agentIdHint?: string;
  /** True when the same runtime can attest again with fresh evidence of the same kind (false: join tokens). */
  canReattest?: boolean;
}
