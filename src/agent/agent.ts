/**
 * The node agent: attests itself to the server as a node, keeps the entries under it and their SVIDs in
 * a cache (synced and rotated by ServerSync), and serves the SPIFFE Workload API on a Unix socket to local
 * workloads, each attested from the kernel (SO_PEERCRED) and /proc.
 */
import type { X509Bundle } from '../bundle';
import { ConfigError } from '../errors';
import { createLogger, type Logger } from '../internal/logging';
import { loopbackProblem, type MetricsEndpoint, startMetricsEndpoint } from '../internal/metrics-endpoint';
import { AgentMetrics } from './metrics';
import { ServerEndpoints, type ServerAddresses } from '../client/server-endpoints';
import { AgentCache } from './cache';
import { NodeIdentity, type NodeAttestation } from './node-identity';
import { ServerSync } from './server-sync';
import { WorkloadEndpoint } from './workload-api/endpoint';
import { agentHealth } from './workload-api/health';
import { workloadApiService } from './workload-api/service';
import { sdsService } from './sds/service';
import { agentSessionService } from './workload-api/session-service';

export interface AgentOptions {
  /**
   * The server's TLS listener (host:port), or several servers of one database (a list, or a name resolving to
   * several addresses): the agent fails over to the next when one is unavailable or times out.
   */
  server: ServerAddresses;
  /** Bootstrap trust bundle for the server. */
  bundle: X509Bundle;
  /** Path of the Workload API socket. */
  socketPath: string;
  attestation: NodeAttestation;
  /** Keeps the agent's own SVID across agent restarts (key 0600). */
  dataDir?: string;
  /** How often the agent syncs with the server; default 5 s. */
  syncIntervalMs?: number;
  /** Cap of the retry backoff while the server is unreachable; default 30 s. */
  maxBackoffMs?: number;
  /**
   * Serve Workload API connections whose descriptor in the connecting process is not close-on-exec (default
   * false: refused, since such a descriptor may have been opened by another program before an exec). Clients
   * that leave their sockets inheritable, such as netty-based java-spiffe, need it.
   */
  allowInheritableConnections?: boolean;
  logger?: Logger;
  clock?: () => Date;
  /**
   * OID the server writes agent contexts under (its `agent_context.oid`); SVIDs with the context under another
   * OID are refused, never served. Default 1.3.6.1.4.1.262144.1.1.
   */
  agentContextOid?: string;
  /**
   * Serve Prometheus metrics (GET /metrics, plain HTTP) on `listen`; absent = off. A non-loopback address is
   * refused unless `allowNonLoopback` (the listener has no TLS and no authentication).
   */
  metrics?: { listen: { host: string; port: number }; allowNonLoopback?: boolean };
}

export interface RunningAgent {
  socketPath: string;
  /** This agent's metrics (its own registry) and where they are served, when metrics are on. */
  metrics?: AgentMetrics;
  metricsAddress?: string;
  cache: AgentCache;
  sync: ServerSync;
  identity: NodeIdentity;
  close(): Promise<void>;
}

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const logger = opts.logger ?? createLogger({ level: 'info' });
  const clock = opts.clock ?? (() => new Date());
  if (opts.metrics !== undefined) {
    const problem = loopbackProblem(opts.metrics.listen.host, opts.metrics.allowNonLoopback ?? false);
    if (problem !== undefined) throw new ConfigError(`metrics listen address: ${problem}`);
  }
  const metrics = opts.metrics !== undefined ? new AgentMetrics(clock) : undefined;
  const cache = new AgentCache();
  // One cursor for every call the agent makes: a server found down by the sync is skipped by the next Renew too.
  const servers = new ServerEndpoints(opts.server);
  // The identity trusts the newest bundle the sync has seen; the sync needs the identity: a late binding.
  const ref: { sync?: ServerSync } = {};
  const identity = new NodeIdentity({
    servers,
    bundle: () => ref.sync?.trustBundle() ?? opts.bundle,
    attestation: opts.attestation,
    ...(opts.dataDir !== undefined && { dataDir: opts.dataDir }),
    clock,
    ...(opts.agentContextOid !== undefined && { agentContextOid: opts.agentContextOid }),
  });
  const s = new ServerSync({
    servers,
    identity,
    cache,
    bootstrapBundle: opts.bundle,
    clock,
    logger: logger.child({ component: 'sync' }),
    ...(opts.syncIntervalMs !== undefined && { intervalMs: opts.syncIntervalMs }),
    ...(opts.maxBackoffMs !== undefined && { maxBackoffMs: opts.maxBackoffMs }),
    ...(opts.agentContextOid !== undefined && { agentContextOid: opts.agentContextOid }),
    ...(metrics !== undefined && { onSync: metrics.onSync }),
  });
  ref.sync = s;
  metrics?.bind({ cache, sync: s, identity });
  const health = agentHealth(cache);
  const endpoint = await WorkloadEndpoint.listen({
    socketPath: opts.socketPath,
    logger: logger.child({ component: 'workload-api' }),
    policy: { allowInheritable: opts.allowInheritableConnections ?? false },
    services: (peerOf) =>
      [
        workloadApiService(
          {
            cache,
            newJwtSvid: (entryId, audience) => s.newJwtSvid(entryId, audience),
            clock,
            logger,
          },
          peerOf,
        ),
        agentSessionService({ cache, servers, clock, logger }, peerOf),
        sdsService({ cache, clock, logger }, peerOf),
        health.spec,
      ].map((service) => metrics?.grpc.instrument(service, 'workload-api') ?? service),
  });
  let metricsEndpoint: MetricsEndpoint | undefined;
  if (opts.metrics !== undefined && metrics !== undefined) {
    try {
      metricsEndpoint = await startMetricsEndpoint({
        listen: opts.metrics.listen,
        registry: metrics.registry,
        logger,
      });
    } catch (e) {
      health.stop();
      await endpoint.close();
      throw e;
    }
    logger.info({ metricsAddress: metricsEndpoint.address }, 'Prometheus metrics served at /metrics');
  }
  await s.start();
  logger.info(
    { socketPath: opts.socketPath, servers: servers.configured, node: identity.current()?.id.toString() },
    'lanyard agent serving the Workload API',
  );
  return {
    socketPath: opts.socketPath,
    cache,
    sync: s,
    identity,
    ...(metrics !== undefined && { metrics }),
    ...(metricsEndpoint !== undefined && { metricsAddress: metricsEndpoint.address }),
    async close() {
      await metricsEndpoint?.close();
      health.stop();
      await endpoint.close();
      await s.close();
    },
  };
}
