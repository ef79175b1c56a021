/**
 * Starting and stopping a whole server from a ServerConfig: data dir, store, listeners. Used by
 * `lanyard server run` and by tests that need a real server.
 */
import * as path from 'node:path';
import { Attestors } from '../attest';
import {
  CaManager,
  DiskKeyManager,
  loadUpstreamAuthority,
  startRotationTimer,
  type RotationTimer,
  type UpstreamAuthority,
} from '../ca';
import { ConfigError } from '../errors';
import { TrustDomain } from '../spiffe';
import { PgStore } from '../store/postgres/pg-store';
import { SqliteStore } from '../store/sqlite/sqlite-store';
import type { Store } from '../store/store';
import { prepareDataDir } from '../internal/unix-socket';
import { openConfiguredStore, serverIdOf } from './open-store';
import { relaySharedRevocations } from './revocation/shared-revocations';
import { CA_UPSTREAM_FIELDS, type ServerConfig } from './config';
import { type CaHealthMonitor, CA_DEPENDENT_HEALTH_NAMES, watchCaHealth } from './ca-health';
import { HealthBoard } from './health-board';
import { STORE_DEPENDENT_HEALTH_NAMES, type StoreHealthMonitor, watchStoreHealth } from './store-health';
import { type BoundListener, LanyardServer } from './grpc-server';
import { createLogger, type Logger } from '../internal/logging';
import { FileWitness } from '../audit/file-witness';
import { RotatingAuditKey } from '../audit/rotating-key';
import { SyslogWitness } from '../audit/syslog-witness';
import type { AuditWitness } from '../audit/witness';
import { SERVER_SPIFFE_PATH } from '../ca/server-svid';
import { KEYS_DIR_NAME } from '../ca/disk-key-manager';
import { IngestQuota } from './audit/ingest-quota';
import { AUDIT_DIR, AuditRecorder, LOCAL_WITNESS_FILE } from './audit/recorder';
import { auditPolicyReloads } from './audit/policy-audit';
import { CONFIG_DEFAULTS } from './config';
import { PolicyEngine } from '../policy';
import { JWT_STATE_FILE_NAME, JwtAuthority } from './node/jwt-authority';
import { buildListeners } from './services';
import { PrincipalVerifier } from './sessions/principal';
import { type CrlHttpServer, startCrlHttpServer } from './revocation/crl-http';
import { CrlPublisher } from './revocation/crl-publisher';
import { type PruneTimer, startPruneTimer } from './revocation/prune-timer';
import { RevocationFeed } from './sessions/revocation-feed';
import { RevocationWatchers } from './sessions/watch-revocations';
import { CaCertificateProvider } from './tls/svid-credentials';
import { type BundleEndpoint, startBundleEndpoint } from './federation/bundle-endpoint';
import { type OidcDiscoveryEndpoint, startOidcDiscoveryEndpoint } from './oidc/discovery-endpoint';
import { FederationManager } from './federation/manager';
import { type MetricsEndpoint, startMetricsEndpoint } from '../internal/metrics-endpoint';
import { ServerMetrics } from './metrics/server-metrics';

export interface StartOptions {
  logger?: Logger;
  clock?: () => Date;
  /** Opens the store; the default is SQLite in the data dir. Tests wrap it to observe or slow calls. */
  openStore?: (config: ServerConfig) => Promise<Store>;
  /** false: no rotation timer (tests drive `ca.tick()` themselves). Default true. */
  rotationTimer?: boolean;
  /** Lifetime of the server's own SVID; default the CA's default (one hour, capped by the CA). */
  serverSvidTtlSeconds?: number;
  /** How often expired revocations, grants and sessions are pruned; default PRUNE_DEFAULTS.intervalSeconds. */
  pruneIntervalSeconds?: number;
}

export interface RunningServer {
  config: ServerConfig;
  server: LanyardServer;
  store: Store;
  listeners: BoundListener[];
  /** host:port the public TLS listener is bound to (the real port when the config said 0). */
  publicAddress: string;
  ca: CaManager;
  attestors: Attestors;
  logger: Logger;
  /** The signed CRLs, built on demand by the CRL listener (`current()`); nothing builds them otherwise. */
  crl: CrlPublisher;
  /** host:port of the CRL HTTP listener, when crl.listen_address is set. */
  crlAddress?: string;
  /** The issuance policy engine, when policy.files is set (its version goes into every SVID). */
  policy?: PolicyEngine;
  /** The audit trail's recorder (its key, its chain, checkpoints). */
  audit: AuditRecorder;
  /** The JWT-SVID signing keys (rotating with the CA's schedule). */
  jwt: JwtAuthority;
  /** The open WatchRevocations streams (counts, for operators and tests). */
  watchers: RevocationWatchers;
  /** Federation relationships and the foreign bundles this server holds. */
  federation: FederationManager;
  /** https://host:port/ of the SPIFFE bundle endpoint, when federation.bundle_endpoint is set. */
  bundleEndpointUrl?: string;
  /** This server's Prometheus metrics (its own registry), when metrics are on. */
  metrics?: ServerMetrics;
  /** host:port of the metrics listener (GET /metrics), when metrics are on. */
  metricsAddress?: string;
  /** host:port of the OIDC discovery listener, when oidc_discovery is configured. */
  oidcDiscoveryAddress?: string;
  /** Graceful close, then the store. */
  close(): Promise<void>;
}

/** SQLite in the data dir, or PostgreSQL when the config has store.postgres. */
export function openDefaultStore(config: ServerConfig): Promise<Store> {
  return openConfiguredStore(config);
}

export async function startServer(config: ServerConfig, options: StartOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const clock = options.clock ?? (() => new Date());
  const trustDomain = TrustDomain.parse(config.trustDomain);
  // Before the data dir is touched: an upstream CA that cannot be used stops the start-up with nothing written.
  const upstream = loadConfiguredUpstream(config, clock());

  if (prepareDataDir(config.dataDir)) {
    logger.warn({ dataDir: config.dataDir }, 'data dir was readable by others: tightened to 0700');
  }
  const store = await (options.openStore ?? openDefaultStore)(config);
  if (store instanceof SqliteStore) logger.info({ store: store.diagnostics() }, 'store open');
  // The URL in the diagnostics never holds the password (refused in the URL; given separately).
  if (store instanceof PgStore) {
    const diagnostics = await store.diagnostics().catch(async (e: unknown) => {
      await store.close();
      throw e;
    });
    logger.info({ store: { kind: store.kind, ...diagnostics } }, 'store open');
  }

  let ca: CaManager | undefined;
  let timer: RotationTimer | undefined;
  let jwtTimer: RotationTimer | undefined;
  const certificates: { provider?: CaCertificateProvider } = {};
  const revocations = new RevocationFeed();
  const watchers = new RevocationWatchers({
    store,
    feed: revocations,
    logger: logger.child({ component: 'revocation-watch' }),
    maxWatchers: config.limits.watchers,
    heartbeatMs: config.revocationFeed.heartbeatSeconds * 1000,
    stallTimeoutMs: config.revocationFeed.stallTimeoutSeconds * 1000,
  });
  let crl: CrlPublisher | undefined;
  let crlHttp: CrlHttpServer | undefined;
  let bundleEndpoint: BundleEndpoint | undefined;
  let oidcEndpoint: OidcDiscoveryEndpoint | undefined;
  const fed = config.federation;
  const federation = new FederationManager({
    store,
    logger,
    clock,
    ...(fed !== undefined && {
      minRefreshSeconds: fed.minRefreshSeconds,
      maxRefreshSeconds: fed.maxRefreshSeconds,
      defaultRefreshSeconds: fed.defaultRefreshSeconds,
      failureRetrySeconds: fed.failureRetrySeconds,
    }),
  });
  let pruner: PruneTimer | undefined;
  // Made first, so every part the server builds can report into it; served once the listeners are up.
  const metrics =
    config.metricsListenAddress !== undefined
      ? new ServerMetrics(clock, logger.child({ component: 'metrics' }))
      : undefined;
  let metricsEndpoint: MetricsEndpoint | undefined;
  let audit: AuditRecorder | undefined;
  let policy: PolicyEngine | undefined;
  let jwtAuthority: JwtAuthority | undefined;
  // Started once the listeners are up; the rotation timer (made before) re-checks it after each tick.
  const health: { monitor?: CaHealthMonitor; store?: StoreHealthMonitor } = {};
  // Stops, in order, what runs on top of the store; then the store. Runs once, on close or a failed start.
  // Following other servers' changes on a shared store (PostgreSQL); stopped first on the way down.
  const sharing: (() => void)[] = [];
  const teardown = async (): Promise<void> => {
    try {
      for (const stop of sharing.splice(0)) stop();
      await metricsEndpoint?.close();
      metrics?.unbind();
      // The last checkpoint signs everything recorded, including the calls drained just now.
      watchers.closeAll();
      await audit?.stop();
      policy?.close();
      health.monitor?.stop();
      health.store?.stop();
      await timer?.stop();
      await jwtTimer?.stop();
      await pruner?.stop();
      await crlHttp?.close();
      federation.stop();
      await bundleEndpoint?.close();
      await oidcEndpoint?.close();
      await crl?.stop();
      certificates.provider?.stop();
      await ca?.close();
    } finally {
      await store.close();
    }
  };

  let server: LanyardServer;
  let attestors: Attestors;
  try {
    // First: a policy the server cannot enforce stops the start-up before anything else runs.
    if (config.policyFiles !== undefined) {
      policy = PolicyEngine.load({
        sources: config.policyFiles,
        logger: logger.child({ component: 'policy' }),
      });
    }
    const witnesses: AuditWitness[] = [];
    const openedWitnesses = async (): Promise<AuditWitness[]> => {
      witnesses.push(await FileWitness.open(path.join(config.dataDir, LOCAL_WITNESS_FILE)));
      for (const w of config.auditWitnesses ?? []) {
        witnesses.push(
          'file' in w
            ? await FileWitness.open(w.file)
            : SyslogWitness.open({ target: w.syslog, facility: w.facility }),
        );
      }
      return witnesses;
    };
    try {
      audit = new AuditRecorder({
        store,
        keys: RotatingAuditKey.open(path.join(config.dataDir, AUDIT_DIR), clock()),
        chain: `spiffe://${trustDomain.name}${SERVER_SPIFFE_PATH}`,
        serverId: serverIdOf(config.dataDir),
        clock,
        logger: logger.child({ component: 'audit' }),
        checkpointIntervalSeconds:
          config.auditCheckpointIntervalSeconds ?? CONFIG_DEFAULTS.audit_checkpoint_interval,
        keyRotationSeconds: config.auditKeyRotationSeconds ?? CONFIG_DEFAULTS.audit_key_rotation_interval,
        witnesses: await openedWitnesses(),
        ...(metrics !== undefined && { onAppend: metrics.onAuditAppend }),
      });
    } catch (e) {
      for (const w of witnesses) await w.close().catch(() => undefined);
      throw e;
    }
    // Signs the head at once: a chain left unsigned by a crash (kill -9) is signed before anything else runs.
    await audit.start();
    const recorder = audit;
    // Reloads change what later decisions mean: each one, and each refused one, goes into the trail.
    if (policy !== undefined && config.policyFiles !== undefined) {
      auditPolicyReloads(policy, recorder, {
        actor: recorder.chain,
        sources: config.policyFiles,
        logger: logger.child({ component: 'policy' }),
      });
    }
    ca = await CaManager.open({
      trustDomain,
      store,
      keyManager: DiskKeyManager.inDataDir(config.dataDir),
      caTtlSeconds: config.caTtlSeconds,
      signingWorkers: config.caSigningWorkers,
      ...(fed?.bundleRefreshHintSeconds !== undefined && {
        bundleRefreshHintSeconds: fed.bundleRefreshHintSeconds,
      }),
      agentContextOid: config.agentContextOid,
      ...(upstream !== undefined && { upstream }),
      ...(options.serverSvidTtlSeconds !== undefined && {
        serverSvidTtlSeconds: options.serverSvidTtlSeconds,
      }),
      clock,
      logger: logger.child({ component: 'ca' }),
    });
    const jwtLog = logger.child({ component: 'jwt-keys' });
    const jwt = await JwtAuthority.open(DiskKeyManager.inDataDir(config.dataDir), {
      keyTtlSeconds: config.caTtlSeconds,
      stateFile: path.join(config.dataDir, KEYS_DIR_NAME, JWT_STATE_FILE_NAME),
      clock,
      logger: jwtLog,
      ...(config.oidcDiscovery !== undefined && { issuer: config.oidcDiscovery.issuer }),
    });
    jwtAuthority = jwt;
    // The bundle document carries these keys too: a rotation of either is a new bundle sequence.
    const republish = (what: string) => (): void => {
      ca?.republishBundle().catch((e: unknown) =>
        logger.error({ err: e, keys: what }, 'bundle not republished after a key rotation'),
      );
    };
    jwt.onChange(republish('jwt-svid'));
    recorder.onKeysChange(republish('audit'));
    if (options.rotationTimer !== false) {
      jwtTimer = startRotationTimer(jwt, {
        onError: (e) => jwtLog.warn({ err: e }, 'JWT-SVID key rotation tick failed; retrying'),
        // Each step goes into the audit trail, like the CA's.
        onTick: (r) => {
          const steps: [string, string][] = [
            ...(r.prepared !== undefined ? [['jwt-svid prepare', r.prepared] as [string, string]] : []),
            ...(r.activated !== undefined ? [['jwt-svid activate', r.activated] as [string, string]] : []),
            ...r.removed.map((kid): [string, string] => ['jwt-svid remove', kid]),
          ];
          for (const [action, subject] of steps) {
            recorder
              .record({ event: 'key.rotate', decision: 'allow', actor: 'rotation-timer', subject, action })
              .catch((e: unknown) =>
                jwtLog.error({ err: e }, 'JWT key rotation step not recorded in the audit trail'),
              );
          }
        },
      });
    }
    if (options.rotationTimer !== false) {
      const caLog = logger.child({ component: 'ca-timer' });
      timer = startRotationTimer(ca, {
        // The CA logged the failure with its details; the timer retries.
        onError: (e) => {
          caLog.warn({ err: e }, 'CA rotation tick failed; retrying');
          health.monitor?.check();
        },
        // Automatic rotation steps go into the audit trail like the manual ones (lanyard ca rotate).
        onTick: (r) => {
          health.monitor?.check();
          const steps: [string, string][] = [
            ...(r.prepared !== undefined
              ? [['CA_ROTATION_STEP_PREPARE', r.prepared] as [string, string]]
              : []),
            ...(r.activated !== undefined
              ? [['CA_ROTATION_STEP_ACTIVATE', r.activated] as [string, string]]
              : []),
            ...r.removed.map((id): [string, string] => ['expired', id]),
          ];
          for (const [action, subject] of steps) {
            recorder
              .record({ event: 'ca.rotate', decision: 'allow', actor: 'rotation-timer', subject, action })
              .catch((e: unknown) =>
                caLog.error({ err: e }, 'CA rotation step not recorded in the audit trail'),
              );
          }
        },
      });
    }
    attestors = await Attestors.fromConfig(config.attestors, { store });
    logger.info({ attestors: attestors.types }, 'attestors ready');
    const principals = await PrincipalVerifier.fromConfig(config.principalIssuers);
    crl = new CrlPublisher({
      store,
      ca,
      feed: revocations,
      clock,
      logger: logger.child({ component: 'crl' }),
    });
    crl.start();
    const changes = (store as Store).changes;
    if (changes !== undefined) {
      const sharedLog = logger.child({ component: 'shared-store' });
      const sharedCa = ca;
      sharing.push(
        relaySharedRevocations(store, revocations, sharedLog),
        changes.onBundleChanged(() => {
          sharedCa
            .refreshSharedBundle()
            .catch((e: unknown) =>
              sharedLog.warn({ err: e }, 'could not read the bundle another server published'),
            );
        }),
      );
    }
    const publisher = crl;
    pruner = startPruneTimer({
      store,
      clock,
      logger: logger.child({ component: 'prune' }),
      ...(options.pruneIntervalSeconds !== undefined && { intervalSeconds: options.pruneIntervalSeconds }),
      onPruned: () => publisher.invalidate(),
    });
    if (config.crlListenAddress !== undefined) {
      crlHttp = await startCrlHttpServer({
        listen: config.crlListenAddress,
        trustDomain: config.trustDomain,
        publisher,
        logger,
      });
      logger.info({ crlAddress: crlHttp.address }, 'CRL served over HTTP');
    }
    await federation.start();
    if (fed?.bundleEndpoint !== undefined) {
      bundleEndpoint = await startBundleEndpoint({
        listen: fed.bundleEndpoint.listenAddress,
        tls: fed.bundleEndpoint.tls,
        ca,
        // The same document as the BundleService's: JWT-SVID keys and audit keys beside the X.509 roots.
        extraKeys: () => [...recorder.ring().jwks(), ...jwt.jwks()],
        logger,
      });
    }
    const oidc = config.oidcDiscovery;
    if (oidc !== undefined) {
      oidcEndpoint = await startOidcDiscoveryEndpoint({
        issuer: oidc.issuer,
        listen: oidc.listenAddress,
        tls: oidc.tls,
        jwt,
        logger,
      });
    }
    certificates.provider = new CaCertificateProvider(ca);
    certificates.provider.start();
    metrics?.bind({
      ca,
      store,
      auditChain: recorder.chain,
      attestorTypes: attestors.types,
      revocations,
    });
    server = new LanyardServer({
      listeners: buildListeners({
        config,
        trustDomain,
        store,
        logger,
        clock,
        ca,
        attestors,
        certificates: certificates.provider,
        principals,
        revocations,
        watchers,
        audit,
        ...(policy !== undefined && { policy }),
        jwt,
        federation,
        auditIngest: auditIngestOf(config),
      }),
      logger,
      maxMessageBytes: config.maxMessageBytes,
      shutdownGraceMs: config.shutdownGraceSeconds * 1000,
      onClosed: teardown,
      ...(metrics !== undefined && {
        instrument: (service, listener) => metrics.grpc.instrument(service, listener),
      }),
    });
  } catch (e) {
    await teardown();
    throw e;
  }
  // On a failed start the server closes what it bound and, through onClosed, the CA and the store.
  const listeners = await server.start();
  const serving = server;
  if (config.metricsListenAddress !== undefined && metrics !== undefined) {
    try {
      metricsEndpoint = await startMetricsEndpoint({
        listen: config.metricsListenAddress,
        registry: metrics.registry,
        logger,
      });
    } catch (e) {
      // A port already taken stops the start-up like any listener's: nothing keeps running half-started.
      await server.close();
      throw e;
    }
    logger.info({ metricsAddress: metricsEndpoint.address }, 'Prometheus metrics served at /metrics');
  }
  // The CA and the store each take names out of service; a name serves again only when neither holds it.
  const board = new HealthBoard((names, status) => serving.setHealth(names, status));
  const healthLog = logger.child({ component: 'health' });
  health.monitor = watchCaHealth({
    ca: ca!,
    clock,
    logger: healthLog,
    onChange: (ok) => board.set('ca', CA_DEPENDENT_HEALTH_NAMES, ok),
  });
  health.store = watchStoreHealth({
    store,
    logger: healthLog,
    onChange: (ok) => board.set('store', STORE_DEPENDENT_HEALTH_NAMES, ok),
  });
  const publicAddress = listeners.find((l) => l.name === 'public')?.address ?? '';
  logger.info(
    {
      trustDomain: config.trustDomain,
      dataDir: config.dataDir,
      publicAddress,
      agentContextOid: config.agentContextOid,
    },
    'lanyard server ready',
  );
  // After readiness, off this thread: Attest/Renew and the health check never wait for it.
  if (config.revocationFeed.warmSnapshot) void watchers.warm();
  return {
    config,
    server,
    store,
    listeners,
    publicAddress,
    ca,
    attestors,
    logger,
    crl,
    ...(crlHttp !== undefined && { crlAddress: crlHttp.address }),
    ...(policy !== undefined && { policy }),
    audit: audit!,
    jwt: jwtAuthority!,
    watchers,
    federation,
    ...(bundleEndpoint !== undefined && { bundleEndpointUrl: bundleEndpoint.url }),
    ...(metrics !== undefined && { metrics }),
    ...(metricsEndpoint !== undefined && { metricsAddress: metricsEndpoint.address }),
    ...(oidcEndpoint !== undefined && { oidcDiscoveryAddress: oidcEndpoint.address }),
    close: () => server.close(),
  };
}

/** audit.ingest as the AuditService applies it to shipping workloads. */
function auditIngestOf(
  config: ServerConfig,
): NonNullable<Parameters<typeof buildListeners>[0]['auditIngest']> {
  const i = config.auditIngest;
  return {
    quota: new IngestQuota({
      maxRecords: i?.maxRecords ?? CONFIG_DEFAULTS.audit_ingest_max_records,
      maxBytes: i?.maxBytes ?? CONFIG_DEFAULTS.audit_ingest_max_bytes,
      windowSeconds: i?.windowSeconds ?? CONFIG_DEFAULTS.audit_ingest_window,
    }),
    times: {
      maxClockSkewSeconds: i?.maxClockSkewSeconds ?? CONFIG_DEFAULTS.audit_ingest_max_clock_skew,
      maxAgeSeconds: i?.maxRecordAgeSeconds ?? CONFIG_DEFAULTS.audit_ingest_max_record_age,
    },
  };
}

/**
 * ca.upstream read and checked (key 0600 and matching; the chain, with a CA of Lanyard's shape below it,
 * validates to the bundle's roots at `now`).
 * @throws ConfigError starting with the config file and the field at fault.
 */
function loadConfiguredUpstream(config: ServerConfig, now: Date): UpstreamAuthority | undefined {
  if (config.caUpstream === undefined) return undefined;
  try {
    return loadUpstreamAuthority(config.caUpstream, {
      trustDomain: config.trustDomain,
      now,
      fields: CA_UPSTREAM_FIELDS,
    });
  } catch (e) {
    if (e instanceof ConfigError && config.configFile !== undefined) {
      throw new ConfigError(`${config.configFile}: ${e.message}`);
    }
    throw e;
  }
}

/**
 * Closes the server on the first SIGTERM or SIGINT; a second signal during the drain exits at once.
 * Resolves with the exit code once closed.
 */
export function closeOnSignals(
  running: RunningServer,
  signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'],
): Promise<number> {
  return new Promise((resolve) => {
    let closing = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (closing) {
        running.logger.warn({ signal }, 'second signal: exiting without waiting for in-flight calls');
        process.exit(130);
      }
      closing = true;
      running.logger.info({ signal }, 'signal received: closing');
      running.close().then(
        () => {
          for (const s of signals) process.off(s, onSignal);
          resolve(0);
        },
        (e: unknown) => {
          running.logger.error({ err: e }, 'close failed');
          resolve(1);
        },
      );
    };
    for (const s of signals) process.on(s, onSignal);
  });
}
