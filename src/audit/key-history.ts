/**
 * The history of a rotating audit key as signed statements. Each key enters with an introduction naming it
 * and the time it starts signing, signed by the key it replaces (the first key signs its own). Read in order,
 * the introductions give every key's window — a key signs from its own `validFrom` until its successor's —
 * and each link proves the outgoing key handed over to the next, so a key slipped into the history (or a
 * window moved) breaks a signature.
 *
 *   signed bytes = "lanyard-audit-v1 key\n" + canonicalJson({ keyId, x, validFrom, signedBy })
 *   signature    = Ed25519 by `signedBy`, base64url
 */
import { verify } from 'node:crypto';
import { AuditChainBrokenError, AuditError, AuditRecordInvalidError } from '../errors';
import { AuditPublicKey, type AuditSigningKey } from './audit-key';
import { canonicalJson } from './canonical';
import { AuditKeyRing, type AuditKeyEntry } from './key-ring';

export const KEY_INTRODUCTION_LABEL = 'lanyard-audit-v1 key\n';

export interface AuditKeyIntroduction {
  keyId: string;
  /** The Ed25519 public key (JWK `x`, base64url). */
  x: string;
  /** ISO 8601 with milliseconds, UTC. */
  validFrom: string;
  /** The key that signed this introduction: the previous key, or this key itself for the first. */
  signedBy: string;
  signature: string;
}

function signedBytes(i: Omit<AuditKeyIntroduction, 'signature'>): Buffer {
  return Buffer.from(
    KEY_INTRODUCTION_LABEL +
      canonicalJson({ keyId: i.keyId, x: i.x, validFrom: i.validFrom, signedBy: i.signedBy }),
  );
}

/** Introduces `next` (from `validFrom` on), signed by `by` (the outgoing key, or `next` itself when first). */
export function introduceKey(
  next: AuditPublicKey,
  validFrom: Date,
  by: AuditSigningKey,
): AuditKeyIntroduction {
  const unsigned = {
    keyId: next.keyId,
    x: next.jwk().x,
    validFrom: validFrom.toISOString(),
    signedBy: by.publicKey.keyId,
  };
  return { ...unsigned, signature: by.sign(signedBytes(unsigned)).toString('base64url') };
}

export function parseKeyIntroduction(value: unknown): AuditKeyIntroduction {
  const bad = (why: string): AuditError => new AuditRecordInvalidError(`audit key introduction: ${why}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('not an object');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['keyId', 'x', 'validFrom', 'signedBy', 'signature'].includes(k))
      throw bad(`unknown field "${k.slice(0, 64)}"`);
  }
  const { keyId, x, validFrom, signedBy, signature } = o;
  for (const [name, v] of [
    ['keyId', keyId],
    ['x', x],
    ['signedBy', signedBy],
    ['signature', signature],
  ] as const) {
    if (typeof v !== 'string' || v === '' || v.length > 256) throw bad(`${name} must be a short string`);
  }
  if (typeof validFrom !== 'string' || Number.isNaN(Date.parse(validFrom)))
    throw bad('validFrom is not a date');
  return {
    keyId: keyId as string,
    x: x as string,
    validFrom,
    signedBy: signedBy as string,
    signature: signature as string,
  };
}

/**
 * Checks the introductions in order and returns the ring they describe.
 * @throws AuditError(ERR_AUDIT_CHAIN_BROKEN) naming the first introduction that is out of order, not signed
 *   by its predecessor, or whose key id is not its key's thumbprint.
 */
export function ringFromIntroductions(intros: readonly AuditKeyIntroduction[]): AuditKeyRing {
  const broken = (i: number, why: string): AuditError =>
    new AuditChainBrokenError(`audit key history, entry ${i + 1}: ${why}`);
  const keys: AuditPublicKey[] = [];
  for (let i = 0; i < intros.length; i++) {
    const intro = intros[i]!;
    let key: AuditPublicKey;
    try {
      key = AuditPublicKey.fromJwk({ kty: 'OKP', crv: 'Ed25519', x: intro.x });
    } catch (e) {
      throw broken(i, `the key does not decode (${(e as Error).message})`);
    }
    if (key.keyId !== intro.keyId) throw broken(i, `key id ${intro.keyId} is not the key's thumbprint`);
    const signer = i === 0 ? key : keys[i - 1]!;
    if (intro.signedBy !== signer.keyId) {
      throw broken(
        i,
        `signed by ${intro.signedBy}, expected ${i === 0 ? 'the key itself' : `the previous key ${signer.keyId}`}`,
      );
    }
    let sig: Buffer;
    try {
      sig = Buffer.from(intro.signature, 'base64url');
    } catch {
      throw broken(i, 'the signature is not base64url');
    }
    if (!verify(null, signedBytes(intro), signer.key, sig))
      throw broken(i, `the signature by ${signer.keyId} does not verify`);
    if (i > 0 && Date.parse(intro.validFrom) <= Date.parse(intros[i - 1]!.validFrom)) {
      throw broken(i, 'it starts no later than the key before it');
    }
    if (keys.some((k) => k.keyId === key.keyId)) throw broken(i, `key ${key.keyId} is introduced twice`);
    keys.push(key);
  }
  const entries: AuditKeyEntry[] = keys.map((key, i) => {
    const entry: AuditKeyEntry = { key, validFrom: new Date(intros[i]!.validFrom) };
    const next = intros[i + 1];
    if (next !== undefined) entry.validUntil = new Date(next.validFrom);
    return entry;
  });
  return new AuditKeyRing(entries);
}
