/**
 * Every audit key a verifier knows, each with the window in which it was the signing key. Keys rotate (the
 * server's on a schedule), so a checkpoint is checked with the key its `keyId` names, and only when its time
 * falls inside that key's window: a retired key stays good for what it signed while it was current, and a key
 * (retired, or stolen) cannot vouch for a checkpoint dated outside its window.
 *
 * Windows travel as two extra members of the key's JWK in the SPIFFE bundle (RFC 7517 §4: members a consumer
 * does not understand are ignored), ISO 8601 UTC with milliseconds:
 *   lanyard_valid_from   the key signs checkpoints from this time on
 *   lanyard_valid_until  absent while the key is current; its successor's valid_from once it is retired
 * A key without a window (given as PEM with --key, a file chain's own header key) is accepted at any time.
 */
import { AuditRecordInvalidError } from '../errors';
import {
  AUDIT_KEY_USE,
  AuditPublicKey,
  VALID_FROM_MEMBER,
  VALID_UNTIL_MEMBER,
  type AuditPublicJwk,
} from './audit-key';
import { checkpointSignatureValid, type AuditCheckpoint } from './checkpoint';

export { VALID_FROM_MEMBER, VALID_UNTIL_MEMBER };

/** An audit key's JWK as published, with its window when the publisher knows one. */
export type PublishedAuditJwk = AuditPublicJwk & {
  [VALID_FROM_MEMBER]?: string;
  [VALID_UNTIL_MEMBER]?: string;
};

export interface AuditKeyEntry {
  key: AuditPublicKey;
  /** Inclusive. Absent: since always. */
  validFrom?: Date;
  /** Exclusive. Absent: still current (or, for a key without a window, forever). */
  validUntil?: Date;
}

/** Why a checkpoint was not accepted: not signed by the key it names, or that key was not current then. */
export interface CheckpointKeyProblem {
  kind: 'checkpoint_signature' | 'checkpoint_key';
  message: string;
}

export class AuditKeyRing {
  readonly entries: readonly AuditKeyEntry[];

  constructor(entries: readonly AuditKeyEntry[]) {
    const seen = new Set<string>();
    for (const e of entries) {
      if (seen.has(e.key.keyId)) {
        throw new AuditRecordInvalidError(`audit key ${e.key.keyId} is listed twice`);
      }
      seen.add(e.key.keyId);
      if (e.validFrom !== undefined && e.validUntil !== undefined && e.validUntil < e.validFrom) {
        throw new AuditRecordInvalidError(`audit key ${e.key.keyId}: its window ends before it starts`);
      }
    }
    this.entries = Object.freeze([...entries]);
  }

  /** One key, good at any time. */
  static of(key: AuditPublicKey): AuditKeyRing {
    return new AuditKeyRing([{ key }]);
  }

  /**
   * The audit keys (use "lanyard-audit") among JWKs, with their windows; other entries are ignored.
   * @throws AuditError(ERR_UNSUPPORTED_KEY / ERR_AUDIT_RECORD_INVALID) for an audit JWK that does not decode.
   */
  static fromJwks(jwks: readonly unknown[]): AuditKeyRing {
    const entries: AuditKeyEntry[] = [];
    for (const jwk of jwks) {
      const o = jwk as Record<string, unknown> | null;
      if (o === null || typeof o !== 'object' || o.use !== AUDIT_KEY_USE) continue;
      const entry: AuditKeyEntry = { key: AuditPublicKey.fromJwk(o) };
      const from = windowTime(o[VALID_FROM_MEMBER], VALID_FROM_MEMBER);
      const until = windowTime(o[VALID_UNTIL_MEMBER], VALID_UNTIL_MEMBER);
      if (from !== undefined) entry.validFrom = from;
      if (until !== undefined) entry.validUntil = until;
      entries.push(entry);
    }
    return new AuditKeyRing(entries);
  }

  /** Every audit key of a SPIFFE bundle document; undefined when it holds none. */
  static fromSpiffeBundle(doc: unknown): AuditKeyRing | undefined {
    const keys = (doc as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys)) return undefined;
    const ring = AuditKeyRing.fromJwks(keys);
    return ring.entries.length === 0 ? undefined : ring;
  }

  find(keyId: string): AuditKeyEntry | undefined {
    return this.entries.find((e) => e.key.keyId === keyId);
  }

  /** The key current at `time`: the entry whose window holds it. */
  currentAt(time: Date): AuditKeyEntry | undefined {
    return this.entries.find((e) => inWindow(e, time));
  }

  /** Undefined when the key `c` names signed it and was current at `c.time`; else what is wrong. */
  checkCheckpoint(c: AuditCheckpoint): CheckpointKeyProblem | undefined {
    const entry = this.find(c.keyId);
    if (entry === undefined) {
      return {
        kind: 'checkpoint_signature',
        message: `checkpoint at ${c.seq} names audit key ${c.keyId}, which is not among the trusted keys (${this.describe()})`,
      };
    }
    if (!checkpointSignatureValid(c, entry.key)) {
      return {
        kind: 'checkpoint_signature',
        message: `checkpoint at ${c.seq} is not signed by audit key ${c.keyId} for chain "${c.chain}"`,
      };
    }
    const at = new Date(c.time);
    if (!inWindow(entry, at)) {
      return {
        kind: 'checkpoint_key',
        message: `checkpoint at ${c.seq} is dated ${c.time}, when audit key ${c.keyId} was not the signing key (${windowText(entry)})`,
      };
    }
    return undefined;
  }

  /** The keys as published in the SPIFFE bundle: each JWK with its window. */
  jwks(): PublishedAuditJwk[] {
    return this.entries.map((e) => ({
      ...e.key.jwk(),
      ...(e.validFrom !== undefined && { [VALID_FROM_MEMBER]: e.validFrom.toISOString() }),
      ...(e.validUntil !== undefined && { [VALID_UNTIL_MEMBER]: e.validUntil.toISOString() }),
    }));
  }

  describe(): string {
    return this.entries.length === 0 ? 'none' : this.entries.map((e) => e.key.keyId).join(', ');
  }
}

function inWindow(e: AuditKeyEntry, t: Date): boolean {
  if (e.validFrom !== undefined && t.getTime() < e.validFrom.getTime()) return false;
  if (e.validUntil !== undefined && t.getTime() >= e.validUntil.getTime()) return false;
  return true;
}

function windowText(e: AuditKeyEntry): string {
  const from = e.validFrom?.toISOString() ?? 'the beginning';
  return e.validUntil !== undefined
    ? `it signed from ${from} until ${e.validUntil.toISOString()}`
    : `it signs from ${from}`;
}

function windowTime(v: unknown, member: string): Date | undefined {
  if (v === undefined) return undefined;
  const t = typeof v === 'string' ? new Date(v) : undefined;
  if (t === undefined || Number.isNaN(t.getTime())) {
    throw new AuditRecordInvalidError(`audit JWK: ${member} is not an ISO 8601 time`);
  }
  return t;
}
