/**
 * The JSON-lines form of a chain, shared by file chains, `lanyard audit export` and shipping: one canonical
 * JSON object per line, `{"type":"record",...}` or `{"type":"checkpoint",...}`, in chain order. A file chain
 * starts with a header line `{"type":"header","chain":...,"version":1}` naming its chain, with its audit public
 * key (`publicKey`) and, for a rotating key (the server's), every key with its window (`keys`).
 */
import { AuditError, AuditRecordInvalidError } from '../errors';
import { canonicalJson } from './canonical';
import { recordLine } from './chain';
import { checkpointLine, parseCheckpoint, type AuditCheckpoint } from './checkpoint';
import { parseRecord, type AuditRecord } from './record';

export const AUDIT_JSONL_VERSION = 1;

export interface ParsedChain {
  chain: string;
  records: AuditRecord[];
  checkpoints: AuditCheckpoint[];
  /** The audit public key (JWK) a file chain's header names, when it has one. */
  publicJwk?: unknown;
  /** Every audit key (JWKs with windows) the header lists, when the chain's key rotates. */
  keyJwks?: unknown[];
  /** True when the last line had no newline and did not parse: a write cut short by a crash, ignored. */
  tornTail: boolean;
}

export function headerLine(chain: string, publicJwk?: unknown, keyJwks?: readonly unknown[]): string {
  return canonicalJson({
    type: 'header',
    chain,
    version: AUDIT_JSONL_VERSION,
    ...(publicJwk !== undefined && { publicKey: publicJwk as never }),
    ...(keyJwks !== undefined && { keys: keyJwks as never }),
  });
}

export function chainLines(
  chain: string,
  records: readonly AuditRecord[],
  checkpoints: readonly AuditCheckpoint[],
  publicJwk?: unknown,
): string[] {
  // Checkpoints go right after the record they sign, so a prefix of the lines is itself a verifiable chain.
  const bySeq = new Map<number, AuditCheckpoint[]>();
  for (const c of checkpoints) bySeq.set(c.seq, [...(bySeq.get(c.seq) ?? []), c]);
  const lines = [headerLine(chain, publicJwk)];
  for (const c of bySeq.get(0) ?? []) lines.push(checkpointLine(c));
  for (const r of records) {
    lines.push(recordLine(r));
    for (const c of bySeq.get(r.seq) ?? []) lines.push(checkpointLine(c));
  }
  return lines;
}

/**
 * Parses a chain's lines. A malformed line is an error naming its line number (fail closed), except a final
 * line without its newline: that is an append a crash interrupted before it was acknowledged.
 */
export function parseChainText(text: string): ParsedChain {
  const bad = (line: number, why: string): AuditError => new AuditRecordInvalidError(`line ${line}: ${why}`);
  const lines = text.split('\n');
  const complete = text.endsWith('\n') || text === '';
  let chain: string | undefined;
  let publicJwk: unknown;
  let keyJwks: unknown[] | undefined;
  const records: AuditRecord[] = [];
  const checkpoints: AuditCheckpoint[] = [];
  let tornTail = false;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!;
    if (text === '') continue;
    const isTail = i === lines.length - 1 && !complete;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      if (isTail) {
        tornTail = true;
        continue;
      }
      throw bad(i + 1, 'not JSON');
    }
    const o = value as Record<string, unknown> | null;
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw bad(i + 1, 'not a JSON object');
    const { type, ...rest } = o;
    try {
      if (type === 'header') {
        if (i !== 0 || typeof rest.chain !== 'string' || rest.chain === '')
          throw bad(i + 1, 'misplaced or bad header');
        if (rest.version !== AUDIT_JSONL_VERSION)
          throw bad(i + 1, `unsupported version ${String(rest.version)}`);
        chain = rest.chain;
        publicJwk = rest.publicKey;
        if (rest.keys !== undefined) {
          if (!Array.isArray(rest.keys)) throw bad(i + 1, 'header keys must be a list');
          keyJwks = rest.keys as unknown[];
        }
      } else if (type === 'record') {
        records.push(parseRecord(rest));
      } else if (type === 'checkpoint') {
        checkpoints.push(parseCheckpoint(rest));
      } else {
        throw bad(i + 1, `unknown line type ${JSON.stringify(String(type)).slice(0, 40)}`);
      }
    } catch (e) {
      if (e instanceof AuditError && e.message.startsWith('line ')) throw e;
      throw bad(i + 1, (e as Error).message);
    }
  }
  chain ??= records[0]?.chain;
  if (chain === undefined)
    throw new AuditRecordInvalidError('no header line and no records: not an audit chain');
  return {
    chain,
    records,
    checkpoints,
    ...(publicJwk !== undefined && { publicJwk }),
    ...(keyJwks !== undefined && { keyJwks }),
    tornTail,
  };
}
