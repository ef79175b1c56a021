/**
 * The node agent's Prometheus metrics, in a registry of its own (one per running agent): Workload API calls
 * (through the shared per-method wrapper), what the cache holds, how syncing with the server goes, and the
 * agent's own identity and bundle. The state gauges are read from the cache and the sync at scrape time.
 * No label names a workload, an entry or a SPIFFE ID.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../internal/process-metrics';
import { GrpcServerMetrics, RPC_SECONDS_BUCKETS } from '../internal/grpc-metrics';
import type { AgentCache } from './cache';
import type { NodeIdentity } from './node-identity';
import type { ServerSync } from './server-sync';

export interface AgentMetricSources {
  cache: AgentCache;
  sync: ServerSync;
  identity: NodeIdentity;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly grpc: GrpcServerMetrics;
  private readonly syncs: Counter<'outcome'>;
  private readonly syncSeconds: Histogram;
  private readonly lastSuccess: Gauge;
  private sources: AgentMetricSources | undefined;

  constructor(private readonly clock: () => Date) {
    const registers = [this.registry];
    collectProcessMetrics(this.registry);
    this.grpc = new GrpcServerMetrics({ registry: this.registry });
    this.syncs = new Counter({
      name: 'lanyard_agent_syncs_total',
      help: 'Sync attempts with the server (entries, SVIDs, bundle) by outcome: ok or failed',
      labelNames: ['outcome'],
      registers,
    });
    // Both outcomes exist from the start, so rate() and alerts see a 0 rather than no series.
    for (const outcome of ['ok', 'failed']) this.syncs.inc({ outcome }, 0);
    this.syncSeconds = new Histogram({
      name: 'lanyard_agent_sync_seconds',
      help: 'Time one sync with the server took, failed ones included',
      buckets: [...RPC_SECONDS_BUCKETS, 15],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: 'lanyard_agent_last_sync_success_timestamp_seconds',
      help: 'Unix time of the last sync that succeeded (0 before the first)',
      registers,
    });
    // collect() runs with `this` bound to its gauge: the agent's parts are reached through these arrows.
    const sources = (): AgentMetricSources | undefined => this.sources;
    const now = (): Date => this.clock();
    new Gauge({
      name: 'lanyard_agent_sync_consecutive_failures',
      help: 'Failed syncs since the last one that succeeded (the agent serves its cache meanwhile)',
      registers,
      collect() {
        this.set(sources()?.sync.consecutiveFailures ?? Number.NaN);
      },
    });
    new Gauge({
      name: 'lanyard_agent_cache_items',
      help: 'What the agent cache holds: entries, X.509-SVIDs, JWT-SVIDs, federated bundles',
      labelNames: ['kind'],
      registers,
      collect() {
        const s = sources()?.cache.stats();
        if (s === undefined) return;
        this.set({ kind: 'entries' }, s.entries);
        this.set({ kind: 'x509_svids' }, s.svids);
        this.set({ kind: 'jwt_svids' }, s.jwtSvids);
        this.set({ kind: 'federated_bundles' }, s.federatedBundles);
      },
    });
    new Gauge({
      name: 'lanyard_agent_bundle_sequence',
      help: 'Sequence number of the trust bundle the agent holds (NaN before the first sync)',
      registers,
      collect() {
        this.set(sources()?.cache.bundle()?.sequence ?? Number.NaN);
      },
    });
    new Gauge({
      name: 'lanyard_agent_svid_expiry_seconds',
      help: "Seconds until the agent's own SVID expires (NaN while it has none); renewed at half its life",
      registers,
      collect() {
        const svid = sources()?.identity.current();
        this.set(svid === undefined ? Number.NaN : (svid.notAfter.getTime() - now().getTime()) / 1000);
      },
    });
  }

  /** For ServerSync's onSync. */
  readonly onSync = (ok: boolean, seconds: number): void => {
    this.syncs.inc({ outcome: ok ? 'ok' : 'failed' });
    this.syncSeconds.observe(seconds);
    if (ok) this.lastSuccess.set(this.clock().getTime() / 1000);
  };

  bind(sources: AgentMetricSources): void {
    this.sources = sources;
  }
}
