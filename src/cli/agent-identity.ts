/**
 * What the agent-side session and grant commands share: the identity they call the server with (a directory
 * as `svid fetch` / `session start` / `grant redeem` write it: svid.pem, svid_key.pem, bundle.pem), writing a
 * session SVID the same way, and the server's refusals as exit codes.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { BUNDLE_FILE, SVID_FILE, SVID_KEY_FILE, writeSvidFiles, type SvidFiles } from '../ca/dev-ca';
import { StaticX509Source } from '../client/static-x509-source';
import type { X509Source } from '../client/x509-source';
import { isLanyardError } from '../errors';
import { grpcStatusOf, GrpcStatus } from '../internal/grpc-status-map';
import { CliError, usageError } from './cli-error';
import { EXIT_REJECTED, EXIT_USAGE } from './exit-codes';
import { AGENT_CONTEXT_OID_OPTION, agentContextOidFlag } from './input';
import { printResult } from './output';

export const IDENTITY_HELP =
  'directory holding svid.pem, svid_key.pem and bundle.pem (as `svid fetch --out`, `session start --out` and `grant redeem --out` write them)';

/** Loads an identity directory; a missing directory or file is a usage error (exit 2). */
export function loadIdentityDir(dir: string, flag = '--identity'): StaticX509Source {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw usageError(`${flag} ${dir}: no such directory`);
  for (const f of [SVID_FILE, SVID_KEY_FILE, BUNDLE_FILE]) {
    if (!existsSync(join(dir, f))) throw usageError(`${flag} ${dir}: no ${f} there`);
  }
  return StaticX509Source.fromFiles({
    certFile: join(dir, SVID_FILE),
    keyFile: join(dir, SVID_KEY_FILE),
    bundleFile: join(dir, BUNDLE_FILE),
  });
}

/** Writes the source's current SVID (chain, key 0600) and its trust domain's bundle to `dir`. */
export function writeIdentityDir(dir: string, source: X509Source): SvidFiles {
  const svid = source.getX509Svid();
  const bundle = source.getX509BundleForTrustDomain(svid.id.trustDomain);
  if (bundle === undefined) throw new CliError(`no bundle for ${svid.id.trustDomain.name} to write`);
  return writeSvidFiles(dir, svid, bundle);
}

/**
 * The flags of a command that calls the server's TLS listener as the SVID in --identity (`whose`, e.g. "the
 * child's workload SVID"): --server and --identity first, then the command's own (`own`), then
 * --agent-context-oid and --json.
 */
export function serverCallCommand(cmd: Command, whose: string, own: (c: Command) => Command): Command {
  return own(
    cmd
      .requiredOption('--server <host:port>', "the server's TLS listener, e.g. 127.0.0.1:8081")
      .requiredOption('--identity <dir>', `${whose}: ${IDENTITY_HELP}`),
  )
    .option(...AGENT_CONTEXT_OID_OPTION)
    .option('--json', 'print JSON instead of text');
}

/** The flags serverCallCommand adds, as commander hands them to the action. */
export interface ServerCallFlags {
  server: string;
  identity: string;
  agentContextOid?: string;
  json?: boolean;
}

/** Who calls the server, and where: what the client's handoff calls take. */
export interface ServerCaller {
  server: string;
  source: StaticX509Source;
  agentContextOid: string;
}

/** Reads --agent-context-oid, loads --identity, and runs `fn` as that caller (callServer's exit codes). */
export function callServerAs<T>(opts: ServerCallFlags, fn: (caller: ServerCaller) => Promise<T>): Promise<T> {
  const agentContextOid = agentContextOidFlag(opts.agentContextOid);
  const source = loadIdentityDir(opts.identity);
  return callServer(opts.server, () => fn({ server: opts.server, source, agentContextOid }));
}

/** What a command says about an identity it obtained: `json` under --json, else `text()`. */
export interface IdentityReport {
  json: unknown;
  text: () => string;
}

/**
 * Writes the SVID, key and bundle `source` obtained (a session or a delegated SVID) to `out`, prints what
 * `report` makes of them, and closes the source (its renewals stop: the files are what the command leaves).
 */
export async function saveObtainedIdentity<S extends X509Source & { close(): Promise<void> }>(
  source: S,
  out: string,
  opts: { json?: boolean },
  report: (files: SvidFiles) => IdentityReport,
): Promise<void> {
  try {
    const r = report(writeIdentityDir(out, source));
    printResult(opts, r.json, r.text);
  } finally {
    await source.close();
  }
}

/**
 * Runs a call to the server's public listener: a refusal with INVALID_ARGUMENT is exit 2 (the command was not
 * runnable as asked), every other refusal exit 1, each with its stable code; an unreachable server says so.
 */
export async function callServer<T>(server: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isLanyardError(e)) {
      throw new CliError(
        `${e.code}: ${e.message}`,
        grpcStatusOf(e) === GrpcStatus.INVALID_ARGUMENT ? EXIT_USAGE : EXIT_REJECTED,
      );
    }
    const details = (e as { details?: unknown }).details;
    if (typeof details === 'string') {
      throw new CliError(`the server at ${server} failed the call: ${details}`, EXIT_REJECTED);
    }
    throw e;
  }
}
