/**
 * The server's Prometheus metrics, in a registry of its own (one per running server, so two servers in one
 * process never share a series). Counters and histograms are updated as things happen (calls, issuance,
 * revocations, audit appends); the state gauges (CA, bundle, sessions, audit head) are read from their owners
 * at scrape time, so a scrape always shows the state as it is, also on a store other servers share.
 *
 * Every label value comes from a fixed set: method names, the configured attestor types, error codes, CA
 * states. Nothing a caller names (SPIFFE IDs, session ids, serials) becomes a label.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CaManager } from '../../ca';
import type { CaAuthorityInfo, CaAuthorityState } from '../../ca/authority';
import { collectProcessMetrics } from '../../internal/process-metrics';
import { GrpcServerMetrics, type FinishedCall } from '../../internal/grpc-metrics';
import type { Logger } from '../../internal/logging';
import type { Store } from '../../store/store';
import type { AuditAppendMode } from '../audit/recorder';
import { storeFailure } from '../store-health';
import type { RevocationFeed } from '../sessions/revocation-feed';

/** The RPCs that issue an identity (X.509-SVIDs, JWT-SVIDs), by service: the issuance counter's `method`. */
export const ISSUANCE_METHODS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  'lanyard.v1.AttestationService': ['Attest', 'Renew'],
  'lanyard.v1.NodeService': ['BatchNewX509Svid', 'NewJwtSvid'],
  'lanyard.v1.SessionService': ['StartSession', 'RedeemGrant'],
});

/** Audit append buckets, seconds: a group commit on a local disk to a slow shared database. */
const AUDIT_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

const CA_STATES: readonly CaAuthorityState[] = ['prepared', 'active', 'old'];

/** What the scrape-time gauges read; bound once the server has built them (`bind`). */
export interface ServerMetricSources {
  ca: CaManager;
  store: Store;
  /** The audit chain whose head is reported (the server's own). */
  auditChain: string;
  /** The configured node attestor types: the only values the issuance counter's `attestor` label takes. */
  attestorTypes: readonly string[];
  revocations: RevocationFeed;
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly grpc: GrpcServerMetrics;
  private readonly issuance: Counter<'method' | 'attestor' | 'outcome' | 'error_code'>;
  private readonly revoked: Counter<'kind' | 'cause' | 'origin'>;
  private readonly auditAppend: Histogram<'mode'>;
  private readonly auditFailures: Counter<'mode'>;
  private sources: ServerMetricSources | undefined;
  private stopFeed: (() => void) | undefined;

  constructor(
    private readonly clock: () => Date,
    private readonly logger: Logger,
  ) {
    const registers = [this.registry];
    collectProcessMetrics(this.registry);
    this.grpc = new GrpcServerMetrics({ registry: this.registry, observers: [(c) => this.countIssuance(c)] });
    this.issuance = new Counter({
      name: 'lanyard_server_issuance_total',
      help: 'Issuance requests (Attest, Renew, BatchNewX509Svid, NewJwtSvid, StartSession, RedeemGrant) by outcome and error code',
      labelNames: ['method', 'attestor', 'outcome', 'error_code'],
      registers,
    });
    this.revoked = new Counter({
      name: 'lanyard_server_revocations_total',
      help: 'Revocations this server published to its watchers: sessions and certificates, direct or by cascade, committed here or relayed from a server sharing the store',
      labelNames: ['kind', 'cause', 'origin'],
      registers,
    });
    this.auditAppend = new Histogram({
      name: 'lanyard_server_audit_append_seconds',
      help: 'Time to append one audit record: until committed (direct) or within the caller transaction (transaction)',
      labelNames: ['mode'],
      buckets: AUDIT_SECONDS_BUCKETS,
      registers,
    });
    this.auditFailures = new Counter({
      name: 'lanyard_server_audit_append_failures_total',
      help: 'Audit records that could not be written (the call that needed them failed with ERR_AUDIT_WRITE_FAILED)',
      labelNames: ['mode'],
      registers,
    });
    // Both modes exist from the start: an alert on failures sees 0, not a missing series.
    for (const mode of ['direct', 'transaction']) this.auditFailures.inc({ mode }, 0);
    this.stateGauges();
  }

  /** For AuditRecorder's onAppend. */
  readonly onAuditAppend = (mode: AuditAppendMode, seconds: number, ok: boolean): void => {
    this.auditAppend.observe({ mode }, seconds);
    if (!ok) this.auditFailures.inc({ mode });
  };

  /** Connects the scrape-time gauges and the revocation counter to the running server's parts. */
  bind(sources: ServerMetricSources): void {
    this.stopFeed?.();
    this.sources = sources;
    this.stopFeed = sources.revocations.subscribe((records, origin) => {
      for (const r of records) {
        this.revoked.inc({
          kind: r.kind,
          cause: r.causeSequence !== undefined ? 'cascade' : 'direct',
          origin,
        });
      }
    });
  }

  /** Stops following the revocation feed (on close). */
  unbind(): void {
    this.stopFeed?.();
    this.stopFeed = undefined;
    this.sources = undefined;
  }

  private countIssuance(call: FinishedCall): void {
    if (!(ISSUANCE_METHODS[call.service]?.includes(call.method) ?? false)) return;
    const ok = call.code === 'OK';
    this.issuance.inc({
      method: call.method,
      attestor: call.method === 'Attest' ? this.attestorOf(call.request) : 'none',
      outcome: ok ? 'issued' : 'refused',
      error_code: ok ? '' : call.errorCode || `GRPC_${call.code}`,
    });
  }

  /** The attestor an Attest call named, when it is a configured one: a caller cannot invent label values. */
  private attestorOf(request: unknown): string {
    const step = (request as { step?: { $case?: string; value?: { attestorType?: unknown } } } | undefined)
      ?.step;
    if (step?.$case !== 'params') return 'none';
    const type = step.value?.attestorType;
    return typeof type === 'string' && (this.sources?.attestorTypes.includes(type) ?? false)
      ? type
      : 'unknown';
  }

  /** The CAs, or undefined before `bind` and once the CA is closed. */
  private authorities(): CaAuthorityInfo[] | undefined {
    try {
      return this.sources?.ca.authorities();
    } catch {
      return undefined;
    }
  }

  private stateGauges(): void {
    const registers = [this.registry];
    // A gauge whose source cannot be read right now reports NaN ("unknown") rather than a stale or made-up value:
    // left unset, a gauge without labels would repeat its last value as current. Each failure state is logged
    // once, not on every scrape: a metric's failure when it starts (and its recovery), a store failed closed once
    // for all its gauges, which then do not ask it at all (it refuses every call until the server restarts).
    const unreadable = new Set<string>();
    let storeFailedLogged = false;
    const read = async (what: string, fn: (s: ServerMetricSources) => Promise<number>): Promise<number> => {
      const s = this.sources;
      if (s === undefined) return Number.NaN;
      const failure = storeFailure(s.store);
      if (failure !== undefined) {
        if (!storeFailedLogged) {
          storeFailedLogged = true;
          this.logger.warn(
            { reason: failure.message },
            'store failed closed: the gauges read from it report NaN until the server restarts',
          );
        }
        return Number.NaN;
      }
      try {
        const value = await fn(s);
        if (unreadable.delete(what)) this.logger.info({ metric: what }, 'metric can be read again');
        return value;
      } catch (e) {
        if (!unreadable.has(what)) {
          unreadable.add(what);
          this.logger.warn(
            { err: e, metric: what },
            'metric could not be read; reported as NaN until it can',
          );
        }
        return Number.NaN;
      }
    };
    // collect() runs with `this` bound to its gauge: the server's parts are reached through these arrows.
    const sources = (): ServerMetricSources | undefined => this.sources;
    const now = (): Date => this.clock();
    const authorities = (): CaAuthorityInfo[] | undefined => this.authorities();
    new Gauge({
      name: 'lanyard_server_ca_ready',
      help: '1 when an active CA that holds its key and the server SVID are valid (the server can issue), else 0',
      registers,
      collect() {
        const s = sources();
        this.set(s === undefined ? Number.NaN : s.ca.readiness(now()).ready ? 1 : 0);
      },
    });
    new Gauge({
      name: 'lanyard_server_store_failed_closed',
      help: '1 when the store failed closed (a WAL fsync failed): it refuses every call until the server restarts, else 0',
      registers,
      collect() {
        const s = sources();
        this.set(s === undefined ? Number.NaN : storeFailure(s.store) !== undefined ? 1 : 0);
      },
    });
    new Gauge({
      name: 'lanyard_server_ca_authorities',
      help: 'CA certificates kept, by rotation state (prepared, active, old)',
      labelNames: ['state'],
      registers,
      collect() {
        const all = authorities();
        if (all === undefined) return;
        for (const state of CA_STATES) this.set({ state }, all.filter((a) => a.state === state).length);
      },
    });
    new Gauge({
      name: 'lanyard_server_ca_expiry_seconds',
      help: 'Seconds until the newest CA certificate in each rotation state expires (negative once expired)',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const all = authorities();
        if (all === undefined) return;
        const at = now().getTime();
        for (const state of CA_STATES) {
          const ends = all.filter((a) => a.state === state).map((a) => a.notAfter.getTime());
          if (ends.length > 0) this.set({ state }, (Math.max(...ends) - at) / 1000);
        }
      },
    });
    new Gauge({
      name: 'lanyard_server_svid_expiry_seconds',
      help: "Seconds until the server's own TLS SVID expires (it is renewed before)",
      registers,
      collect() {
        const s = sources();
        try {
          this.set(
            s === undefined ? Number.NaN : (s.ca.serverSvid().notAfter.getTime() - now().getTime()) / 1000,
          );
        } catch {
          this.set(Number.NaN);
        }
      },
    });
    new Gauge({
      name: 'lanyard_server_bundle_sequence',
      help: "Sequence number of the trust domain's bundle (grows with every change: CA, JWT or audit keys)",
      registers,
      collect() {
        const s = sources();
        try {
          this.set(s?.ca.bundle().sequence ?? Number.NaN);
        } catch {
          this.set(Number.NaN);
        }
      },
    });
    new Gauge({
      name: 'lanyard_server_sessions_active',
      help: 'Task sessions neither ended nor expired, of every agent (read from the store: all servers sharing it)',
      registers,
      async collect() {
        this.set(await read('sessions_active', (s) => s.store.countLiveSessions(now())));
      },
    });
    new Gauge({
      name: 'lanyard_server_revocation_sequence',
      help: 'Highest revocation sequence recorded (the number of revocations ever, pruned ones included)',
      registers,
      async collect() {
        this.set(await read('revocation_sequence', (s) => s.store.lastRevocationSequence()));
      },
    });
    new Gauge({
      name: 'lanyard_server_audit_chain_head_sequence',
      help: "Sequence number of the head of the server's audit chain (records appended so far)",
      registers,
      async collect() {
        this.set(await read('audit_chain_head', async (s) => (await s.store.audit.head(s.auditChain)).seq));
      },
    });
  }
}
