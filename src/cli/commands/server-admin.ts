/**
 * How CLI commands reach a running server: the admin Unix socket, found from --socket, or from
 * --config / --data-dir / $LANYARD_DATA_DIR the same way `lanyard server run` finds it.
 */
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { AdminCallError, AdminClient } from '../../server/admin-client';
import { loadConfig } from '../../server/config';
import { CliError, usageError } from '../cli-error';
import { EXIT_REJECTED, EXIT_USAGE } from '../exit-codes';
import { parsePositiveInt } from '../input';
import { printResult } from '../output';
import { runAction } from '../run-action';

export interface AdminConnectionOptions {
  socket?: string;
  dataDir?: string;
  config?: string;
  json?: boolean;
}

/** Adds --socket, --data-dir, --config and --json to a command that talks to the server. */
export function withAdminOptions(cmd: Command): Command {
  return cmd
    .option('--socket <path>', 'admin socket of the server (default: <data dir>/admin.sock)')
    .option('--data-dir <dir>', 'data dir of the server (default: $LANYARD_DATA_DIR or ./.lanyard)')
    .option('--config <file>', 'the server config file, to find its admin socket')
    .option('--json', 'print JSON instead of text');
}

export function resolveSocketPath(opts: AdminConnectionOptions): string {
  if (opts.socket) return opts.socket;
  try {
    const config: { configFile?: string; dataDir?: string } = {};
    if (opts.config) config.configFile = opts.config;
    if (opts.dataDir) config.dataDir = opts.dataDir;
    return loadConfig(config).adminSocketPath;
  } catch (e) {
    throw usageError(e instanceof Error ? e.message : String(e));
  }
}

/** A client of one of the services on the admin socket (admin, audit). */
export interface AdminSocketClient {
  close(): void;
}

/**
 * Runs `fn` with a client that `connect` opens on the server's admin socket, closes it afterwards, and turns
 * call failures into CLI errors (toCliError): the one place every command that talks to the server goes through.
 */
export async function withServerClient<C extends AdminSocketClient, T>(
  opts: AdminConnectionOptions,
  connect: (socketPath: string) => C,
  fn: (client: C) => Promise<T>,
): Promise<T> {
  const socketPath = resolveSocketPath(opts);
  const client = connect(socketPath);
  try {
    return await fn(client);
  } catch (e) {
    if (e instanceof AdminCallError) throw toCliError(e, socketPath);
    throw e;
  } finally {
    client.close();
  }
}

/** withServerClient with the admin service's client. */
export function withAdminClient<T>(
  opts: AdminConnectionOptions,
  fn: (client: AdminClient) => Promise<T>,
): Promise<T> {
  return withServerClient(opts, (socketPath) => new AdminClient(socketPath), fn);
}

/**
 * UNAVAILABLE without a Lanyard error code is the transport: nothing answers on the socket. A refusal the
 * server answered (also one mapped to UNAVAILABLE, such as an unhealthy audit log) keeps the server's words and
 * the stable error code. INVALID_ARGUMENT means the command was not runnable as asked (exit 2, like a bad
 * flag); every other refusal or failure is exit 1.
 */
function toCliError(e: AdminCallError, socketPath: string): CliError {
  if (e.code === grpc.status.UNAVAILABLE && e.lanyardCode === undefined) {
    return new CliError(
      `cannot reach the Lanyard server at ${socketPath} (is \`lanyard server run\` running with this data dir?): ${e.details}`,
      EXIT_REJECTED,
    );
  }
  const code = e.lanyardCode ? `${e.lanyardCode}: ` : '';
  return new CliError(
    `${code}${e.details} (${grpc.status[e.code] ?? e.code})`,
    e.code === grpc.status.INVALID_ARGUMENT ? EXIT_USAGE : EXIT_REJECTED,
  );
}

/** What `<group> delete <key>` deletes, and how. */
export interface DeleteCommandSpec {
  description: string;
  argument: readonly [name: string, description: string];
  /** What the confirmation calls it, e.g. "entry". */
  noun: string;
  remove: (client: AdminClient, key: string, revision: number) => Promise<unknown>;
}

/** `<group> delete <key> [--revision n]`: one object removed over the admin socket (revision 0: any). */
export function registerDeleteCommand(group: Command, spec: DeleteCommandSpec): void {
  withAdminOptions(
    group
      .command('delete')
      .description(spec.description)
      .argument(...spec.argument)
      .option('--revision <n>', 'only delete at this revision'),
  ).action(
    runAction(async (key: string, opts: AdminConnectionOptions & { revision?: string }) => {
      const revision = opts.revision !== undefined ? parsePositiveInt(opts.revision, '--revision') : 0;
      await withAdminClient(opts, (c) => spec.remove(c, key, revision));
      printResult(opts, { deleted: key }, () => `deleted ${spec.noun} ${key}\n`);
    }),
  );
}

// Output helpers live in ../output; audit.ts still reads printJson from here.
export { printJson } from '../output';
