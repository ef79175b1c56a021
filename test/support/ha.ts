/**
 * Several Lanyard servers on one PostgreSQL database (docs/operator/ha.md), each with its own data dir (CA keys,
 * audit key, admin socket) and listener, all on the same database: in this process (startSharedServer), or as
 * separate OS processes that a test can SIGKILL (spawnSharedServer).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ServerConfig } from '../../src/server/config';
import { X509Bundle } from '../../src/bundle';
import { TrustDomain } from '../../src/spiffe';
import { ParsedCertificate } from '../../src/x509/certificate';
import { AdminClient } from '../../src/server/admin-client';
import type { PostgresCluster } from './postgres-cluster';
import { spawnServer, type ServerProcess } from './server-process';
import { startTestServer, tempDataDir, type TestServer } from './test-server';

/** One more server on `database`; its data dir is removed when the run ends (./tmp). */
export async function startSharedServer(
  cluster: PostgresCluster,
  database: string,
  config: Partial<ServerConfig> = {},
): Promise<TestServer> {
  const dir = tempDataDir();
  const passwordFile = path.join(dir, 'pg-password');
  fs.writeFileSync(passwordFile, `${cluster.password}\n`, { mode: 0o600 });
  return startTestServer({
    dir,
    config: { postgres: { url: cluster.url(database), poolSize: 5, passwordFile }, ...config },
  });
}

/** The SHA-256 of every root in the server's current bundle. */
export function rootsOf(s: TestServer): Set<string> {
  return new Set(s.running.ca.bundle().x509Authorities.map((c) => c.sha256Hex));
}

/** A bundle holding the roots of every server given (servers of different databases, for negative tests). */
export function unionBundle(servers: readonly TestServer[], trustDomain = 'lanyard.local'): X509Bundle {
  const ders = new Map<string, Uint8Array>();
  for (const s of servers) {
    for (const c of s.running.ca.bundle().x509Authorities) ders.set(c.sha256Hex, c.der);
  }
  return X509Bundle.fromDer(TrustDomain.parse(trustDomain), [...ders.values()]);
}

/** The root of the server's own active CA: the one its server SVID chains to. */
export function activeRootOf(s: TestServer): ParsedCertificate {
  const chain = s.running.ca.serverSvid().chain;
  const root = s.running.ca
    .bundle()
    .x509Authorities.find((r) => chain.some((c) => c.sha256Hex === r.sha256Hex || c.isSignedBy(r)));
  if (root === undefined) throw new Error('no root of the bundle signs the server SVID');
  return root;
}

/**
 * One server of a shared database as a separate OS process (`lanyard server run --config`), so that a test can
 * SIGKILL it mid-call and start it again on the same data dir, as an operator's supervisor would.
 */
export interface SharedServerProcess {
  readonly dataDir: string;
  readonly configFile: string;
  readonly adminSocket: string;
  /** The running process (replaced by `restart`). */
  readonly process: ServerProcess;
  /** host:port of its public TLS listener (a fresh port at each start). */
  readonly address: string;
  /** An admin client on its socket (replaced by `restart`). */
  readonly admin: AdminClient;
  /** SIGKILL: no shutdown, no drain, calls in flight are cut. Resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** Starts the server again on the same data dir and database. */
  restart(): Promise<void>;
}

/**
 * Starts a server process on `database` of `cluster` with its own data dir and listener. `yaml` adds config
 * lines (e.g. `svid: { default_ttl: 45s }`). Stop or kill it in an after hook: the process outlives a failed test.
 */
export async function spawnSharedServer(
  cluster: PostgresCluster,
  database: string,
  yaml: readonly string[] = [],
): Promise<SharedServerProcess> {
  const dataDir = tempDataDir();
  const passwordFile = path.join(dataDir, 'pg-password');
  fs.writeFileSync(passwordFile, `${cluster.password}\n`, { mode: 0o600 });
  const adminSocket = path.join(dataDir, 'admin.sock');
  const configFile = path.join(dataDir, 'server.yaml');
  fs.writeFileSync(
    configFile,
    [
      `data_dir: ${JSON.stringify(dataDir)}`,
      'listen_address: 127.0.0.1:0',
      `admin: { socket_path: ${JSON.stringify(adminSocket)} }`,
      'attestors: { join_token: {} }',
      'store:',
      '  postgres:',
      `    url: ${JSON.stringify(cluster.url(database))}`,
      '    pool_size: 10',
      `    password_file: ${JSON.stringify(passwordFile)}`,
      ...yaml,
      '',
    ].join('\n'),
  );
  let current: ServerProcess;
  let address: string;
  let admin: AdminClient | undefined;
  const start = async (): Promise<void> => {
    current = spawnServer(['--config', configFile]);
    try {
      address = await current.ready;
    } catch (e) {
      current.kill();
      throw e;
    }
    admin = new AdminClient(adminSocket, { timeoutMs: 60_000 });
  };
  const gone = async (signal: NodeJS.Signals): Promise<void> => {
    admin?.close();
    admin = undefined;
    if (current.child.exitCode === null && current.child.signalCode === null) current.child.kill(signal);
    await current.exited;
  };
  await start();
  return {
    dataDir,
    configFile,
    adminSocket,
    get process() {
      return current;
    },
    get address() {
      return address;
    },
    get admin() {
      if (admin === undefined) throw new Error(`the server of ${dataDir} is not running`);
      return admin;
    },
    kill: () => gone('SIGKILL'),
    stop: () => gone('SIGTERM'),
    restart: start,
  };
}

/** The trust bundle a server process publishes (GetBundle on its admin socket). */
export async function bundleOfProcess(
  s: SharedServerProcess,
  trustDomain = 'lanyard.local',
): Promise<X509Bundle> {
  const res = await s.admin.getBundle({});
  return X509Bundle.fromDer(
    TrustDomain.parse(trustDomain),
    (res.bundle?.x509Authorities ?? []).map((d) => new Uint8Array(d)),
  );
}
