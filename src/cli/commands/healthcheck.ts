/**
 * `lanyard server healthcheck` and `lanyard agent healthcheck`, as SPIRE's: exit 0 when the process answers
 * grpc.health.v1 with SERVING, 1 with the reason otherwise (not running, NOT_SERVING, no answer). Both talk
 * to a local Unix socket (the server's admin socket, the agent's Workload API socket), so a container probe
 * needs no TLS material or verification settings.
 */
import type { Command } from 'commander';
import { CliError } from '../cli-error';
import { EXIT_REJECTED } from '../exit-codes';
import { checkHealth, type HealthStatus } from '../health-check';
import { parseDuration } from '../input';
import { runAction } from '../run-action';
import { WORKLOAD_SOCKET_HELP, workloadSocketFlag } from '../workload-socket';
import { resolveSocketPath, withAdminOptions, type AdminConnectionOptions } from './server-admin';

interface HealthOpts {
  timeout: string;
  json?: boolean;
}

export function registerServerHealthcheckCommand(server: Command): void {
  withAdminOptions(
    server
      .command('healthcheck')
      .description(
        "exit 0 when the server is SERVING (its CA can issue, its store has not failed closed), 1 otherwise; asks the admin socket's grpc.health.v1",
      ),
  )
    .option('--timeout <duration>', 'how long to wait for an answer', '5s')
    .action(
      runAction(async (opts: AdminConnectionOptions & HealthOpts) => {
        const socketPath = resolveSocketPath(opts);
        report('server', socketPath, await probe(socketPath, 'the Lanyard server', opts), opts);
      }),
    );
}

export function registerAgentHealthcheckCommand(agent: Command): void {
  agent
    .command('healthcheck')
    .description(
      'exit 0 when the agent is SERVING (it has reached its server and can answer the Workload API), 1 otherwise',
    )
    .option('--socket <path>', WORKLOAD_SOCKET_HELP)
    .option('--timeout <duration>', 'how long to wait for an answer', '5s')
    .option('--json', 'print JSON')
    .action(
      runAction(async (opts: { socket?: string } & HealthOpts) => {
        const socketPath = workloadSocketFlag(opts.socket);
        report('agent', socketPath, await probe(socketPath, 'the Lanyard agent', opts), opts);
      }),
    );
}

function probe(socketPath: string, what: string, opts: HealthOpts): Promise<HealthStatus> {
  return checkHealth(socketPath, { what, timeoutMs: parseDuration(opts.timeout, '--timeout') * 1000 });
}

function report(kind: string, socketPath: string, status: HealthStatus, opts: HealthOpts): void {
  if (opts.json === true) {
    process.stdout.write(
      `${JSON.stringify({ [kind]: socketPath, status, healthy: status === 'SERVING' })}\n`,
    );
  } else if (status === 'SERVING') {
    process.stdout.write(`${kind} is healthy (SERVING at ${socketPath})\n`);
  }
  if (status !== 'SERVING') {
    // With --json the status is already on stdout; the exit code still tells a probe.
    throw new CliError(
      opts.json === true ? '' : `${kind} is not healthy: ${status} (${socketPath})`,
      EXIT_REJECTED,
    );
  }
}
