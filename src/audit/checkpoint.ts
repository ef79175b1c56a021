/**
 * Signed checkpoints: the chain's head (sequence and hash) at a time, signed with the audit key. A checkpoint
 * fixes everything up to its sequence: rewriting history means recomputing hashes, which a verifier notices at
 * the first checkpoint whose head no longer matches; cutting records off the end leaves a checkpoint beyond
 * the last record.
 *
 *   signed bytes = "lanyard-audit-v1 checkpoint\n" + canonicalJson({ chain, seq, headHash, time, keyId })
 *   signature    = Ed25519 over those bytes, base64url
 */
import { verify } from 'node:crypto';
import { AuditError, AuditRecordInvalidError } from '../errors';
import type { AuditPublicKey, AuditSigningKey } from './audit-key';
import { canonicalJson } from './canonical';
import type { ChainHead } from './chain';

export const CHECKPOINT_LABEL = 'lanyard-audit-v1 checkpoint\n';

export interface AuditCheckpoint {
  chain: string;
  seq: number;
  headHash: string;
  /** ISO 8601 with milliseconds, UTC. */
  time: string;
  keyId: string;
  signature: string;
}

function signedBytes(c: Omit<AuditCheckpoint, 'signature'>): Buffer {
  const body = canonicalJson({
    chain: c.chain,
    seq: c.seq,
    headHash: c.headHash,
    time: c.time,
    keyId: c.keyId,
  });
  return Buffer.from(CHECKPOINT_LABEL + body);
}

export function signCheckpoint(head: ChainHead, key: AuditSigningKey, now: Date): AuditCheckpoint {
  const unsigned = {
    chain: head.chain,
    seq: head.seq,
    headHash: head.hash,
    time: now.toISOString(),
    keyId: key.publicKey.keyId,
  };
  return { ...unsigned, signature: key.sign(signedBytes(unsigned)).toString('base64url') };
}

/** True when `key` signed exactly this checkpoint. */
export function checkpointSignatureValid(c: AuditCheckpoint, key: AuditPublicKey): boolean {
  if (c.keyId !== key.keyId) return false;
  let sig: Buffer;
  try {
    sig = Buffer.from(c.signature, 'base64url');
  } catch {
    return false;
  }
  return verify(null, signedBytes(c), key.key, sig);
}

export function checkpointLine(c: AuditCheckpoint): string {
  return canonicalJson({ type: 'checkpoint', ...c });
}

const HEX64 = /^[0-9a-f]{64}$/;

export function parseCheckpoint(value: unknown): AuditCheckpoint {
  const bad = (why: string): AuditError => new AuditRecordInvalidError(`checkpoint: ${why}`);
  if (typeof value !== 'object' || value === null) throw bad('not an object');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['chain', 'seq', 'headHash', 'time', 'keyId', 'signature'].includes(k))
      throw bad(`unknown field "${k.slice(0, 64)}"`);
  }
  const { chain, seq, headHash, time, keyId, signature } = o;
  if (typeof chain !== 'string' || chain === '') throw bad('chain must be a non-empty string');
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0)
    throw bad('seq must be an integer >= 0');
  if (typeof headHash !== 'string' || !HEX64.test(headHash)) throw bad('headHash is not SHA-256 hex');
  if (typeof time !== 'string' || Number.isNaN(Date.parse(time))) throw bad('time is not a date');
  if (typeof keyId !== 'string' || keyId.length > 128) throw bad('keyId must be a string');
  if (typeof signature !== 'string' || signature.length > 256) throw bad('signature must be a string');
  return { chain, seq, headHash, time, keyId, signature };
}
