/** `lanyard server run`: the server in the foreground until SIGTERM or SIGINT. */
import * as path from 'node:path';
import type { Command } from 'commander';
import { isLanyardError } from '../../errors';
import {
  formatHostPort,
  LOG_LEVELS,
  type LogLevel,
  loadConfig,
  type ServerConfig,
} from '../../server/config';
import { routeGrpcLogs } from '../../server/grpc-log';
import { createLogger } from '../../internal/logging';
import { closeOnSignals, startServer } from '../../server/run';
import { CliError, usageError } from '../cli-error';
import { EXIT_REJECTED } from '../exit-codes';
import { runAction } from '../run-action';
import { registerServerHealthcheckCommand } from './healthcheck';

export function registerServerCommands(program: Command): void {
  const server = program.command('server').description('the Lanyard server');
  server
    .command('run')
    .description('run the server in the foreground; works with no config at all (defaults in ./.lanyard)')
    .option('--config <file>', 'YAML or JSON config file')
    .option('--data-dir <dir>', 'data dir (default: the config file, $LANYARD_DATA_DIR, or ./.lanyard)')
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`)
    .option(
      '--agent-context-oid <oid>',
      'OID of the agent-context extension in every SVID (wins over agent_context.oid and $LANYARD_AGENT_CONTEXT_OID)',
    )
    .action(
      runAction(
        async (opts: { config?: string; dataDir?: string; logLevel?: string; agentContextOid?: string }) => {
          if (opts.logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(opts.logLevel)) {
            throw usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
          }
          let config: ServerConfig;
          try {
            config = loadConfig({
              ...(opts.config !== undefined && { configFile: opts.config }),
              ...(opts.dataDir !== undefined && { dataDir: opts.dataDir }),
              ...(opts.logLevel !== undefined && { logLevel: opts.logLevel as LogLevel }),
              ...(opts.agentContextOid !== undefined && { agentContextOid: opts.agentContextOid }),
            });
          } catch (e) {
            throw usageError(e instanceof Error ? e.message : String(e));
          }
          const logger = createLogger({ level: config.logLevel });
          routeGrpcLogs(logger);
          let running;
          try {
            running = await startServer(config, { logger });
          } catch (e) {
            throw new CliError(
              `server did not start: ${isLanyardError(e) ? `${e.code}: ` : ''}${errorText(e)}`,
              EXIT_REJECTED,
            );
          }
          // The handlers go in before the banner: a supervisor that reads the banner as "ready" may signal at
          // once, and a SIGTERM before them would kill the process without draining (exit by signal, not 0).
          const closed = closeOnSignals(running);
          process.stderr.write(banner(config, running.publicAddress, running.metricsAddress));
          process.exitCode = await closed;
        },
      ),
    );
  registerServerHealthcheckCommand(server);
}

/** What a person needs right after start: where it listens and how to get a first workload its SVID. */
function banner(config: ServerConfig, publicAddress: string, metricsAddress?: string): string {
  const defaultSocket = path.join(config.dataDir, 'admin.sock');
  const target =
    config.adminSocketPath === defaultSocket
      ? `--data-dir ${shellWord(path.resolve(config.dataDir))}`
      : `--socket ${shellWord(path.resolve(config.adminSocketPath))}`;
  const id = `spiffe://${config.trustDomain}/agents/demo`;
  const listening = publicAddress || formatHostPort(config.listenAddress);
  // This file is src/cli/commands/server.ts or dist/cli/commands/server.js: bin/ is three levels up.
  // Nothing puts `lanyard` on PATH after `npm ci` (and `npx lanyard` would ask the registry), so the steps
  // name the script itself: each line then runs as pasted, from any directory.
  const lanyard = `node ${shellWord(path.resolve(__dirname, '..', '..', '..', 'bin', 'lanyard.js'))}`;
  // With an upstream CA the bundle is the organisation's root, which names no trust domain: say it.
  const trustDomainFlag = config.caUpstream !== undefined ? ` --trust-domain ${config.trustDomain}` : '';
  return [
    `Lanyard server running, trust domain ${config.trustDomain}`,
    `  admin socket (registration, CA): ${config.adminSocketPath}`,
    `  data dir:                        ${config.dataDir}`,
    `  attestation/bundle (TLS):        ${listening}`,
    `  server identity:                 spiffe://${config.trustDomain}/lanyard/server`,
    ...(metricsAddress !== undefined
      ? [`  metrics (Prometheus):            http://${metricsAddress}/metrics`]
      : []),
    '',
    'Register a first workload and get it an SVID (paste these lines into a shell, in any directory):',
    `  ${lanyard} entry create ${target} --spiffe-id ${id} --selector unix:uid:${process.getuid?.() ?? 1000}`,
    `  (umask 077; ${lanyard} token create ${target} --spiffe-id ${id} > token)   # single use, 10 minutes`,
    `  ${lanyard} bundle show ${target} > bundle.pem`,
    `  ${lanyard} svid fetch --server ${connectAddress(config, listening)} --bundle bundle.pem${trustDomainFlag} --join-token-file token --out svid/`,
    `  ${lanyard} svid inspect svid/svid.pem`,
    '',
    `The CA: ${lanyard} ca show ${target}; rotate it by hand with \`ca rotate\` (docs/operator/ca.md).`,
    'Stop with Ctrl-C or SIGTERM (in-flight calls are drained first).',
    '',
  ].join('\n');
}

/** Where a client on this host connects: a wildcard listen address is not a destination. */
function connectAddress(config: ServerConfig, listening: string): string {
  const { host } = config.listenAddress;
  if (host !== '0.0.0.0' && host !== '::') return listening;
  return listening.replace(host === '::' ? '[::]' : '0.0.0.0', host === '::' ? '[::1]' : '127.0.0.1');
}

/** A path as one sh word: bare when it holds only safe characters, else single-quoted. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
