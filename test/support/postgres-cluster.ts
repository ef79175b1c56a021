/**
 * A throwaway PostgreSQL cluster for the tests that need a real database: initdb in a temp dir, listening only on
 * a Unix socket in that dir (no TCP), password authentication (scram-sha-256) for its one superuser, stopped and
 * removed by stop(). Debian's binaries are installed by scripts/install-postgres.sh when missing.
 *
 * initdb and postgres refuse to run as root, so as root the cluster runs as Debian's `postgres` system user
 * (created by the package) via runuser; the socket dir is then that user's, and root connects to it as usual.
 *
 * Start it from a before() hook of the suites that use it (it takes a few seconds), never from a root hook.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';

const INSTALL = path.join(__dirname, '..', '..', 'scripts', 'install-postgres.sh');
const SUPERUSER = 'lanyard_test';

/** The newest Debian PostgreSQL bin dir with initdb, postgres and pg_ctl, installing the package when none is. */
export function ensurePostgres(): string {
  const find = (): string | undefined => {
    const root = '/usr/lib/postgresql';
    if (!fs.existsSync(root)) return undefined;
    return fs
      .readdirSync(root)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
      .map((v) => path.join(root, v, 'bin'))
      .find((d) => ['initdb', 'postgres', 'pg_ctl'].every((b) => fs.existsSync(path.join(d, b))));
  };
  const existing = find();
  if (existing !== undefined) return existing;
  const r = spawnSync(INSTALL, [], { encoding: 'utf8', timeout: 14 * 60_000 });
  const installed = find();
  if (r.status !== 0 || installed === undefined) {
    throw new Error(`scripts/install-postgres.sh failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  }
  return installed;
}

export interface PostgresCluster {
  /** The socket directory: libpq/pg take it as the host. */
  readonly socketDir: string;
  readonly port: number;
  readonly user: string;
  /** The superuser's password, also in passwordFile (0600). */
  readonly password: string;
  readonly passwordFile: string;
  /** A connection URL for `database`, without the password (pass it separately, as the server config does). */
  url(database: string): string;
  /** Creates an empty database and returns its name. */
  createDatabase(prefix?: string): Promise<string>;
  dropDatabase(name: string): Promise<void>;
  /** Runs one SQL statement as the superuser on `database`. */
  query(database: string, sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** Stops the server (immediate) and deletes the cluster's files. Idempotent. */
  stop(): Promise<void>;
}

/** The uid/gid to run initdb and postgres as: ourselves, or Debian's `postgres` user when we are root. */
function runAs(): { user?: string; uid: number; gid: number } {
  if (process.getuid?.() !== 0) return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error('running as root, and there is no `postgres` system user to run the test cluster as');
  }
  return { user: 'postgres', uid: Number(uid), gid: Number(gid) };
}

function run(bin: string, args: string[], as: { user?: string }, env: NodeJS.ProcessEnv = {}): string {
  const [file, argv] = as.user ? ['runuser', ['-u', as.user, '--', bin, ...args]] : [bin, args];
  return execFileSync(file, argv, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_ALL: 'C', ...env },
    timeout: 120_000,
  });
}

let counter = 0;

export interface PostgresClusterOptions {
  /**
   * fsync, synchronous_commit and full_page_writes on, as a production database runs: for benchmarks of commit
   * paths (a commit then waits for its WAL flush). Tests leave it off: their durability across a crash of the
   * machine does not matter, their speed does.
   */
  durable?: boolean;
}

export async function startPostgresCluster(opts: PostgresClusterOptions = {}): Promise<PostgresCluster> {
  const bindir = ensurePostgres();
  const as = runAs();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-pg-'));
  const dataDir = path.join(dir, 'data');
  const socketDir = path.join(dir, 'sock');
  const password = randomBytes(18).toString('base64url');
  const passwordFile = path.join(dir, 'password');
  // The superuser's password, for initdb (read by the cluster's user) and for the tests (the store reads it).
  fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  fs.mkdirSync(socketDir, { mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  fs.chownSync(dir, as.uid, as.gid);
  fs.chownSync(socketDir, as.uid, as.gid);
  fs.chownSync(passwordFile, as.uid, as.gid);
  // A port number only names the socket file (.s.PGSQL.<port>); nothing listens on TCP.
  const port = 20000 + ((process.pid * 7 + counter++) % 20000);
  const stop = async (): Promise<void> => {
    if (!fs.existsSync(dir)) return;
    try {
      if (fs.existsSync(path.join(dataDir, 'postmaster.pid'))) {
        run(path.join(bindir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], as);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    run(
      path.join(bindir, 'initdb'),
      [
        '-D',
        dataDir,
        '-U',
        SUPERUSER,
        '--pwfile',
        passwordFile,
        '--auth-local=scram-sha-256',
        '--auth-host=reject',
        '-E',
        'UTF8',
        '--no-sync',
      ],
      as,
    );
    const options = [
      `-c listen_addresses=''`,
      `-c unix_socket_directories=${socketDir}`,
      `-c port=${port}`,
      // A throwaway cluster: durability of its files across a machine crash does not matter, speed does.
      ...(opts.durable === true
        ? ['-c fsync=on', '-c synchronous_commit=on', '-c full_page_writes=on']
        : ['-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off']),
      '-c max_connections=300',
      '-c shared_buffers=32MB',
    ].join(' ');
    run(
      path.join(bindir, 'pg_ctl'),
      ['-D', dataDir, '-l', path.join(dir, 'postgres.log'), '-o', options, '-w', '-t', '60', 'start'],
      as,
    );
  } catch (e) {
    const log = path.join(dir, 'postgres.log');
    const detail = fs.existsSync(log) ? `\n${fs.readFileSync(log, 'utf8')}` : '';
    await stop();
    throw new Error(`could not start the test PostgreSQL cluster: ${String(e)}${detail}`);
  }
  // Stop the server even when mocha exits without running after() hooks (e.g. --bail or a crash).
  const onExit = (): void => {
    try {
      if (fs.existsSync(path.join(dataDir, 'postmaster.pid'))) {
        run(path.join(bindir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', 'stop'], as);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  };
  process.once('exit', onExit);

  const connect = async (database: string): Promise<Client> => {
    const client = new Client({ host: socketDir, port, user: SUPERUSER, password, database });
    await client.connect();
    return client;
  };
  const query = async (
    database: string,
    sql: string,
    params: unknown[] = [],
  ): Promise<Record<string, unknown>[]> => {
    const client = await connect(database);
    try {
      return (await client.query<Record<string, unknown>>(sql, params)).rows;
    } finally {
      await client.end();
    }
  };
  let databases = 0;
  return {
    socketDir,
    port,
    user: SUPERUSER,
    password,
    passwordFile,
    url: (database) =>
      `postgresql://${SUPERUSER}@/${database}?host=${encodeURIComponent(socketDir)}&port=${port}`,
    async createDatabase(prefix = 'lanyard') {
      const name = `${prefix}_${process.pid}_${++databases}`;
      // Identifiers cannot be bound as parameters; the name is built here from safe characters only.
      await query('postgres', `CREATE DATABASE "${name}"`);
      return name;
    },
    async dropDatabase(name) {
      await query('postgres', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
    query,
    async stop() {
      process.removeListener('exit', onExit);
      await stop();
    },
  };
}

/** What a suite on a throwaway cluster reads in its hooks and tests. */
export interface PostgresSuite {
  /** The suite's cluster: started once, before the first test. */
  readonly cluster: PostgresCluster;
  /** The current test's own database, made fresh before it and dropped after it. */
  readonly database: string;
}

/**
 * Registers the mocha hooks that start a throwaway cluster before the suite (installing Debian's postgresql on a
 * bare machine can take minutes; a present one starts in seconds) and stop it after. Returns the cluster's getter,
 * for hooks and tests. Call it inside `describe`, before the suite's own hooks.
 */
export function usePostgresCluster(): () => PostgresCluster {
  let cluster: PostgresCluster | undefined;
  before(async function () {
    this.timeout(15 * 60_000);
    cluster = await startPostgresCluster();
  });
  after(async () => {
    await cluster?.stop();
  });
  return () => {
    if (cluster === undefined)
      throw new Error('the PostgreSQL cluster has not started (use it inside hooks and tests)');
    return cluster;
  };
}

/**
 * Registers the mocha hooks of a suite on a throwaway cluster: the cluster starts before the suite (installing
 * Debian's postgresql on a bare machine can take minutes) and stops after it; each test gets a fresh database
 * named after `prefix` (the suite's own beforeEach hooks, registered later, run after it). `beforeDrop` runs after each test before its database is dropped: whatever still holds a
 * connection (a server, a store) must let go there. Call it inside `describe`, before the suite's own hooks.
 */
export function usePostgresDatabase(
  prefix: string,
  options: { beforeDrop?: () => Promise<void> | void } = {},
): PostgresSuite {
  const cluster = usePostgresCluster();
  let database: string | undefined;
  beforeEach(async () => {
    database = await cluster().createDatabase(prefix);
  });
  afterEach(async () => {
    await options.beforeDrop?.();
    if (database !== undefined) await cluster().dropDatabase(database);
    database = undefined;
  });
  return {
    get cluster(): PostgresCluster {
      return cluster();
    },
    get database(): string {
      if (database === undefined) throw new Error('no database outside a test');
      return database;
    },
  };
}
