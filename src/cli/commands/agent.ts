/**
 * `lanyard agent run`: the node agent in the foreground (SPIFFE Workload API on a Unix socket).
 * The client side (`agent fetch ...`, `agent healthcheck`) lives in agent-fetch.ts and healthcheck.ts.
 */
import { createPrivateKey } from 'node:crypto';
import * as path from 'node:path';
import type { Command } from 'commander';
import { startAgent } from '../../agent/agent';
import { workloadEndpointUri } from '../../client/workload-endpoint';
import type { NodeAttestation } from '../../agent/node-identity';
import { answerX509PopChallenge } from '../../attest/x509pop-challenge';
import { LOG_LEVELS, type LogLevel, parseHostPort } from '../../server/config';
import { loopbackProblem, METRICS_DEFAULT_ADDRESSES } from '../../internal/metrics-endpoint';
import { routeGrpcLogs } from '../../server/grpc-log';
import { createLogger } from '../../internal/logging';
import { SpiffeId } from '../../spiffe';
import { readBundleFile } from '../bundle-file';
import { usageError } from '../cli-error';
import {
  AGENT_CONTEXT_OID_OPTION,
  agentContextOidFlag,
  parseDuration,
  parseTrustDomainFlag,
  readInputFile,
  SERVER_OPTION,
  serverAddressesFlag,
} from '../input';
import { runAction } from '../run-action';
import { registerAgentFetchCommands } from './agent-fetch';
import { registerAgentHealthcheckCommand } from './healthcheck';

const ATTESTORS = ['join_token', 'k8s_psat', 'x509pop'] as const;

interface RunOpts {
  server?: string[];
  bundle: string;
  trustDomain?: string;
  socket: string;
  attestor: string;
  joinToken?: string;
  joinTokenFile?: string;
  psatTokenFile?: string;
  x509popCert?: string;
  x509popKey?: string;
  spiffeId?: string;
  dataDir?: string;
  syncInterval: string;
  logLevel: string;
  agentContextOid?: string;
  allowInheritableConnections: boolean;
  metrics: boolean;
  metricsAddress?: string;
  metricsAllowNonLoopback: boolean;
}

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('the node agent and its SPIFFE Workload API');

  agent
    .command('run')
    .description('attest this node to the server and serve the SPIFFE Workload API on a Unix socket')
    .option(...SERVER_OPTION)
    .requiredOption(
      '--bundle <file>',
      'trust bundle to bootstrap with (lanyard bundle show): PEM certificates or a SPIFFE bundle (JWKS)',
    )
    .requiredOption('--socket <path>', 'Workload API socket to create')
    .option(
      '--trust-domain <td>',
      "the server's trust domain (default: the one the bundle's CAs name; needed when they name none, as an organisation root does)",
    )
    .option('--attestor <type>', `node attestor: ${ATTESTORS.join(', ')}`, 'join_token')
    .option('--join-token <token>', 'join_token: the token (prefer --join-token-file: argv is visible)')
    .option('--join-token-file <file>', 'join_token: file holding the token')
    .option('--psat-token-file <file>', 'k8s_psat: projected service-account token file')
    .option('--x509pop-cert <file>', 'x509pop: provisioning certificate chain (PEM)')
    .option('--x509pop-key <file>', 'x509pop: its private key (PEM)')
    .option('--spiffe-id <id>', "the agent's SPIFFE ID when its selectors match several entries")
    .option('--data-dir <dir>', "keeps the agent's own SVID across restarts (key 0600)")
    .option('--sync-interval <duration>', 'how often to sync with the server', '5s')
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, 'info')
    .option(...AGENT_CONTEXT_OID_OPTION)
    .option(
      '--allow-inheritable-connections',
      'serve clients whose socket is not close-on-exec (netty/java-spiffe); see docs/operator/agent.md, exec after connect',
      false,
    )
    .option(
      '--metrics',
      `serve Prometheus metrics at http://${METRICS_DEFAULT_ADDRESSES.agent}/metrics (docs/operator/metrics.md)`,
      false,
    )
    .option('--metrics-address <host:port>', 'serve Prometheus metrics here instead (turns them on)')
    .option(
      '--metrics-allow-non-loopback',
      'allow a --metrics-address other than loopback (the listener has no TLS and no authentication)',
      false,
    )
    .action(
      runAction(async (opts: RunOpts) => {
        const agentContextOid = agentContextOidFlag(opts.agentContextOid);
        if (!(LOG_LEVELS as readonly string[]).includes(opts.logLevel)) {
          throw usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
        }
        const metrics = metricsOption(opts);
        const servers = serverAddressesFlag(opts.server);
        const attestation = nodeAttestation(opts);
        const trustDomain =
          opts.trustDomain !== undefined
            ? parseTrustDomainFlag(opts.trustDomain, '--trust-domain')
            : undefined;
        const bundle = readBundleFile(readInputFile(opts.bundle, 'bundle'), trustDomain);
        const logger = createLogger({ level: opts.logLevel as LogLevel });
        routeGrpcLogs(logger);
        const running = await startAgent({
          server: servers.configured,
          bundle,
          socketPath: path.resolve(opts.socket),
          attestation,
          ...(opts.dataDir !== undefined && { dataDir: path.resolve(opts.dataDir) }),
          syncIntervalMs: parseDuration(opts.syncInterval, '--sync-interval') * 1000,
          allowInheritableConnections: opts.allowInheritableConnections,
          logger,
          agentContextOid,
          ...(metrics !== undefined && { metrics }),
        });
        // The handlers go in before the banner, as the server's: a supervisor that reads the banner as "ready"
        // may signal at once (the pipe write wakes it, and it may run before this process does again).
        const stopped = new Promise<void>((resolve) => {
          const stop = (): void => {
            process.off('SIGTERM', stop);
            process.off('SIGINT', stop);
            void running.close().then(resolve);
          };
          process.on('SIGTERM', stop);
          process.on('SIGINT', stop);
        });
        process.stderr.write(
          `Lanyard agent running: Workload API on ${running.socketPath}\n` +
            (running.metricsAddress !== undefined
              ? `  metrics: http://${running.metricsAddress}/metrics\n`
              : '') +
            `  node identity: ${running.identity.current()?.id.toString() ?? '(not attested yet: retrying)'}\n` +
            `  fetch: SPIFFE_ENDPOINT_SOCKET=${workloadEndpointUri(running.socketPath)} lanyard agent fetch x509\n`,
        );
        await stopped;
      }),
    );

  registerAgentFetchCommands(agent);
  registerAgentHealthcheckCommand(agent);
}

/** --metrics / --metrics-address, checked before anything starts: loopback unless allowed. */
function metricsOption(
  opts: RunOpts,
): { listen: { host: string; port: number }; allowNonLoopback: boolean } | undefined {
  if (!opts.metrics && opts.metricsAddress === undefined) return undefined;
  const listen = parseHostPort(opts.metricsAddress ?? METRICS_DEFAULT_ADDRESSES.agent);
  if (listen === undefined) throw usageError('--metrics-address: expected host:port, e.g. 127.0.0.1:9465');
  const problem = loopbackProblem(listen.host, opts.metricsAllowNonLoopback);
  if (problem !== undefined) throw usageError(`--metrics-address: ${problem} (--metrics-allow-non-loopback)`);
  return { listen, allowNonLoopback: opts.metricsAllowNonLoopback };
}

function nodeAttestation(opts: RunOpts): NodeAttestation {
  const spiffe = opts.spiffeId !== undefined ? { spiffeId: SpiffeId.parse(opts.spiffeId).toString() } : {};
  switch (opts.attestor) {
    case 'join_token': {
      const token =
        opts.joinToken ??
        (opts.joinTokenFile !== undefined
          ? readInputFile(opts.joinTokenFile, 'join token file').trim()
          : undefined);
      if (token === undefined || token === '')
        throw usageError('join_token needs --join-token-file or --join-token');
      return { attestorType: 'join_token', evidence: Buffer.from(token, 'utf8'), ...spiffe };
    }
    case 'k8s_psat': {
      if (opts.psatTokenFile === undefined) throw usageError('k8s_psat needs --psat-token-file');
      const token = readInputFile(opts.psatTokenFile, 'PSAT file').trim();
      return { attestorType: 'k8s_psat', evidence: Buffer.from(token, 'utf8'), ...spiffe };
    }
    case 'x509pop': {
      if (opts.x509popCert === undefined || opts.x509popKey === undefined) {
        throw usageError('x509pop needs --x509pop-cert and --x509pop-key');
      }
      const chain = readInputFile(opts.x509popCert, 'x509pop certificate file');
      const key = createPrivateKey(readInputFile(opts.x509popKey, 'x509pop key file'));
      return {
        attestorType: 'x509pop',
        evidence: Buffer.from(chain, 'utf8'),
        answerChallenge: (c) => answerX509PopChallenge(c, key),
        ...spiffe,
      };
    }
    default:
      throw usageError(`--attestor must be one of ${ATTESTORS.join(', ')}`);
  }
}
