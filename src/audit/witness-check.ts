/**
 * Cross-checks a stored chain against what external witnesses hold (witness.ts). The chain's own verification
 * (verify-chain.ts) cannot see a rewrite that also dropped the checkpoints stored beside it; a witness can:
 *
 * - every checkpoint of the chain that a witness holds must verify with the chain's keys and be among the
 *   stored checkpoints (so the stored chain still has the head it signed: verifyAuditChain checks that);
 * - a shipped chain's key pinned in a witness must be the key the database pins;
 * - the server's audit key introductions in a witness must be the windows the server publishes.
 *
 * The database may hold more than a witness (a witness that was down, or added later), never less.
 */
import type { AuditCheckpoint } from './checkpoint';
import { ringFromIntroductions, type AuditKeyIntroduction } from './key-history';
import type { AuditKeyRing } from './key-ring';
import type { ChainBreak, ChainVerification } from './verify-chain';
import { chainKeyPinProblem, type WitnessContent } from './witness';

export interface WitnessCheckInput {
  /** verifyAuditChain's result for the stored chain. */
  verification: ChainVerification;
  /** The stored checkpoints of the chain. */
  checkpoints: readonly AuditCheckpoint[];
  /** The keys of the chain's checkpoints: the server's ring for its own chain, the pinned key for a shipped one. */
  chainKeys: AuditKeyRing | undefined;
  /** The server's audit keys, which sign pins and key introductions. */
  serverKeys: AuditKeyRing | undefined;
  /** True for the server's own chain. */
  ownChain: boolean;
  /** A shipped chain's pinned key (JWK `x`) as the database holds it. */
  pinnedX?: string;
  witnesses: readonly WitnessContent[];
}

export interface WitnessedVerification extends ChainVerification {
  /** Witnesses consulted and checkpoints of this chain they held. */
  witnesses: number;
  witnessCheckpoints: number;
  /** The first disagreement with a witness (the chain then does not verify). */
  witnessBreak?: ChainBreak;
}

export function crossCheckWitnesses(input: WitnessCheckInput): WitnessedVerification {
  const stored = new Set(input.checkpoints.map(checkpointKey));
  return crossCheck(input, (c) => stored.has(checkpointKey(c)));
}

/**
 * The witness cross-check of a chain read as a stream: built before the chain is read, told of each stored
 * checkpoint as it passes (`see`, an AuditChainVerifier's onCheckpoint), it holds only the witnesses' own
 * checkpoints of that chain still unmatched, never the stored ones: a chain of any number of checkpoints is
 * checked in the memory its witnesses already take.
 */
export class WitnessCheckpointTracker {
  /** Keys of the witnesses' checkpoints of the chain not yet seen among the stored ones. */
  private readonly unseen = new Set<string>();

  constructor(
    readonly chain: string,
    witnesses: readonly WitnessContent[],
  ) {
    for (const w of witnesses)
      for (const c of w.checkpoints) if (c.chain === chain) this.unseen.add(checkpointKey(c));
  }

  /** A stored checkpoint of the chain, as it is read. */
  see(c: AuditCheckpoint): void {
    if (this.unseen.size > 0) this.unseen.delete(checkpointKey(c));
  }

  /** Witness checkpoints still unmatched (what the tracker holds). */
  get held(): number {
    return this.unseen.size;
  }

  /** crossCheckWitnesses for the chain once every stored checkpoint was seen. */
  check(input: Omit<WitnessCheckInput, 'checkpoints'>): WitnessedVerification {
    if (input.verification.chain !== this.chain) {
      throw new Error(`the tracker is of chain "${this.chain}", not "${input.verification.chain}"`);
    }
    return crossCheck(input, (c) => !this.unseen.has(checkpointKey(c)));
  }
}

function crossCheck(
  input: Omit<WitnessCheckInput, 'checkpoints'>,
  isStored: (c: AuditCheckpoint) => boolean,
): WitnessedVerification {
  const { verification: v, witnesses } = input;
  const chain = v.chain;
  let count = 0;
  let found: ChainBreak | undefined;
  const fail = (seq: number, message: string): void => {
    if (found === undefined || seq < found.seq) found = { kind: 'witness', seq, message };
  };

  for (const w of witnesses) {
    for (const c of w.checkpoints) {
      if (c.chain !== chain) continue;
      count++;
      const problem =
        input.chainKeys === undefined
          ? { message: 'there is no key to check it with' }
          : input.chainKeys.checkCheckpoint(c);
      if (problem !== undefined) {
        fail(
          c.seq,
          `${w.name} holds a checkpoint at ${c.seq} (${c.time}) that the chain's keys do not verify: ${problem.message}` +
            (input.ownChain ? '' : ' (was the pinned key replaced?)'),
        );
      } else if (!isStored(c)) {
        fail(
          c.seq,
          `${w.name} holds the checkpoint of ${c.time} at ${c.seq} (head ${c.headHash.slice(0, 16)}…) and the database does not: checkpoints were deleted or the chain was rolled back or rewritten`,
        );
      }
    }
    for (const p of w.pins) {
      if (p.chain !== chain) continue;
      if (input.ownChain) {
        fail(0, `${w.name} pins a shipper key for the server's own chain`);
        continue;
      }
      const problem =
        input.serverKeys === undefined
          ? 'there is no server audit key to check it with'
          : chainKeyPinProblem(p, input.serverKeys);
      if (problem !== undefined) fail(0, `${w.name}: ${problem}`);
      else if (input.pinnedX !== p.x) {
        fail(
          0,
          `${w.name} pins key ${p.x.slice(0, 16)}… for this chain since ${p.pinnedAt}; the database ${
            input.pinnedX === undefined ? 'pins no key' : `pins ${input.pinnedX.slice(0, 16)}…`
          }`,
        );
      }
    }
    if (input.ownChain && w.introductions.length > 0) {
      const problem = introductionsProblem(w.introductions, input.serverKeys);
      if (problem !== undefined) fail(0, `${w.name}: ${problem}`);
    }
  }

  return {
    ...v,
    ok: v.ok && found === undefined,
    witnesses: witnesses.length,
    witnessCheckpoints: count,
    ...(found !== undefined && { witnessBreak: found }),
  };
}

function checkpointKey(c: AuditCheckpoint): string {
  return `${c.chain}\u0000${c.seq}\u0000${c.headHash}\u0000${c.time}\u0000${c.keyId}\u0000${c.signature}`;
}

/** The introductions (repeats allowed: a witness may be re-fed at start-up) against the server's windows. */
function introductionsProblem(
  intros: readonly AuditKeyIntroduction[],
  serverKeys: AuditKeyRing | undefined,
): string | undefined {
  const unique = new Map<string, AuditKeyIntroduction>();
  for (const i of intros) {
    const prev = unique.get(i.keyId);
    if (prev !== undefined && (prev.validFrom !== i.validFrom || prev.signature !== i.signature)) {
      return `audit key ${i.keyId} is introduced twice with different windows`;
    }
    unique.set(i.keyId, i);
  }
  const ordered = [...unique.values()].sort((a, b) => Date.parse(a.validFrom) - Date.parse(b.validFrom));
  try {
    ringFromIntroductions(ordered);
  } catch (e) {
    return (e as Error).message;
  }
  for (const i of ordered) {
    const entry = serverKeys?.find(i.keyId);
    if (entry === undefined)
      return `audit key ${i.keyId} (from ${i.validFrom}) is not among the keys the server publishes`;
    if (entry.validFrom?.toISOString() !== i.validFrom) {
      return `audit key ${i.keyId} starts at ${i.validFrom} here but at ${entry.validFrom?.toISOString() ?? 'no set time'} in the published keys`;
    }
  }
  return undefined;
}
