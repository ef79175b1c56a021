/**
 * `lanyard audit ...`: what an investigator runs.
 *   verify  checks every link and checkpoint of a chain (a file, or every chain on the server); exit 1 on
 *           any break, naming its kind and sequence number
 *   trace   principal -> sessions -> delegations -> hop decisions, from the server's records, as text or JSON
 *   export  the server's chain (or a shipped one) as JSON lines
 *   ship    sends a service's local file chain to the server, which verifies and stores it
 */
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { AuditPublicKey } from '../../audit/audit-key';
import { FileAuditLog } from '../../audit/file-log';
import { parseChainText, type ParsedChain } from '../../audit/jsonl';
import type { AuditQueryKey } from '../../audit/log';
import { parseRecord, type AuditRecord } from '../../audit/record';
import { buildTrace, renderTraceText } from '../../audit/trace';
import { verifyChain, type ChainVerification } from '../../audit/verify-chain';
import { isLanyardError } from '../../errors';
import { AdminCallError } from '../../server/admin-client';
import { AuditAdminClient } from '../../server/audit/client';
import { CliError, usageError } from '../cli-error';
import { EXIT_REJECTED, EXIT_USAGE } from '../exit-codes';
import { readInputFile } from '../input';
import { runAction } from '../run-action';
import { type AdminConnectionOptions, printJson, resolveSocketPath, withAdminOptions } from './server-admin';

interface VerifyOptions extends AdminConnectionOptions {
  file?: string;
  server?: boolean;
  key?: string;
  bundle?: string;
}

interface TraceOptions extends AdminConnectionOptions {
  file?: string[];
  session?: string;
  serial?: string;
  principal?: string;
  rootSession?: string;
}

async function withAuditClient<T>(
  opts: AdminConnectionOptions,
  fn: (c: AuditAdminClient) => Promise<T>,
): Promise<T> {
  const socketPath = resolveSocketPath(opts);
  const client = new AuditAdminClient(socketPath);
  try {
    return await fn(client);
  } catch (e) {
    if (e instanceof AdminCallError) {
      if (e.code === grpc.status.UNAVAILABLE && e.lanyardCode === undefined) {
        throw new CliError(`cannot reach the Lanyard server at ${socketPath}: ${e.details}`, EXIT_REJECTED);
      }
      throw new CliError(
        `${e.lanyardCode ? `${e.lanyardCode}: ` : ''}${e.details}`,
        e.code === grpc.status.INVALID_ARGUMENT ? EXIT_USAGE : EXIT_REJECTED,
      );
    }
    throw e;
  } finally {
    client.close();
  }
}

/** The key to check checkpoints with: --key (PEM), --bundle (SPIFFE bundle JSON), else `fallback`. */
function trustedKey(
  opts: VerifyOptions,
  fallback: () => AuditPublicKey | undefined,
): { key?: AuditPublicKey; from: string } {
  try {
    if (opts.key !== undefined)
      return { key: AuditPublicKey.fromPem(readInputFile(opts.key, 'key file')), from: opts.key };
    if (opts.bundle !== undefined) {
      const key = AuditPublicKey.fromSpiffeBundle(
        JSON.parse(readInputFile(opts.bundle, 'bundle')) as unknown,
      );
      if (key === undefined)
        throw usageError(`${opts.bundle} holds no audit key (a JWK with use "lanyard-audit")`);
      return { key, from: opts.bundle };
    }
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw usageError(`cannot read the audit key: ${(e as Error).message}`);
  }
  const key = fallback();
  return key !== undefined ? { key, from: 'the chain header' } : { from: 'none' };
}

function headerKey(parsed: ParsedChain): AuditPublicKey | undefined {
  return parsed.publicJwk === undefined ? undefined : AuditPublicKey.fromJwk(parsed.publicJwk);
}

function describe(v: ChainVerification, keyFrom: string): string {
  if (v.ok) {
    return `chain ${v.chain}: OK, ${v.records} records, ${v.checkpoints} checkpoints; signed through ${v.checkpointedSeq} (key from ${keyFrom})\n`;
  }
  const b = v.break!;
  return `chain ${v.chain}: BROKEN at ${b.seq}: ${b.kind}: ${b.message}\n`;
}

function parseLines(lines: string[], what: string): ParsedChain {
  try {
    return parseChainText(lines.join('\n') + '\n');
  } catch (e) {
    if (isLanyardError(e)) throw new CliError(`${what}: ${e.code}: ${e.message}`, EXIT_REJECTED);
    throw e;
  }
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
        'a SPIFFE bundle (lanyard bundle show --format jwks) carrying the audit key',
      ),
  ).action(
    runAction(async (opts: VerifyOptions) => {
      if ((opts.file === undefined) === (opts.server !== true))
        throw usageError('give exactly one of --file or --server');
      const results: { verification: ChainVerification; keyFrom: string }[] = [];
      if (opts.file !== undefined) {
        const parsed = parseLines(
          readInputFile(opts.file, 'audit chain')
            .split('\n')
            .filter((l) => l !== ''),
          opts.file,
        );
        const { key, from } = trustedKey(opts, () => headerKey(parsed));
        results.push({
          verification: verifyChain(parsed.chain, parsed.records, parsed.checkpoints, key),
          keyFrom: from,
        });
      } else {
        await withAuditClient(opts, async (c) => {
          const head = await c.head();
          const serverKey = AuditPublicKey.fromJwk(JSON.parse(head.publicKeyJwk) as unknown);
          const chains = [head.chain, ...head.chains.map((s) => s.chain).filter((n) => n !== head.chain)];
          for (const chain of chains) {
            const parsed = parseLines(await c.export(chain), `chain ${chain}`);
            const own = chain === head.chain;
            const { key, from } = own
              ? trustedKey(opts, () => serverKey)
              : { key: headerKey(parsed), from: 'the key pinned at its first shipment' };
            const fromText = own && from === 'the chain header' ? 'the server' : from;
            results.push({
              verification: verifyChain(chain, parsed.records, parsed.checkpoints, key),
              keyFrom: fromText,
            });
          }
        });
      }
      if (opts.json) printJson(results.map((r) => ({ ...r.verification, keyFrom: r.keyFrom })));
      else for (const r of results) process.stdout.write(describe(r.verification, r.keyFrom));
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
      const records =
        opts.file !== undefined
          ? traceFromFiles(opts.file, key, value)
          : await withAuditClient(opts, async (c) => {
              const first = recordsOf(await c.query(key, value));
              const all = [...first];
              // The whole tree of every root session the matches belong to: delegations and hops included.
              const roots = new Set(
                first.map((r) => r.rootSessionId).filter((r): r is string => r !== undefined),
              );
              for (const root of roots) all.push(...recordsOf(await c.query('rootSessionId', root)));
              return all;
            });
      const trace = buildTrace(records);
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
      const lines = await withAuditClient(opts, (c) => c.export(opts.chain ?? ''));
      const text = lines.map((l) => `${l}\n`).join('');
      if (opts.out === undefined) {
        process.stdout.write(text);
        return;
      }
      try {
        fs.writeFileSync(opts.out, text, { mode: 0o600, flag: 'wx' });
      } catch (e) {
        throw usageError(
          `cannot write ${opts.out}: ${(e as NodeJS.ErrnoException).code ?? 'error'} (it must not exist yet)`,
        );
      }
      process.stderr.write(`wrote ${lines.length} lines to ${opts.out}\n`);
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
