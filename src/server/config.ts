/**
 * The server's configuration: one schema, every default in CONFIG_DEFAULTS, validated at start-up.
 *
 * The file is YAML (JSON is valid YAML) with snake_case keys. Unknown keys are errors, so a typo cannot
 * silently leave a default in force. Every error names the field. Relative paths in the file are resolved
 * against the file's own directory, so the server reads the same files whatever directory it starts in.
 *
 * Where a value comes from, strongest first: command-line flag, config file, environment
 * (LANYARD_DATA_DIR, LANYARD_LISTEN_ADDRESS, LANYARD_AGENT_CONTEXT_OID), built-in default.
 */
import { LOG_LEVELS, type LogLevel } from '../internal/logging';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { parseDurationSeconds } from '../internal/duration';
import { z } from 'zod';
import { ConfigError } from '../errors';
import { TrustDomain } from '../spiffe';
import { DEFAULT_AGENT_CONTEXT_OID } from '../x509/agent-context/oid';
import { oidWriteProblem } from '../x509/oid';
import { loopbackProblem, METRICS_DEFAULT_ADDRESSES } from '../internal/metrics-endpoint';

/** Every default, documented in one place. Durations are seconds. */
export const CONFIG_DEFAULTS = {
  /** Trust domain of every SPIFFE ID this server issues. */
  trust_domain: 'lanyard.local',
  /** Data dir (SQLite database, CA keys, admin socket) when neither flag, file nor LANYARD_DATA_DIR sets one. */
  data_dir: './.lanyard',
  /**
   * TLS listener for attestation and the bundle (host:port; port 0 picks a free port), when neither the file
   * nor LANYARD_LISTEN_ADDRESS sets one.
   */
  listen_address: '127.0.0.1:8081',
  /** Admin socket (registration API for the CLI); default `<data_dir>/admin.sock`. */
  admin_socket_path: 'admin.sock',
  /** Lifetime of each CA certificate; rotation prepares the next at 1/2 and activates it at 5/6 of it. */
  ca_ttl: 24 * 3600,
  /** Worker threads that check CSRs and sign SVIDs; 0 = on the server's thread (docs/design/performance.md). */
  ca_signing_workers: 0,
  /** Lifetime of a workload X.509-SVID when its entry does not set one. */
  svid_default_ttl: 3600,
  log_level: 'info',
  postgres_pool_size: 10,
  /** How long graceful shutdown waits for in-flight calls before cancelling them. */
  shutdown_grace: 10,
  /** Largest gRPC message accepted or sent, bytes. */
  max_message_bytes: 4 * 1024 * 1024,
  /**
   * Plain-HTTP listener for the signed CRLs (`/crl/<trust_domain>.crl` and `.pem`): off unless `crl.enabled`
   * is true or `crl.listen_address` is set. Its default address is loopback, for an nginx or OpenSSL on the
   * same host; any other address must be configured explicitly, and the server warns when it binds one.
   */
  crl_enabled: false,
  crl_listen_address: '127.0.0.1:8082',
  /** Audience a Kubernetes projected service-account token must carry for k8s_psat. */
  k8s_psat_audience: 'lanyard',
  /**
   * Seconds between signed audit checkpoints (`audit.checkpoint_interval`); one is also signed on graceful
   * shutdown. A checkpoint is only signed when records were added since the last one.
   */
  audit_checkpoint_interval: 300,
  /**
   * How long the audit key signs before it is replaced (`audit.key_rotation_interval`). Retired keys stay
   * published (bundle, GetAuditHead) with their windows, so what they signed keeps verifying.
   */
  audit_key_rotation_interval: 30 * 86400,
  /**
   * What one workload may ship into the audit trail (`audit.ingest`): new records and their bytes per sliding
   * window, how far ahead of the server's clock a shipped record may be dated, and how old it may be.
   */
  audit_ingest_max_records: 100_000,
  audit_ingest_max_bytes: 64 * 1024 * 1024,
  audit_ingest_window: 3600,
  audit_ingest_max_clock_skew: 300,
  audit_ingest_max_record_age: 7 * 86400,
  /**
   * Cedar policy files or directories of `*.cedar` deciding which scopes issuance may grant (`policy.files`).
   * Absent: no policy, every scope the entry allows is granted and SVIDs carry policyVersion "none".
   */
  policy_files: undefined,
  /**
   * OID of the agent-context extension in every SVID (`agent_context.oid`): an unassigned, unregistered Private
   * Enterprise Number arc. Organisations with their own PEN set theirs, and the same on their verifiers.
   */
  agent_context_oid: DEFAULT_AGENT_CONTEXT_OID,
  /**
   * Per-agent session limits (`limits.*`), counted per registration entry, so that one workload cannot grow
   * the revocation state every verifier holds without bound: StartSession and RedeemGrant are refused with
   * RESOURCE_EXHAUSTED (ERR_QUOTA_EXCEEDED) while the entry has `live_sessions_per_agent` sessions open, or
   * `ended_sessions_per_agent` of its sessions ended (each one a revocation) within `ended_sessions_window`.
   * EndSession itself is never refused for a limit: ending a session is the safe direction.
   */
  live_sessions_per_agent: 1000,
  ended_sessions_per_agent: 3600,
  ended_sessions_window: 3600,
  /**
   * The longest a task session (StartSession) may last. Its SVIDs still live no longer than the entry's SVID
   * TTL each and are renewed within the session (the session source does it), so a long task keeps one
   * session identity without long-lived certificates.
   */
  max_session_ttl: 24 * 3600,
  /**
   * WatchRevocations streams the server keeps open: in all, per client connection, and per caller SPIFFE ID
   * (replicas of one service share an ID). Past a limit a new watch is refused with RESOURCE_EXHAUSTED.
   */
  watchers: 4096,
  watchers_per_connection: 4,
  watchers_per_identity: 256,
  /** A watch with nothing to send gets an empty message this often: verifiers count their state fresh by it. */
  revocation_heartbeat: 15,
  /** A watcher that has not accepted a page for this long (a full HTTP/2 window) is cut. */
  revocation_stall_timeout: 30,
  /** Read the stored revocation state for new watchers once the server is ready (WATCH_DEFAULTS.warmSnapshot). */
  revocation_warm_snapshot: true,
  /**
   * Polling of foreign bundle endpoints (`federation.*`): a foreign bundle's spiffe_refresh_hint is kept
   * within [min_refresh, max_refresh]; default_refresh applies when it has none; after a failed fetch the
   * next one comes after at most failure_retry. The last good bundle stays in force meanwhile.
   */
  federation_min_refresh: 1,
  federation_max_refresh: 86400,
  federation_default_refresh: 300,
  federation_failure_retry: 30,
  /**
   * Prometheus scrape listener (`metrics.*`, GET /metrics, plain HTTP): off unless `metrics.enabled` is true or
   * `metrics.listen_address` is set. Loopback only unless `metrics.allow_non_loopback` is true: it has neither
   * TLS nor authentication. docs/operator/metrics.md lists every metric.
   */
  metrics_enabled: false,
  metrics_listen_address: METRICS_DEFAULT_ADDRESSES.server,
  metrics_allow_non_loopback: false,
} as const;

export { LOG_LEVELS, type LogLevel } from '../internal/logging';

/** Linux limits a Unix socket path to 107 bytes (108 with the terminating NUL). */
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * A duration with a unit ("90s", "15m", "1h", "7d"), parsed as CLI flags are. A YAML number (`ttl: 10`) is
 * refused like a bare "10": seconds were a guess the reader of the file could not see.
 */
const duration = z.union([z.number(), z.string()]).transform((v, ctx): number => {
  try {
    return parseDurationSeconds(String(v), 'duration');
  } catch (e) {
    ctx.addIssue({
      code: 'custom',
      message: e instanceof Error ? e.message.replace(/^duration: /, '') : String(e),
    });
    return z.NEVER;
  }
});

const positiveInt = z.number().int().min(1);

const nonEmpty = z
  .string({ error: (issue) => (issue.input === undefined ? 'required' : undefined) })
  .min(1, 'must not be empty');

/**
 * A YAML block left with only comments under it (`admin:`) parses as null: read it as an empty block, as a
 * person writing it means. An absent block with defaults becomes {} so its defaults apply.
 */
const block = <T extends z.ZodType>(schema: T) => z.preprocess((v) => v ?? {}, schema);
const optionalBlock = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === null ? {} : v), schema.optional());

const k8sCluster = z.strictObject({
  /** Name used in selectors and logs; each cluster's tokens are checked only against its own keys. */
  name: nonEmpty,
  audience: nonEmpty.default(CONFIG_DEFAULTS.k8s_psat_audience),
  /** JWKS of the cluster's service-account token issuer, as a file. */
  jwks_file: nonEmpty,
  /** Expected `iss` claim; when absent any issuer signed by the JWKS is accepted. */
  issuer: nonEmpty.optional(),
  /** "namespace:serviceaccount" pairs allowed to attest; when absent, every service account. */
  allowed_service_accounts: z.array(nonEmpty).optional(),
});

/** An OID Lanyard may write (x509/oid.ts); the message says what is wrong with it. */
const agentContextOid = z
  .string({
    // YAML reads a two-arc OID such as 1.3 as a number.
    error: (issue) =>
      issue.input === undefined ? 'required' : 'expected an OID in quotes, e.g. "1.3.6.1.4.1.262144.1.1"',
  })
  .superRefine((v, ctx) => {
    const problem = oidWriteProblem(v);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `"${v}": ${problem}` });
  });

const principalIssuer = z.strictObject({
  /** Expected `iss` claim; also how a token finds its issuer's keys. */
  issuer: nonEmpty,
  /** Must be one of the token's `aud` values: a token minted for another service is not ours to accept. */
  audience: nonEmpty,
  /** The issuer's JWKS, as a file (re-read when it changes). */
  jwks_file: nonEmpty,
});

const syslogFacility = z.enum([
  'auth',
  'authpriv',
  'daemon',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
]);

/** An external witness of the audit trail: a file (another mount) or a syslog collector over UDP. */
const auditWitness = z.union([
  z.strictObject({ file: nonEmpty }),
  z.strictObject({
    syslog: z
      .string()
      .regex(/^udp:\/\/(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected udp://host:port'),
    facility: syslogFacility.default('authpriv'),
  }),
]);

const fileSchema = z.strictObject({
  trust_domain: z
    .string()
    .default(CONFIG_DEFAULTS.trust_domain)
    .superRefine((v, ctx) => {
      try {
        TrustDomain.parse(v);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: e instanceof Error ? e.message : String(e) });
      }
    }),
  data_dir: nonEmpty.optional(),
  listen_address: z
    .string()
    .default(CONFIG_DEFAULTS.listen_address)
    .refine(
      (v) => parseHostPort(v) !== undefined,
      'expected host:port, e.g. "127.0.0.1:8081" or "[::1]:8081"',
    ),
  admin: block(z.strictObject({ socket_path: nonEmpty.optional() })),
  ca: block(
    z.strictObject({
      ttl: duration.default(CONFIG_DEFAULTS.ca_ttl),
      /**
       * Worker threads that check CSRs and sign SVIDs beside the server's thread (TLS, HTTP/2, the store).
       * 0: everything on the server's thread. The CA key reaches the workers only in memory.
       */
      signing_workers: z.number().int().min(0).max(64).default(CONFIG_DEFAULTS.ca_signing_workers),
      /**
       * An organisation CA that signs Lanyard's CAs instead of self-signed roots; the bundle then holds the
       * organisation's root(s). Absent: self-signed roots.
       */
      upstream: optionalBlock(
        z.strictObject({
          /** PEM: the intermediate whose key is key_file, then any intermediates above it (no root). */
          cert_file: nonEmpty,
          /** PEM private key of the first certificate in cert_file; must be 0600 (no group/other access). */
          key_file: nonEmpty,
          /** PEM: the organisation's root certificate(s), the trust domain's bundle. */
          bundle_file: nonEmpty,
        }),
      ),
    }),
  ),
  /** Where the server keeps its state: SQLite in the data dir when absent; PostgreSQL to share it (HA). */
  store: optionalBlock(
    z.strictObject({
      postgres: z.strictObject({
        /** postgresql://user@host:port/database (host may be a socket dir: ?host=/run/postgresql); no password. */
        url: nonEmpty,
        pool_size: positiveInt.default(CONFIG_DEFAULTS.postgres_pool_size),
        /** A file holding the password (must not be readable by group or others); else LANYARD_POSTGRES_PASSWORD. */
        password_file: nonEmpty.optional(),
      }),
    }),
  ),
  svid: block(z.strictObject({ default_ttl: duration.default(CONFIG_DEFAULTS.svid_default_ttl) })),
  log: block(z.strictObject({ level: z.enum(LOG_LEVELS).default(CONFIG_DEFAULTS.log_level) })),
  shutdown_grace: duration.default(CONFIG_DEFAULTS.shutdown_grace),
  audit: optionalBlock(
    z.strictObject({
      checkpoint_interval: duration.default(CONFIG_DEFAULTS.audit_checkpoint_interval),
      key_rotation_interval: duration.default(CONFIG_DEFAULTS.audit_key_rotation_interval),
      witnesses: z.array(auditWitness).default([]),
      ingest: block(
        z.strictObject({
          max_records: z.number().int().min(1).default(CONFIG_DEFAULTS.audit_ingest_max_records),
          max_bytes: z.number().int().min(1024).default(CONFIG_DEFAULTS.audit_ingest_max_bytes),
          window: duration.default(CONFIG_DEFAULTS.audit_ingest_window),
          max_clock_skew: duration.default(CONFIG_DEFAULTS.audit_ingest_max_clock_skew),
          max_record_age: duration.default(CONFIG_DEFAULTS.audit_ingest_max_record_age),
        }),
      ),
    }),
  ),
  max_message_bytes: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(CONFIG_DEFAULTS.max_message_bytes),
  attestors: z
    .strictObject({
      /** Present (the default) = enabled. */
      join_token: optionalBlock(z.strictObject({})),
      k8s_psat: optionalBlock(
        z.strictObject({ clusters: z.array(k8sCluster).min(1, 'needs at least one cluster') }),
      ),
      x509pop: optionalBlock(z.strictObject({ ca_bundle_file: nonEmpty })),
    })
    .default({ join_token: {} }),
  /** Issuers whose OIDC ID tokens / JWT access tokens establish a session's principal (provenance verified). */
  principal_issuers: z.array(principalIssuer).default([]),
  policy: optionalBlock(
    z.strictObject({ files: z.array(nonEmpty).min(1, 'needs at least one file or directory') }),
  ),
  agent_context: block(z.strictObject({ oid: agentContextOid.optional() })),
  limits: block(
    z.strictObject({
      live_sessions_per_agent: positiveInt.default(CONFIG_DEFAULTS.live_sessions_per_agent),
      ended_sessions_per_agent: positiveInt.default(CONFIG_DEFAULTS.ended_sessions_per_agent),
      ended_sessions_window: duration.default(CONFIG_DEFAULTS.ended_sessions_window),
      max_session_ttl: duration.default(CONFIG_DEFAULTS.max_session_ttl),
      watchers: positiveInt.default(CONFIG_DEFAULTS.watchers),
      watchers_per_connection: positiveInt.default(CONFIG_DEFAULTS.watchers_per_connection),
      watchers_per_identity: positiveInt.default(CONFIG_DEFAULTS.watchers_per_identity),
    }),
  ),
  revocation_feed: block(
    z.strictObject({
      heartbeat: duration.default(CONFIG_DEFAULTS.revocation_heartbeat),
      stall_timeout: duration.default(CONFIG_DEFAULTS.revocation_stall_timeout),
      warm_snapshot: z.boolean().default(CONFIG_DEFAULTS.revocation_warm_snapshot),
    }),
  ),
  federation: optionalBlock(
    z.strictObject({
      /** This trust domain's SPIFFE bundle endpoint, for the servers that federate with it. */
      bundle_endpoint: optionalBlock(
        z.strictObject({
          listen_address: z
            .string()
            .refine((v) => parseHostPort(v) !== undefined, 'expected host:port, e.g. "0.0.0.0:8443"'),
          profile: z.enum(['https_web', 'https_spiffe']),
          /** https_web: PEM certificate chain for the endpoint's DNS name, and its key (0600). */
          cert_file: nonEmpty.optional(),
          key_file: nonEmpty.optional(),
        }),
      ),
      /**
       * The spiffe_refresh_hint this trust domain's bundle carries (seconds); default a twelfth of ca.ttl.
       * Federated servers poll our endpoint this often.
       */
      refresh_hint: duration.optional(),
      /** Polling of foreign bundle endpoints: bounds on spiffe_refresh_hint, and the retry after a failure. */
      min_refresh: duration.default(CONFIG_DEFAULTS.federation_min_refresh),
      max_refresh: duration.default(CONFIG_DEFAULTS.federation_max_refresh),
      default_refresh: duration.default(CONFIG_DEFAULTS.federation_default_refresh),
      failure_retry: duration.default(CONFIG_DEFAULTS.federation_failure_retry),
    }),
  ),
  metrics: block(
    z.strictObject({
      enabled: z.boolean().optional(),
      listen_address: z
        .string()
        .refine((v) => parseHostPort(v) !== undefined, 'expected host:port, e.g. "127.0.0.1:9464"')
        .optional(),
      allow_non_loopback: z.boolean().default(CONFIG_DEFAULTS.metrics_allow_non_loopback),
    }),
  ),
  /**
   * OIDC discovery for JWT-SVIDs (as SPIRE's OIDC Discovery Provider): JWT-SVIDs carry `iss: issuer`, and
   * `<issuer>/.well-known/openid-configuration` and the JWKS (`<issuer>/keys`) are served over https_web.
   * Absent = off (JWT-SVIDs carry no iss).
   */
  oidc_discovery: optionalBlock(
    z.strictObject({
      /** https URL without query or fragment; its host is the DNS name of cert_file. */
      issuer: nonEmpty,
      listen_address: z
        .string()
        .refine((v) => parseHostPort(v) !== undefined, 'expected host:port, e.g. "0.0.0.0:443"'),
      /** PEM certificate chain for the issuer's DNS name, and its key (0600). */
      cert_file: nonEmpty,
      key_file: nonEmpty,
    }),
  ),
  crl: block(
    z.strictObject({
      enabled: z.boolean().optional(),
      listen_address: z
        .string()
        .refine((v) => parseHostPort(v) !== undefined, 'expected host:port, e.g. "127.0.0.1:8082"')
        .optional(),
    }),
  ),
});

export interface K8sPsatCluster {
  name: string;
  audience: string;
  jwksFile: string;
  issuer?: string;
  allowedServiceAccounts?: string[];
}

export interface PrincipalIssuerConfig {
  issuer: string;
  audience: string;
  jwksFile: string;
}

/** ca.upstream, resolved: absolute paths, each checked readable (the contents are checked at start-up). */
export interface CaUpstreamConfig {
  certFile: string;
  keyFile: string;
  bundleFile: string;
}

/** Config field of each upstream file, for start-up errors that name what to fix. */
export const CA_UPSTREAM_FIELDS: Readonly<Record<keyof CaUpstreamConfig, string>> = Object.freeze({
  certFile: 'ca.upstream.cert_file',
  keyFile: 'ca.upstream.key_file',
  bundleFile: 'ca.upstream.bundle_file',
});

/** audit.witnesses[i], resolved. */
export type AuditWitnessConfig =
  { file: string } | { syslog: string; facility: z.infer<typeof syslogFacility> };

/** audit.ingest, resolved (seconds, bytes). */
export interface AuditIngestConfig {
  maxRecords: number;
  maxBytes: number;
  windowSeconds: number;
  maxClockSkewSeconds: number;
  maxRecordAgeSeconds: number;
}

/** The resolved configuration: absolute paths, durations in seconds. */
export interface ServerConfig {
  trustDomain: string;
  dataDir: string;
  listenAddress: { host: string; port: number };
  adminSocketPath: string;
  caTtlSeconds: number;
  /** ca.signing_workers: threads that check CSRs and sign; 0 = the server's own thread. */
  caSigningWorkers: number;
  /** ca.upstream: sign Lanyard's CAs with this organisation CA; absent = self-signed roots. */
  caUpstream?: CaUpstreamConfig;
  svidDefaultTtlSeconds: number;
  logLevel: LogLevel;
  shutdownGraceSeconds: number;
  /** Seconds between audit checkpoints when the file sets audit.checkpoint_interval; else the default. */
  auditCheckpointIntervalSeconds?: number;
  /** audit.key_rotation_interval when the file sets the audit block; else the default. */
  auditKeyRotationSeconds?: number;
  /** audit.witnesses (absolute paths): where checkpoints and pins are copied besides the data dir's own. */
  auditWitnesses?: AuditWitnessConfig[];
  /** audit.ingest when the file sets the audit block; else the defaults. */
  auditIngest?: AuditIngestConfig;
  maxMessageBytes: number;
  attestors: {
    joinToken?: Record<string, never>;
    k8sPsat?: { clusters: K8sPsatCluster[] };
    x509pop?: { caBundleFile: string };
  };
  /** Trusted issuers of principal tokens for StartSession; empty = only asserted or workload principals. */
  principalIssuers: PrincipalIssuerConfig[];
  /** Where the CRLs are served over HTTP (crl.enabled or crl.listen_address); absent = not served. */
  crlListenAddress?: { host: string; port: number };
  /** Where the Prometheus metrics are served (metrics.enabled or metrics.listen_address); absent = off. */
  metricsListenAddress?: { host: string; port: number };
  /** limits.*: per-agent session limits and revocation watcher limits (see CONFIG_DEFAULTS). */
  limits: ServerLimits;
  /** revocation_feed.*: seconds. */
  revocationFeed: { heartbeatSeconds: number; stallTimeoutSeconds: number; warmSnapshot: boolean };
  /** Cedar policy files/directories for issuance (absolute); absent = no policy (policyVersion "none"). */
  policyFiles?: string[];
  /** agent_context.oid: the OID SVIDs carry the agent context under, and callers' contexts are read under. */
  agentContextOid: string;
  /** federation.*: the bundle endpoint (absent = not served) and the polling bounds, seconds. */
  federation?: FederationConfig;
  /** oidc_discovery.*: the issuer JWT-SVIDs carry and where its discovery documents are served; absent = off. */
  oidcDiscovery?: OidcDiscoveryConfig;
  /** store.postgres: the shared PostgreSQL store; absent = SQLite in the data dir. */
  postgres?: PostgresStoreConfig;
  /** The file the configuration came from, when there was one. */
  configFile?: string;
}

export interface FederationConfig {
  bundleEndpoint?: {
    listenAddress: { host: string; port: number };
    tls: { profile: 'https_web'; certFile: string; keyFile: string } | { profile: 'https_spiffe' };
  };
  /** federation.refresh_hint: the hint our own bundle publishes. */
  bundleRefreshHintSeconds?: number;
  minRefreshSeconds: number;
  maxRefreshSeconds: number;
  defaultRefreshSeconds: number;
  failureRetrySeconds: number;
}

export interface OidcDiscoveryConfig {
  /** The `iss` of every JWT-SVID and the discovery document's `issuer`: an https URL, no trailing slash. */
  issuer: string;
  listenAddress: { host: string; port: number };
  tls: { certFile: string; keyFile: string };
}

export interface PostgresStoreConfig {
  /** Never holds a password (refused at load). */
  url: string;
  poolSize: number;
  /** Absolute; read when the store opens. Absent: LANYARD_POSTGRES_PASSWORD, else no password. */
  passwordFile?: string;
}

export interface ServerLimits {
  liveSessionsPerAgent: number;
  endedSessionsPerAgent: number;
  endedSessionsWindowSeconds: number;
  /** limits.max_session_ttl: the longest a StartSession session lasts (its SVIDs renew within it). */
  maxSessionTtlSeconds: number;
  watchers: number;
  watchersPerConnection: number;
  watchersPerIdentity: number;
}

export interface LoadConfigOptions {
  /** --config */
  configFile?: string;
  /** --data-dir: wins over the file and the environment. */
  dataDir?: string;
  /** --log-level */
  logLevel?: LogLevel;
  /** --agent-context-oid: wins over the file and LANYARD_AGENT_CONTEXT_OID. */
  agentContextOid?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Reads, validates and resolves the configuration. @throws ConfigError naming the file and field. */
export function loadConfig(options: LoadConfigOptions = {}): ServerConfig {
  const cwd = options.cwd ?? process.cwd();
  let raw: unknown = {};
  let baseDir = cwd;
  let source = 'defaults';
  if (options.configFile) {
    const file = path.resolve(cwd, options.configFile);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`, { cause: e });
    }
    raw = parseYaml(text, file);
    baseDir = path.dirname(file);
    source = file;
  }
  return resolveConfig(raw, { ...options, cwd, baseDir, source });
}

/**
 * Validates an already-parsed document (the contents of a config file) and resolves it.
 * @param ctx.baseDir directory that relative paths in the document are relative to.
 */
export function resolveConfig(
  raw: unknown,
  ctx: LoadConfigOptions & { baseDir: string; source: string; cwd: string },
): ServerConfig {
  const parsed = fileSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new ConfigError(`${ctx.source}: ${formatIssues(parsed.error.issues)}`);
  const f = parsed.data;
  const env = ctx.env ?? process.env;

  const dataDir = ctx.dataDir
    ? path.resolve(ctx.cwd, ctx.dataDir)
    : f.data_dir
      ? path.resolve(ctx.baseDir, f.data_dir)
      : path.resolve(ctx.cwd, env.LANYARD_DATA_DIR || CONFIG_DEFAULTS.data_dir);
  const adminSocketPath = f.admin.socket_path
    ? path.resolve(ctx.baseDir, f.admin.socket_path)
    : path.join(dataDir, CONFIG_DEFAULTS.admin_socket_path);
  if (Buffer.byteLength(adminSocketPath) > MAX_SOCKET_PATH_BYTES) {
    const field = f.admin.socket_path ? 'admin.socket_path' : 'data_dir';
    throw new ConfigError(
      `${ctx.source}: ${field}: the admin socket path ${adminSocketPath} is longer than ${MAX_SOCKET_PATH_BYTES} bytes, the Unix socket limit; choose a shorter path`,
    );
  }
  if (f.svid.default_ttl >= f.ca.ttl) {
    throw new ConfigError(
      `${ctx.source}: svid.default_ttl: ${f.svid.default_ttl}s must be shorter than ca.ttl (${f.ca.ttl}s): an SVID cannot outlive its CA`,
    );
  }

  const attestors: ServerConfig['attestors'] = {};
  if (f.attestors.join_token) attestors.joinToken = {};
  if (f.attestors.k8s_psat) {
    attestors.k8sPsat = {
      clusters: f.attestors.k8s_psat.clusters.map((c, i) => {
        const cluster: K8sPsatCluster = {
          name: c.name,
          audience: c.audience,
          jwksFile: readableFile(ctx, `attestors.k8s_psat.clusters[${i}].jwks_file`, c.jwks_file),
        };
        if (c.issuer !== undefined) cluster.issuer = c.issuer;
        if (c.allowed_service_accounts !== undefined)
          cluster.allowedServiceAccounts = c.allowed_service_accounts;
        return cluster;
      }),
    };
    const names = attestors.k8sPsat.clusters.map((c) => c.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) {
      throw new ConfigError(
        `${ctx.source}: attestors.k8s_psat.clusters: cluster name "${dup}" is used twice`,
      );
    }
  }
  if (f.attestors.x509pop) {
    attestors.x509pop = {
      caBundleFile: readableFile(ctx, 'attestors.x509pop.ca_bundle_file', f.attestors.x509pop.ca_bundle_file),
    };
  }

  const principalIssuers = f.principal_issuers.map((p, i): PrincipalIssuerConfig => ({
    issuer: p.issuer,
    audience: p.audience,
    jwksFile: readableFile(ctx, `principal_issuers[${i}].jwks_file`, p.jwks_file),
  }));
  const issuers = principalIssuers.map((p) => p.issuer);
  const dupIssuer = issuers.find((n, i) => issuers.indexOf(n) !== i);
  if (dupIssuer !== undefined) {
    throw new ConfigError(`${ctx.source}: principal_issuers: issuer "${dupIssuer}" is listed twice`);
  }

  const config: ServerConfig = {
    trustDomain: f.trust_domain,
    dataDir,
    listenAddress: listenAddressOf(f.listen_address, raw, env, ctx.source),
    adminSocketPath,
    caTtlSeconds: f.ca.ttl,
    caSigningWorkers: f.ca.signing_workers,
    svidDefaultTtlSeconds: f.svid.default_ttl,
    logLevel: ctx.logLevel ?? f.log.level,
    shutdownGraceSeconds: f.shutdown_grace,
    maxMessageBytes: f.max_message_bytes,
    attestors,
    principalIssuers,
    agentContextOid: agentContextOidOf(f.agent_context.oid, ctx, env),
    limits: {
      liveSessionsPerAgent: f.limits.live_sessions_per_agent,
      endedSessionsPerAgent: f.limits.ended_sessions_per_agent,
      endedSessionsWindowSeconds: f.limits.ended_sessions_window,
      maxSessionTtlSeconds: f.limits.max_session_ttl,
      watchers: f.limits.watchers,
      watchersPerConnection: f.limits.watchers_per_connection,
      watchersPerIdentity: f.limits.watchers_per_identity,
    },
    revocationFeed: {
      heartbeatSeconds: f.revocation_feed.heartbeat,
      stallTimeoutSeconds: f.revocation_feed.stall_timeout,
      warmSnapshot: f.revocation_feed.warm_snapshot,
    },
  };
  if (f.ca.upstream !== undefined) {
    const u = f.ca.upstream;
    config.caUpstream = {
      certFile: readableFile(ctx, CA_UPSTREAM_FIELDS.certFile, u.cert_file),
      keyFile: readableFile(ctx, CA_UPSTREAM_FIELDS.keyFile, u.key_file),
      bundleFile: readableFile(ctx, CA_UPSTREAM_FIELDS.bundleFile, u.bundle_file),
    };
  }
  if (f.audit !== undefined) {
    config.auditCheckpointIntervalSeconds = f.audit.checkpoint_interval;
    config.auditKeyRotationSeconds = f.audit.key_rotation_interval;
    config.auditWitnesses = f.audit.witnesses.map((w) =>
      'file' in w ? { file: path.resolve(ctx.baseDir, w.file) } : { syslog: w.syslog, facility: w.facility },
    );
    const i = f.audit.ingest;
    config.auditIngest = {
      maxRecords: i.max_records,
      maxBytes: i.max_bytes,
      windowSeconds: i.window,
      maxClockSkewSeconds: i.max_clock_skew,
      maxRecordAgeSeconds: i.max_record_age,
    };
  }
  if (f.policy !== undefined) {
    config.policyFiles = f.policy.files.map((p, i) => readableFile(ctx, `policy.files[${i}]`, p));
  }
  // Setting an address turns the listener on; `enabled: false` keeps it off even then.
  if (f.crl.enabled ?? f.crl.listen_address !== undefined) {
    const crlListen = parseHostPort(f.crl.listen_address ?? CONFIG_DEFAULTS.crl_listen_address);
    if (crlListen !== undefined) config.crlListenAddress = crlListen;
  }
  const metricsListen = metricsListenOf(f.metrics, ctx.source);
  if (metricsListen !== undefined) config.metricsListenAddress = metricsListen;
  if (f.federation !== undefined) config.federation = federationOf(f.federation, ctx);
  if (f.oidc_discovery !== undefined) config.oidcDiscovery = oidcDiscoveryOf(f.oidc_discovery, ctx);
  if (f.store?.postgres !== undefined) {
    const pg = f.store.postgres;
    if (postgresUrlHasPassword(pg.url)) {
      throw new ConfigError(
        `${ctx.source}: store.postgres.url: holds a password; put it in store.postgres.password_file or LANYARD_POSTGRES_PASSWORD`,
      );
    }
    config.postgres = { url: pg.url, poolSize: pg.pool_size };
    if (pg.password_file !== undefined) {
      config.postgres.passwordFile = readableFile(ctx, 'store.postgres.password_file', pg.password_file);
    }
  }
  if (ctx.source !== 'defaults') config.configFile = ctx.source;
  return config;
}

/** Setting an address turns the listener on; `enabled: false` keeps it off even then. Loopback unless allowed. */
function metricsListenOf(
  m: z.infer<typeof fileSchema>['metrics'],
  source: string,
): { host: string; port: number } | undefined {
  if (!(m.enabled ?? m.listen_address !== undefined)) return undefined;
  const listen = parseHostPort(m.listen_address ?? CONFIG_DEFAULTS.metrics_listen_address);
  if (listen === undefined) throw new ConfigError(`${source}: metrics.listen_address: expected host:port`);
  const problem = loopbackProblem(listen.host, m.allow_non_loopback);
  if (problem !== undefined) {
    throw new ConfigError(
      `${source}: metrics.listen_address: ${problem} (set metrics.allow_non_loopback: true)`,
    );
  }
  return listen;
}

function federationOf(
  f: NonNullable<z.infer<typeof fileSchema>['federation']>,
  ctx: { baseDir: string; source: string },
): FederationConfig {
  if (f.min_refresh > f.max_refresh) {
    throw new ConfigError(`${ctx.source}: federation.min_refresh: must not be above federation.max_refresh`);
  }
  const out: FederationConfig = {
    ...(f.refresh_hint !== undefined && { bundleRefreshHintSeconds: f.refresh_hint }),
    minRefreshSeconds: f.min_refresh,
    maxRefreshSeconds: f.max_refresh,
    defaultRefreshSeconds: f.default_refresh,
    failureRetrySeconds: f.failure_retry,
  };
  const e = f.bundle_endpoint;
  if (e !== undefined) {
    const listenAddress = parseHostPort(e.listen_address);
    if (listenAddress === undefined)
      throw new ConfigError(`${ctx.source}: federation.bundle_endpoint.listen_address`);
    if (e.profile === 'https_web') {
      if (e.cert_file === undefined || e.key_file === undefined) {
        throw new ConfigError(
          `${ctx.source}: federation.bundle_endpoint: https_web needs cert_file and key_file (a certificate for the endpoint's DNS name)`,
        );
      }
      out.bundleEndpoint = {
        listenAddress,
        tls: {
          profile: 'https_web',
          certFile: readableFile(ctx, 'federation.bundle_endpoint.cert_file', e.cert_file),
          keyFile: readableFile(ctx, 'federation.bundle_endpoint.key_file', e.key_file),
        },
      };
    } else {
      if (e.cert_file !== undefined || e.key_file !== undefined) {
        throw new ConfigError(
          `${ctx.source}: federation.bundle_endpoint: https_spiffe serves the server's own SVID; cert_file and key_file are for https_web`,
        );
      }
      out.bundleEndpoint = { listenAddress, tls: { profile: 'https_spiffe' } };
    }
  }
  return out;
}

function oidcDiscoveryOf(
  o: NonNullable<z.infer<typeof fileSchema>['oidc_discovery']>,
  ctx: { baseDir: string; source: string },
): OidcDiscoveryConfig {
  const listenAddress = parseHostPort(o.listen_address);
  if (listenAddress === undefined) throw new ConfigError(`${ctx.source}: oidc_discovery.listen_address`);
  return {
    issuer: oidcIssuerOf(o.issuer, ctx.source),
    listenAddress,
    tls: {
      certFile: readableFile(ctx, 'oidc_discovery.cert_file', o.cert_file),
      keyFile: readableFile(ctx, 'oidc_discovery.key_file', o.key_file),
    },
  };
}

/**
 * OpenID Connect Discovery §3 / §4.3: the issuer is an https URL with no query or fragment, and the relying
 * party compares it byte for byte with `iss`: one spelling, without a trailing slash.
 */
function oidcIssuerOf(issuer: string, source: string): string {
  const bad = (why: string): ConfigError =>
    new ConfigError(`${source}: oidc_discovery.issuer: ${why} (got ${JSON.stringify(issuer)})`);
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol !== 'https:') throw bad('must be an https URL (OpenID Connect Discovery requires TLS)');
  if (url.search !== '' || url.hash !== '' || issuer.includes('?') || issuer.includes('#')) {
    throw bad('must have no query or fragment');
  }
  if (url.username !== '' || url.password !== '') throw bad('must not hold credentials');
  const canonical = url.href.replace(/\/+$/, '');
  if (canonical !== issuer) throw bad(`write it as ${JSON.stringify(canonical)}`);
  return canonical;
}

/** --agent-context-oid, else the file's agent_context.oid, else LANYARD_AGENT_CONTEXT_OID, else the default. */
function agentContextOidOf(
  fromFile: string | undefined,
  ctx: LoadConfigOptions & { source: string },
  env: NodeJS.ProcessEnv,
): string {
  const [value, what] =
    ctx.agentContextOid !== undefined
      ? [ctx.agentContextOid, '--agent-context-oid']
      : fromFile !== undefined
        ? [fromFile, `${ctx.source}: agent_context.oid`]
        : env.LANYARD_AGENT_CONTEXT_OID
          ? [env.LANYARD_AGENT_CONTEXT_OID, 'LANYARD_AGENT_CONTEXT_OID']
          : [DEFAULT_AGENT_CONTEXT_OID, 'default'];
  const problem = oidWriteProblem(value);
  if (problem !== undefined) throw new ConfigError(`${what}: "${value}": ${problem}`);
  return value;
}

/**
 * The public listener's address: the file's listen_address when it has one, else LANYARD_LISTEN_ADDRESS (so a
 * server run without a file, a test for one, can move off the default port), else the default.
 */
function listenAddressOf(
  fromFile: string,
  raw: unknown,
  env: NodeJS.ProcessEnv,
  source: string,
): { host: string; port: number } {
  const inFile = typeof raw === 'object' && raw !== null && 'listen_address' in raw;
  const fromEnv = env.LANYARD_LISTEN_ADDRESS;
  if (!inFile && fromEnv) {
    const parsed = parseHostPort(fromEnv);
    if (parsed === undefined) {
      throw new ConfigError(
        `LANYARD_LISTEN_ADDRESS: expected host:port, e.g. "127.0.0.1:8081" or "[::1]:8081", got "${fromEnv}"`,
      );
    }
    return parsed;
  }
  // Checked by the schema's refine, so parseHostPort cannot fail here.
  const parsed = parseHostPort(fromFile);
  if (parsed === undefined) throw new ConfigError(`${source}: listen_address: expected host:port`);
  return parsed;
}

/** "host:port" or "[v6]:port" -> parts; undefined when malformed. */
export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? '', port };
}

/** host:port as grpc-js and people write it, bracketing IPv6. */
export function formatHostPort(a: { host: string; port: number }): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** A password in the URL itself (user:password@ or ?password=) would end up in logs and process listings. */
function postgresUrlHasPassword(url: string): boolean {
  try {
    const u = new URL(url);
    return u.password !== '' || u.searchParams.has('password');
  } catch {
    return false;
  }
}

function readableFile(ctx: { baseDir: string; source: string }, field: string, p: string): string {
  const file = path.resolve(ctx.baseDir, p);
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch {
    throw new ConfigError(`${ctx.source}: ${field}: cannot read ${file}`);
  }
  return file;
}

function parseYaml(text: string, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(`${file}: not valid YAML/JSON: ${doc.errors.map((e) => e.message).join('; ')}`);
  }
  return doc.toJS() as unknown;
}

function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const where = formatPath(issue.path);
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => `${formatPath([...issue.path, k])}: unknown field`).join('; ');
      }
      return `${where || '(top level)'}: ${issue.message}`;
    })
    .join('; ');
}

function formatPath(p: readonly PropertyKey[]): string {
  return p.reduce<string>(
    (acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)),
    '',
  );
}
