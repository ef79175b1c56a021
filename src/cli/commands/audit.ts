/**
 * `lanyard audit ...`: what an investigator runs.
 *   verify  checks every link and checkpoint of a chain (a file, or every chain on the server), that a signed
 *           checkpoint covers the last record, and that the witnesses outside the database agree; exit 1 on
 *           any break, naming its kind and sequence number
 *   trace   principal -> sessions -> delegations -> hop decisions, from the server's records, as text or JSON
 *   export  the server's chain (or a shipped one) as JSON lines
 *   ship    sends a service's local file chain to the server, which verifies and stores it
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { AuditPublicKey } from '../../audit/audit-key';
import { FileAuditLog } from '../../audit/file-log';
import { readWitnessFile } from '../../audit/file-witness';
import { ChainLineParser, ChainTextSplitter, parseChainText, type ParsedChain } from '../../audit/jsonl';
import { AuditKeyRing, type AuditKeyEntry } from '../../audit/key-ring';
import type { AuditQueryKey } from '../../audit/log';
import { parseRecord, type AuditRecord } from '../../audit/record';
import { buildTrace, renderTraceText } from '../../audit/trace';
import {
  AuditChainVerifier,
  type ChainBreak,
  type ChainVerification,
  type VerifyAuditChainOptions,
} from '../../audit/verify-chain';
import { WitnessCheckpointTracker } from '../../audit/witness-check';
import { parseWitnessLines, type WitnessContent } from '../../audit/witness';
import { SERVER_SPIFFE_PATH } from '../../ca/server-svid';
import { AuditRecordInvalidError, isLanyardError } from '../../errors';
import { AuditAdminClient } from '../../server/audit/client';
import { CliError, usageError } from '../cli-error';
import { EXIT_REJECTED } from '../exit-codes';
import { readInputFile } from '../input';
import { runAction } from '../run-action';
import { type AdminConnectionOptions, printJson, withAdminOptions, withServerClient } from './server-admin';

interface VerifyOptions extends AdminConnectionOptions {
  file?: string;
  server?: boolean;
  key?: string;
  bundle?: string[];
  witness?: string[];
  allowUnsignedTail?: boolean;
}

interface TraceOptions extends AdminConnectionOptions {
  file?: string[];
  serverChain?: string;
  session?: string;
  serial?: string;
  principal?: string;
  rootSession?: string;
}

function withAuditClient<T>(
  opts: AdminConnectionOptions,
  fn: (c: AuditAdminClient) => Promise<T>,
): Promise<T> {
  return withServerClient(opts, (socketPath) => new AuditAdminClient(socketPath), fn);
}

/** Keys given on the command line: --key (PEM, good at any time) or --bundle (every audit key with its window). */
function givenKeys(opts: VerifyOptions): { keys: AuditKeyRing; from: string } | undefined {
  try {
    if (opts.key !== undefined) {
      return {
        keys: AuditKeyRing.of(AuditPublicKey.fromPem(readInputFile(opts.key, 'key file'))),
        from: opts.key,
      };
    }
    if (opts.bundle !== undefined && opts.bundle.length > 0) {
      // Several bundles: the servers of one database each publish their own audit keys, and all of them sign
      // checkpoints of the one shared chain.
      const entries = new Map<string, AuditKeyEntry>();
      for (const file of opts.bundle) {
        const keys = AuditKeyRing.fromSpiffeBundle(JSON.parse(readInputFile(file, 'bundle')) as unknown);
        if (keys === undefined)
          throw usageError(`${file} holds no audit key (a JWK with use "lanyard-audit")`);
        for (const e of keys.entries) if (!entries.has(e.key.keyId)) entries.set(e.key.keyId, e);
      }
      return { keys: new AuditKeyRing([...entries.values()]), from: opts.bundle.join(', ') };
    }
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw usageError(`cannot read the audit key: ${(e as Error).message}`);
  }
  return undefined;
}

/** The keys a chain file's header names: every key with its window (the server's), else its one key. */
function headerKeys(parsed: Pick<ParsedChain, 'publicJwk' | 'keyJwks'>): AuditKeyRing | undefined {
  if (parsed.keyJwks !== undefined && parsed.keyJwks.length > 0) return AuditKeyRing.fromJwks(parsed.keyJwks);
  return parsed.publicJwk === undefined
    ? undefined
    : AuditKeyRing.of(AuditPublicKey.fromJwk(parsed.publicJwk));
}

function isServerChainName(chain: string): boolean {
  return /^spiffe:\/\/[^/]+(\/.*)$/.exec(chain)?.[1] === SERVER_SPIFFE_PATH;
}

/** The `x` of a JWK, or undefined. */
function jwkX(jwk: unknown): string | undefined {
  const x = (jwk as { x?: unknown } | null)?.x;
  return typeof x === 'string' ? x : undefined;
}

/** --witness files, read by the CLI itself. A named file that does not exist is a usage error. */
async function witnessFiles(files: readonly string[]): Promise<WitnessContent[]> {
  const out: WitnessContent[] = [];
  for (const f of files) {
    if (!fs.existsSync(f)) throw usageError(`witness ${f} does not exist`);
    try {
      out.push(parseWitnessLines(`file:${f}`, await readWitnessFile(f)));
    } catch (e) {
      if (isLanyardError(e)) throw new CliError(`${e.code}: ${e.message}`, EXIT_REJECTED);
      throw e;
    }
  }
  return out;
}

interface VerifyResult {
  verification: ChainVerification & {
    witnesses?: number;
    witnessCheckpoints?: number;
    witnessBreak?: ChainBreak;
  };
  keyFrom: string;
}

function describe(r: VerifyResult): string {
  const v = r.verification;
  const witnessed =
    v.witnesses !== undefined && v.witnesses > 0
      ? `; ${v.witnessCheckpoints ?? 0} checkpoints held by ${v.witnesses} witness${v.witnesses === 1 ? '' : 'es'} agree`
      : '';
  if (v.ok) {
    const signed =
      v.checkpointedAt !== undefined
        ? `signed through ${v.checkpointedSeq} at ${v.checkpointedAt}`
        : `signed through ${v.checkpointedSeq}`;
    const unsigned =
      v.checkpointedSeq < v.headSeq
        ? `; UNSIGNED TAIL ${v.checkpointedSeq + 1}..${v.headSeq} (accepted by --allow-unsigned-tail)`
        : '';
    return `chain ${v.chain}: OK, ${v.records} records, ${v.checkpoints} checkpoints; ${signed}${unsigned}${witnessed} (key from ${r.keyFrom})\n`;
  }
  const lines: string[] = [];
  if (v.break !== undefined)
    lines.push(`chain ${v.chain}: BROKEN at ${v.break.seq}: ${v.break.kind}: ${v.break.message}`);
  if (v.witnessBreak !== undefined) {
    lines.push(`chain ${v.chain}: BROKEN: witness: ${v.witnessBreak.message}`);
  }
  return `${lines.join('\n')}\n`;
}

function parseWitnessLinesOrFail(name: string, lines: string[]): WitnessContent {
  try {
    return parseWitnessLines(name, lines);
  } catch (e) {
    if (isLanyardError(e)) throw new CliError(`${e.code}: ${e.message}`, EXIT_REJECTED);
    throw e;
  }
}

function parseLines(lines: string[], what: string): ParsedChain {
  try {
    return parseChainText(lines.join('\n') + '\n');
  } catch (e) {
    if (isLanyardError(e)) throw new CliError(`${what}: ${e.code}: ${e.message}`, EXIT_REJECTED);
    throw e;
  }
}

/** What a chain's header named, as read. */
type ChainHeader = Pick<ParsedChain, 'publicJwk' | 'keyJwks'>;

/** A chain read line by line into a verifier, with what its header named. */
interface StreamedChain {
  chain: string;
  verifier: AuditChainVerifier;
  header: ChainHeader;
  /** The witnesses' checkpoints of the chain, matched against the stored ones as they passed. */
  tracker: WitnessCheckpointTracker;
}

/**
 * A parser whose records and checkpoints go straight to a verifier, so no chain is ever held whole: each
 * checkpoint is checked as it is read (with the keys `keysFor` gives once the header is read) and matched
 * against the witnesses' checkpoints, then dropped. Memory stays the same for ten records or ten million, and
 * for ten checkpoints or a million.
 */
function chainVerifierReader(
  strict: VerifyAuditChainOptions,
  what: string,
  keysFor: (chain: string, header: ChainHeader) => AuditKeyRing | undefined,
  witnesses: readonly WitnessContent[],
  expected?: string,
): { parser: ChainLineParser; done(): StreamedChain } {
  const header: ChainHeader = {};
  let tracker: WitnessCheckpointTracker | undefined;
  const trackerOf = (chain: string): WitnessCheckpointTracker =>
    (tracker ??= new WitnessCheckpointTracker(chain, witnesses));
  const verifier: AuditChainVerifier = new AuditChainVerifier({
    ...strict,
    keys: () => keysFor(verifier.chain!, header),
    onCheckpoint: (c) => trackerOf(verifier.chain!).see(c),
  });
  if (expected !== undefined) verifier.setChain(expected);
  const parser = new ChainLineParser({
    header: (h) => {
      if (expected === undefined) verifier.setChain(h.chain);
      else if (h.chain !== expected) {
        throw new AuditRecordInvalidError(`the export is of chain "${h.chain}", not "${expected}"`);
      }
      if (h.publicJwk !== undefined) header.publicJwk = h.publicJwk;
      if (h.keyJwks !== undefined) header.keyJwks = h.keyJwks;
    },
    record: (r) => verifier.addRecord(r),
    checkpoint: (c) => verifier.addCheckpoint(c),
  });
  return {
    parser,
    done: () => {
      const chain = verifier.chain;
      if (chain === undefined) {
        throw rejected(
          what,
          new AuditRecordInvalidError('no header line and no records: not an audit chain'),
        );
      }
      return { chain, verifier, header, tracker: trackerOf(chain) };
    },
  };
}

function rejected(what: string, e: unknown): unknown {
  return isLanyardError(e) ? new CliError(`${what}: ${e.code}: ${e.message}`, EXIT_REJECTED) : e;
}

/** A chain file read in chunks into a verifier. */
async function streamChainFile(
  file: string,
  strict: VerifyAuditChainOptions,
  keysFor: (chain: string, header: ChainHeader) => AuditKeyRing | undefined,
  witnesses: readonly WitnessContent[],
): Promise<StreamedChain> {
  const reader = chainVerifierReader(strict, file, keysFor, witnesses);
  const splitter = new ChainTextSplitter(reader.parser);
  let stream: fs.ReadStream;
  try {
    // Large reads: a chain of millions of lines is read in a few thousand chunks, not a hundred thousand.
    stream = fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1024 * 1024 });
    await new Promise<void>((resolve, reject) => stream.once('open', () => resolve()).once('error', reject));
  } catch (e) {
    throw usageError(`cannot read audit chain ${file}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }
  try {
    for await (const chunk of stream as AsyncIterable<string>) splitter.push(chunk);
    splitter.end();
  } catch (e) {
    stream.destroy();
    throw rejected(file, e);
  }
  return reader.done();
}

/** A chain the server exports, batch by batch, into a verifier. */
async function streamServerChain(
  c: AuditAdminClient,
  chain: string,
  strict: VerifyAuditChainOptions,
  keysFor: (chain: string, header: ChainHeader) => AuditKeyRing | undefined,
  witnesses: readonly WitnessContent[],
): Promise<StreamedChain> {
  const what = `chain ${chain}`;
  const reader = chainVerifierReader(strict, what, keysFor, witnesses, chain);
  for await (const batch of c.exportLines(chain)) {
    try {
      for (const line of batch) reader.parser.line(line);
    } catch (e) {
      throw rejected(what, e);
    }
  }
  return reader.done();
}

/** Writes to a stream, waiting when its buffer is full: a slow disk or pipe slows the export, not memory. */
async function writeAll(out: NodeJS.WritableStream, text: string): Promise<void> {
  if (!out.write(text)) await new Promise((resolve) => out.once('drain', resolve));
}

function recordsOf(lines: string[]): AuditRecord[] {
  return lines.map((l) => {
    const { type: _t, ...r } = JSON.parse(l) as Record<string, unknown>;
    return parseRecord(r);
  });
}

/** The records of the given chain files that match, plus every record of their root sessions. */
function traceFromFiles(files: string[], key: AuditQueryKey, value: string): AuditRecord[] {
  const all = files.flatMap(
    (f) =>
      parseLines(
        readInputFile(f, 'audit chain')
          .split('\n')
          .filter((l) => l !== ''),
        f,
      ).records,
  );
  const wanted =
    key === 'serial'
      ? value
          .toLowerCase()
          .replace(/[:\s]/g, '')
          .replace(/^0+(?=.)/, '')
      : value;
  const first = all.filter((r) => r[key] === wanted);
  const roots = new Set(first.map((r) => r.rootSessionId).filter((r): r is string => r !== undefined));
  return [...first, ...all.filter((r) => r.rootSessionId !== undefined && roots.has(r.rootSessionId))];
}

export function registerAuditCommands(program: Command): void {
  const audit = program
    .command('audit')
    .description('the tamper-evident audit trail: verify, trace, export, ship');

  withAdminOptions(
    audit
      .command('verify')
      .description('check every record link and signed checkpoint; exit 1 on any break')
      .option(
        '--file <file>',
        'a chain as JSON lines (a service file chain or `lanyard audit export` output)',
      )
      .option('--server', "the server's chain and every chain shipped to it, over the admin socket")
      .option('--key <pem>', 'the audit public key (PEM) to check checkpoints with')
      .option(
        '--bundle <json>',
        'a SPIFFE bundle (lanyard bundle show --format jwks) carrying the audit keys and their windows; repeatable (one per server sharing a database)',
        (v: string, prev: string[] = []) => [...prev, v],
      )
      .option(
        '--witness <file>',
        'a witness file (checkpoints and pinned keys kept outside the database) to cross-check; repeatable',
        (v: string, prev: string[] = []) => [...prev, v],
      )
      .option(
        '--allow-unsigned-tail',
        'accept records after the last signed checkpoint (a chain still being written); without it they fail',
      ),
  ).action(
    runAction(async (opts: VerifyOptions) => {
      if ((opts.file === undefined) === (opts.server !== true))
        throw usageError('give exactly one of --file or --server');
      const strict = { allowUnsignedTail: opts.allowUnsignedTail === true };
      const given = givenKeys(opts);
      const results: VerifyResult[] = [];
      if (opts.file !== undefined) {
        // A shipped chain's checkpoints are its shipper's: --key names that key; --bundle is the server's.
        const isOwn = (chain: string, header: ChainHeader): boolean =>
          header.keyJwks !== undefined || isServerChainName(chain);
        const keysFor = (chain: string, header: ChainHeader): AuditKeyRing | undefined =>
          isOwn(chain, header)
            ? (given?.keys ?? headerKeys(header))
            : opts.key !== undefined
              ? given?.keys
              : headerKeys(header);
        const witnesses = await witnessFiles(opts.witness ?? []);
        const parsed = await streamChainFile(opts.file, strict, keysFor, witnesses);
        const own = isOwn(parsed.chain, parsed.header);
        const chainKeys = keysFor(parsed.chain, parsed.header);
        const keyFrom = own ? (given?.from ?? 'the chain header') : (opts.key ?? 'the chain header');
        const serverKeys = own ? chainKeys : opts.bundle !== undefined ? given?.keys : undefined;
        if (!own && opts.witness !== undefined && serverKeys === undefined) {
          throw usageError(
            "to check a shipped chain against a witness, give the server's keys with --bundle",
          );
        }
        const verification = parsed.verifier.finish();
        const pinnedX = jwkX(parsed.header.publicJwk);
        results.push({
          verification:
            opts.witness === undefined
              ? verification
              : parsed.tracker.check({
                  verification,
                  chainKeys,
                  serverKeys,
                  ownChain: own,
                  ...(pinnedX !== undefined && !own && { pinnedX }),
                  witnesses,
                }),
          keyFrom,
        });
      } else {
        await withAuditClient(opts, async (c) => {
          const head = await c.head();
          const published =
            head.auditKeyJwks.length > 0
              ? AuditKeyRing.fromJwks(head.auditKeyJwks.map((j) => JSON.parse(j) as unknown))
              : AuditKeyRing.of(AuditPublicKey.fromJwk(JSON.parse(head.publicKeyJwk) as unknown));
          const serverKeys = given?.keys ?? published;
          // Read before the exports: every checkpoint a witness holds now covers a head the database reached
          // before the export began, so the export must hold it (one signed meanwhile is not yet read).
          const witnesses = [
            ...(await c.readWitnesses()).map((w) => parseWitnessLinesOrFail(w.witness, w.lines)),
            ...(await witnessFiles(opts.witness ?? [])),
          ];
          const chains = [head.chain, ...head.chains.map((s) => s.chain).filter((n) => n !== head.chain)];
          for (const chain of chains) {
            // The server signs its head before it exports, so a healthy chain is covered to its last record.
            // The export is verified as it arrives: neither its records nor its checkpoints are held.
            const own = chain === head.chain;
            const keysFor = (_chain: string, header: ChainHeader): AuditKeyRing | undefined =>
              own ? serverKeys : headerKeys(header);
            const parsed = await streamServerChain(c, chain, strict, keysFor, witnesses);
            const chainKeys = keysFor(chain, parsed.header);
            const verification = parsed.verifier.finish();
            const pinnedX = jwkX(parsed.header.publicJwk);
            results.push({
              verification: parsed.tracker.check({
                verification,
                chainKeys,
                serverKeys,
                ownChain: own,
                ...(!own && pinnedX !== undefined && { pinnedX }),
                witnesses,
              }),
              keyFrom: own ? (given?.from ?? 'the server') : 'the key pinned at its first shipment',
            });
          }
        });
      }
      if (opts.json) printJson(results.map((r) => ({ ...r.verification, keyFrom: r.keyFrom })));
      else for (const r of results) process.stdout.write(describe(r));
      if (results.some((r) => !r.verification.ok)) throw new CliError('', EXIT_REJECTED);
    }),
  );

  withAdminOptions(
    audit
      .command('trace')
      .description(
        'reconstruct principal -> sessions -> delegations -> hop decisions, with times and decisions',
      )
      .option('--session <id>', 'a session id (the whole tree of its root session is shown)')
      .option('--root-session <id>', 'a root session id')
      .option('--serial <hex>', 'a certificate serial (hex; colons allowed)')
      .option('--principal <id>', 'an originating principal, e.g. alice')
      .option(
        '--file <file>',
        'trace offline from exported or shipped chains (JSON lines; repeat for several) instead of the server',
        (v: string, prev: string[] = []) => [...prev, v],
      )
      .option(
        '--server-chain <spiffe-id>',
        "with --file: the server's chain, whose records alone define sessions (default: any .../lanyard/server)",
      ),
  ).action(
    runAction(async (opts: TraceOptions) => {
      const given: [AuditQueryKey, string | undefined][] = [
        ['sessionId', opts.session],
        ['rootSessionId', opts.rootSession],
        ['serial', opts.serial],
        ['principal', opts.principal],
      ];
      const set = given.filter((g): g is [AuditQueryKey, string] => g[1] !== undefined && g[1] !== '');
      if (set.length !== 1)
        throw usageError('give exactly one of --session, --root-session, --serial or --principal');
      const [key, value] = set[0]!;
      let serverChain = opts.serverChain;
      const records =
        opts.file !== undefined
          ? traceFromFiles(opts.file, key, value)
          : await withAuditClient(opts, async (c) => {
              serverChain = (await c.head()).chain;
              const first = recordsOf(await c.query(key, value));
              const all = [...first];
              // The whole tree of every root session the matches belong to: delegations and hops included.
              const roots = new Set(
                first.map((r) => r.rootSessionId).filter((r): r is string => r !== undefined),
              );
              for (const root of roots) all.push(...recordsOf(await c.query('rootSessionId', root)));
              return all;
            });
      const trace = buildTrace(records, serverChain !== undefined ? { serverChain } : {});
      if (opts.json) printJson(trace);
      else process.stdout.write(renderTraceText(trace));
    }),
  );

  withAdminOptions(
    audit
      .command('export')
      .description(
        "the server's audit chain as JSON lines (verify it anywhere with `lanyard audit verify --file`)",
      )
      .option('--out <file>', 'write here (created 0600) instead of stdout')
      .option('--chain <name>', "a shipped chain's name instead of the server's own"),
  ).action(
    runAction(async (opts: AdminConnectionOptions & { out?: string; chain?: string }) => {
      // Each batch is written as it arrives (and the next one read only once it is written), so a chain of any
      // length passes through in bounded memory.
      if (opts.out === undefined) {
        await withAuditClient(opts, async (c) => {
          for await (const batch of c.exportLines(opts.chain ?? '')) {
            await writeAll(process.stdout, batch.map((l) => `${l}\n`).join(''));
          }
        });
        return;
      }
      const file = opts.out;
      let fd: number;
      try {
        fd = fs.openSync(file, 'wx', 0o600);
      } catch (e) {
        throw usageError(
          `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'} (it must not exist yet)`,
        );
      }
      const out = fs.createWriteStream('', { fd });
      let lines = 0;
      try {
        await withAuditClient(opts, async (c) => {
          for await (const batch of c.exportLines(opts.chain ?? '')) {
            await writeAll(out, batch.map((l) => `${l}\n`).join(''));
            lines += batch.length;
          }
        });
        await new Promise<void>((resolve, reject) =>
          out.end((e?: Error | null) => (e ? reject(e) : resolve())),
        );
      } catch (e) {
        // A cut export must not pass for a whole chain: the partial file goes.
        out.destroy();
        fs.rmSync(file, { force: true });
        throw e;
      }
      process.stderr.write(`wrote ${lines} lines to ${file}\n`);
    }),
  );

  withAdminOptions(
    audit
      .command('ship')
      .description(
        "send a service's local audit chain (FileAuditLog) to the server, which verifies and stores it",
      )
      .requiredOption('--file <file>', 'the chain file')
      .option(
        '--key-file <file>',
        "the chain's audit key, to sign a checkpoint over its last record first (default <file>.key)",
      ),
  ).action(
    runAction(async (opts: AdminConnectionOptions & { file: string; keyFile?: string }) => {
      // The server takes only shipments whose last record a checkpoint signed by the chain's key covers.
      await FileAuditLog.checkpointFile(opts.file, opts.keyFile);
      const text = readInputFile(opts.file, 'audit chain');
      const res = await withAuditClient(opts, (c) => c.ingest(text));
      if (opts.json) printJson(res);
      else process.stdout.write(`chain ${res.chain}: ${res.added} new records stored, head ${res.headSeq}\n`);
    }),
  );
}
