/**
 * External witnesses of the audit trail: append-only places outside the database that receive a copy of every
 * checkpoint the server signs or accepts, every shipped chain's pinned key and every audit key introduction.
 * Someone who can write the database (but holds no audit key) can delete and re-hash records and drop the
 * checkpoints stored beside them; they cannot remove what a witness already holds, and `lanyard audit verify`
 * fails when the database disagrees with a witness (witness-check.ts).
 *
 * A witness is anything that can take a line: a local file (file-witness.ts; the server always keeps one in
 * its data dir), a file on another mount, a syslog collector (syslog-witness.ts). Those that can be read back
 * are cross-checked by verify; a write-only one (syslog) is there for a person or a SIEM to compare against.
 *
 * Entry lines (canonical JSON, one per line):
 *   {"type":"checkpoint", chain, seq, headHash, time, keyId, signature}      as in an exported chain
 *   {"type":"chain-key", chain, x, pinnedAt, keyId, signature}               a shipped chain's pinned key,
 *        signed by the server's audit key current at pinnedAt
 *   {"type":"audit-key", keyId, x, validFrom, signedBy, signature}           key-history.ts
 */
import { verify } from 'node:crypto';
import { AuditError, AuditRecordInvalidError } from '../errors';
import type { AuditSigningKey } from './audit-key';
import { canonicalJson } from './canonical';
import { checkpointLine, parseCheckpoint, type AuditCheckpoint } from './checkpoint';
import { parseKeyIntroduction, type AuditKeyIntroduction } from './key-history';
import type { AuditKeyRing } from './key-ring';

export interface AuditWitness {
  /** How logs and `audit verify` name it, e.g. `file:/var/lib/lanyard/audit/witness.jsonl`. */
  readonly name: string;
  /** Appends one entry line; resolves once the witness holds it (durably, for a file). */
  append(line: string): Promise<void>;
  /** Every complete entry line so far; absent when the witness cannot be read back (syslog). */
  readLines?(): Promise<string[]>;
  close(): Promise<void>;
}

/** A shipped chain's key as pinned at its first accepted shipment, signed by the server's audit key. */
export interface ChainKeyPin {
  chain: string;
  /** The shipper's Ed25519 public key (JWK `x`). */
  x: string;
  /** ISO 8601 with milliseconds, UTC. */
  pinnedAt: string;
  /** The server audit key that signed this pin. */
  keyId: string;
  signature: string;
}

export const CHAIN_KEY_LABEL = 'lanyard-audit-v1 chain-key\n';

function pinBytes(p: Omit<ChainKeyPin, 'signature'>): Buffer {
  return Buffer.from(
    CHAIN_KEY_LABEL + canonicalJson({ chain: p.chain, x: p.x, pinnedAt: p.pinnedAt, keyId: p.keyId }),
  );
}

export function signChainKeyPin(chain: string, x: string, pinnedAt: Date, key: AuditSigningKey): ChainKeyPin {
  const unsigned = { chain, x, pinnedAt: pinnedAt.toISOString(), keyId: key.publicKey.keyId };
  return { ...unsigned, signature: key.sign(pinBytes(unsigned)).toString('base64url') };
}

/** Undefined when a key of `ring`, current at `pinnedAt`, signed the pin; else why not. */
export function chainKeyPinProblem(p: ChainKeyPin, ring: AuditKeyRing): string | undefined {
  const entry = ring.find(p.keyId);
  if (entry === undefined)
    return `the pin of "${p.chain}" is signed by audit key ${p.keyId}, which is not trusted`;
  let sig: Buffer;
  try {
    sig = Buffer.from(p.signature, 'base64url');
  } catch {
    return `the pin of "${p.chain}" has a malformed signature`;
  }
  if (!verify(null, pinBytes(p), entry.key.key, sig))
    return `the pin of "${p.chain}" is not signed by ${p.keyId}`;
  if (ring.currentAt(new Date(p.pinnedAt))?.key.keyId !== p.keyId) {
    return `the pin of "${p.chain}" is dated ${p.pinnedAt}, when ${p.keyId} was not the signing key`;
  }
  return undefined;
}

export type WitnessEntry =
  | { type: 'checkpoint'; checkpoint: AuditCheckpoint }
  | { type: 'chain-key'; pin: ChainKeyPin }
  | { type: 'audit-key'; introduction: AuditKeyIntroduction };

export function witnessLine(e: WitnessEntry): string {
  switch (e.type) {
    case 'checkpoint':
      return checkpointLine(e.checkpoint);
    case 'chain-key':
      return canonicalJson({ type: 'chain-key', ...e.pin });
    case 'audit-key':
      return canonicalJson({ type: 'audit-key', ...e.introduction });
  }
}

/** What a readable witness holds. */
export interface WitnessContent {
  name: string;
  checkpoints: AuditCheckpoint[];
  pins: ChainKeyPin[];
  introductions: AuditKeyIntroduction[];
}

/**
 * Parses a witness's lines. Fails closed: a line that is not a well-formed entry is an error naming the
 * witness and line (a witness someone wrote garbage into is itself evidence).
 */
export function parseWitnessLines(name: string, lines: readonly string[]): WitnessContent {
  const out: WitnessContent = { name, checkpoints: [], pins: [], introductions: [] };
  lines.forEach((line, i) => {
    if (line === '') return;
    const bad = (why: string): AuditError =>
      new AuditRecordInvalidError(`witness ${name}, line ${i + 1}: ${why}`);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw bad('not JSON');
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('not a JSON object');
    const { type, ...rest } = value as Record<string, unknown>;
    try {
      if (type === 'checkpoint') out.checkpoints.push(parseCheckpoint(rest));
      else if (type === 'audit-key') out.introductions.push(parseKeyIntroduction(rest));
      else if (type === 'chain-key') out.pins.push(parsePin(rest));
      else throw new Error(`unknown entry type ${JSON.stringify(String(type)).slice(0, 40)}`);
    } catch (e) {
      throw bad((e as Error).message);
    }
  });
  return out;
}

function parsePin(o: Record<string, unknown>): ChainKeyPin {
  for (const k of Object.keys(o)) {
    if (!['chain', 'x', 'pinnedAt', 'keyId', 'signature'].includes(k))
      throw new Error(`unknown field "${k.slice(0, 64)}"`);
  }
  const { chain, x, pinnedAt, keyId, signature } = o;
  for (const [n, v] of [
    ['chain', chain],
    ['x', x],
    ['keyId', keyId],
    ['signature', signature],
  ] as const) {
    if (typeof v !== 'string' || v === '' || v.length > 2048)
      throw new Error(`chain-key: ${n} must be a string`);
  }
  if (typeof pinnedAt !== 'string' || Number.isNaN(Date.parse(pinnedAt)))
    throw new Error('chain-key: pinnedAt is not a date');
  return {
    chain: chain as string,
    x: x as string,
    pinnedAt,
    keyId: keyId as string,
    signature: signature as string,
  };
}
