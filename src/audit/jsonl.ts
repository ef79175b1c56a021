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
import { parseRecordFields, type AuditRecord } from './record';

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

/** What a chain's lines hold, in line order, as ChainLineParser reads them. */
export interface ChainLineSink {
  header?(h: { chain: string; publicJwk?: unknown; keyJwks?: unknown[] }): void;
  record(r: AuditRecord): void;
  checkpoint(c: AuditCheckpoint): void;
}

/**
 * A chain's lines one at a time, for a chain too long to hold as one string or one array. A malformed line is an
 * error naming its line number (fail closed), except a final line without its newline: that is an append a crash
 * interrupted before it was acknowledged (`tornTail`).
 */
export class ChainLineParser {
  private lineNo = 0;
  tornTail = false;

  constructor(private readonly sink: ChainLineSink) {}

  /**
   * @param text one line, without its newline
   * @param unterminated the chain's last line, which had no newline
   */
  line(text: string, unterminated = false): void {
    const n = ++this.lineNo;
    if (text === '') return;
    const bad = (why: string): AuditError => new AuditRecordInvalidError(`line ${n}: ${why}`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      if (unterminated) {
        this.tornTail = true;
        return;
      }
      throw bad('not JSON');
    }
    const o = value as Record<string, unknown> | null;
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw bad('not a JSON object');
    const type = o.type;
    try {
      // The one line type there are millions of is checked in place; the others are copied without `type`.
      if (type === 'record') {
        this.sink.record(parseRecordFields(o, 'type'));
        return;
      }
      const { type: _type, ...rest } = o;
      if (type === 'header') {
        if (n !== 1 || typeof rest.chain !== 'string' || rest.chain === '')
          throw bad('misplaced or bad header');
        if (rest.version !== AUDIT_JSONL_VERSION) throw bad(`unsupported version ${String(rest.version)}`);
        if (rest.keys !== undefined && !Array.isArray(rest.keys)) throw bad('header keys must be a list');
        this.sink.header?.({
          chain: rest.chain,
          ...(rest.publicKey !== undefined && { publicJwk: rest.publicKey }),
          ...(rest.keys !== undefined && { keyJwks: rest.keys as unknown[] }),
        });
      } else if (type === 'checkpoint') {
        this.sink.checkpoint(parseCheckpoint(rest));
      } else {
        throw bad(`unknown line type ${JSON.stringify(String(type)).slice(0, 40)}`);
      }
    } catch (e) {
      if (e instanceof AuditError && e.message.startsWith('line ')) throw e;
      throw bad((e as Error).message);
    }
  }
}

/**
 * Splits text that arrives in chunks (a file read in pieces) into lines for a ChainLineParser, holding only the
 * unfinished last line between chunks.
 */
export class ChainTextSplitter {
  private rest = '';

  constructor(private readonly parser: ChainLineParser) {}

  push(chunk: string): void {
    const text = this.rest + chunk;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      this.parser.line(text.slice(start, nl));
      start = nl + 1;
    }
    this.rest = text.slice(start);
  }

  /** The end of the text: a last line without its newline is parsed as possibly torn. */
  end(): void {
    if (this.rest !== '') this.parser.line(this.rest, true);
    this.rest = '';
  }
}

/**
 * Parses a chain's lines. A malformed line is an error naming its line number (fail closed), except a final
 * line without its newline: that is an append a crash interrupted before it was acknowledged.
 */
export function parseChainText(text: string): ParsedChain {
  let chain: string | undefined;
  let publicJwk: unknown;
  let keyJwks: unknown[] | undefined;
  const records: AuditRecord[] = [];
  const checkpoints: AuditCheckpoint[] = [];
  const parser = new ChainLineParser({
    header: (h) => {
      chain = h.chain;
      publicJwk = h.publicJwk;
      keyJwks = h.keyJwks;
    },
    record: (r) => records.push(r),
    checkpoint: (c) => checkpoints.push(c),
  });
  const splitter = new ChainTextSplitter(parser);
  splitter.push(text);
  splitter.end();
  chain ??= records[0]?.chain;
  if (chain === undefined)
    throw new AuditRecordInvalidError('no header line and no records: not an audit chain');
  return {
    chain,
    records,
    checkpoints,
    ...(publicJwk !== undefined && { publicJwk }),
    ...(keyJwks !== undefined && { keyJwks }),
    tornTail: parser.tornTail,
  };
}
