/**
 * `npm run bench:ha`: Renew/s with 1, 2 and 3 Lanyard servers on one PostgreSQL, in one run. A throwaway
 * cluster (test/support/postgres-cluster.ts: Debian's postgresql through scripts/install-postgres.sh, initdb in a
 * temp dir, Unix socket only), servers as separate `lanyard server run` processes on 127.0.0.1, each with its
 * own data dir. Server 1 starts, is measured, then server 2 joins and both are measured, then server 3. At each
 * step 16 then 64 clients (one worker thread, scripts/bench-issuance-clients.ts) are dealt round-robin over the
 * running servers, each client on its own connection to one server: each attests once with a join token, then
 * Renews over mTLS. Printed beside the raw P-256 sign rate of the same run, with ratios to the 1-server figure.
 * The cluster is durable (fsync and synchronous_commit on, as in production): a commit waits for its WAL flush.
 * Each measurement also prints its issuance calls (Attest + Renew) per WAL flush, from PostgreSQL's pg_stat_wal:
 * how many calls each durable commit carried (group commit), whatever the servers' code.
 * When PostgreSQL cannot be installed, says so and skips (exit 0).
 *
 *   npm run bench:ha [-- --renews 480] [--budget 10]
 *   (--renews: Renew calls per measurement, shared by the clients; --budget: seconds a phase may take at most)
 *   (npm run bench runs it at the end)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AdminClient } from '../src/server/admin-client';
import { PgStore } from '../src/store/postgres/pg-store';
import { sharedTransaction } from '../src/store/store';
import { startPostgresCluster, type PostgresCluster } from '../test/support/postgres-cluster';
import { spawnServer, type ServerProcess } from '../test/support/server-process';
import type { PhaseResult } from './bench-issuance-clients';
import { arg, fmt, makeTokens, percentile, rawSignRate, runClients } from './bench-issuance';

const SERVERS = [1, 2, 3] as const;
const CONCURRENCY = [16, 64] as const;
const TRUST_DOMAIN = 'bench.lanyard.local';
const SPIFFE_ID = `spiffe://${TRUST_DOMAIN}/bench/agent`;

export interface HaBenchOptions {
  /** Renew calls per measurement, dealt evenly over its clients. Default 480. */
  renewsPerMeasurement?: number;
  /** A phase stops starting calls after this many seconds. Default 10. */
  phaseBudgetSeconds?: number;
  /** The raw P-256 sign rate when the caller measured it in this run already (scripts/bench.ts). */
  rawSignPerSec?: number;
}

interface Server {
  process: ServerProcess;
  address: string;
  admin: AdminClient;
  dataDir: string;
}

interface Row {
  servers: number;
  clients: number;
  rate: number;
  renew: PhaseResult;
  /** Attest + Renew calls per WAL flush during the measurement. */
  callsPerFlush: number;
}

/**
 * WAL flushes so far (pg_stat_wal.wal_sync). Backends publish their counters once idle for about a second, so
 * this waits for the servers' connections to go quiet first.
 */
async function walFlushes(cluster: PostgresCluster): Promise<number> {
  await new Promise((r) => setTimeout(r, 2_000));
  const rows = await cluster.query('postgres', 'SELECT wal_sync FROM pg_stat_wal');
  return Number(rows[0]?.wal_sync ?? 0);
}

const out = (s: string): boolean => process.stdout.write(s);

function load(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');
}

/** One more `lanyard server run` process on `database`, with its own data dir; resolves once it listens. */
async function startServer(cluster: PostgresCluster, database: string, n: number): Promise<Server> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `lanyard-bench-ha-${n}-`));
  const config = path.join(dataDir, 'server.yaml');
  // The password file of the cluster (0600, ours): the server reads it, it never goes in the URL.
  fs.writeFileSync(
    config,
    [
      `trust_domain: ${TRUST_DOMAIN}`,
      `data_dir: ${JSON.stringify(dataDir)}`,
      'listen_address: 127.0.0.1:0',
      // Errors only: a bench must not measure log formatting, but a failure must not go unseen.
      'log: { level: error }',
      'store:',
      '  postgres:',
      `    url: ${JSON.stringify(cluster.url(database))}`,
      `    password_file: ${JSON.stringify(cluster.passwordFile)}`,
      '',
    ].join('\n'),
  );
  const proc = spawnServer(['--config', config]);
  // After the banner, anything the server prints on stderr is an error worth seeing.
  void proc.ready.then(
    () => proc.child.stderr.on('data', (d: Buffer) => process.stderr.write(d)),
    () => undefined,
  );
  let address: string;
  try {
    address = await proc.ready;
  } catch (e) {
    proc.kill();
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  return {
    process: proc,
    address,
    admin: new AdminClient(path.join(dataDir, 'admin.sock'), {
      timeoutMs: 60_000,
    }),
    dataDir,
  };
}

async function stopServer(s: Server): Promise<void> {
  s.admin.close();
  if (s.process.child.exitCode === null && s.process.child.signalCode === null) {
    s.process.child.kill('SIGTERM');
    const killer = setTimeout(() => s.process.kill(), 30_000);
    await s.process.exited;
    clearTimeout(killer);
  }
  fs.rmSync(s.dataDir, { recursive: true, force: true });
}

/** Waits until `s` hands out a bundle holding `roots` authorities (every running server's), and returns it. */
async function bundleWith(s: Server, roots: number): Promise<string> {
  const until = Date.now() + 30_000;
  for (;;) {
    const { bundle } = await s.admin.getBundle({});
    if (bundle !== undefined && bundle.x509Authorities.length >= roots) return bundle.x509AuthoritiesPem;
    if (Date.now() > until) throw new Error(`the bundle did not reach ${roots} roots`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The store alone, in this process, on the same durable cluster: CALLS concurrent calls that each append an audit
 * record (what a Renew writes), committed one transaction per call (`Store.transaction`, what issuance did before
 * group commit) or through `sharedTransaction`, alternated ROUNDS times so both see the same load. Without TLS,
 * signing and gRPC this shows what the commit path itself costs.
 */
async function storeCommitPhase(cluster: PostgresCluster): Promise<void> {
  const CALLS = 64;
  const PER_MEASUREMENT = 640;
  const ROUNDS = 3;
  const database = await cluster.createDatabase('bench_commit');
  const store = await PgStore.open({
    url: cluster.url(database),
    password: cluster.password,
    poolSize: 10,
  });
  const chain = `spiffe://${TRUST_DOMAIN}/lanyard/server`;
  try {
    out(`  -- the store alone: ${CALLS} concurrent calls, each appending one audit record (one process)\n`);
    const rates: Record<'per call' | 'shared', number[]> = {
      'per call': [],
      shared: [],
    };
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ['per call', 'shared'] as const) {
        let next = 0;
        const started = Date.now();
        const flushesBefore = await walFlushes(cluster);
        const t0 = performance.now();
        await Promise.all(
          Array.from({ length: CALLS }, async () => {
            while (next < PER_MEASUREMENT) {
              next++;
              const append = (tx: Parameters<Parameters<PgStore['transaction']>[0]>[0]) =>
                tx.audit.append(
                  chain,
                  {
                    event: 'svid.renew',
                    decision: 'allow',
                    subject: SPIFFE_ID,
                  },
                  new Date(started),
                );
              await (mode === 'shared' ? sharedTransaction(store, append) : store.transaction(append));
            }
          }),
        );
        const rate = PER_MEASUREMENT / ((performance.now() - t0) / 1000);
        const flushes = (await walFlushes(cluster)) - flushesBefore;
        rates[mode].push(rate);
        out(
          `  ${`store: audit append, ${mode === 'shared' ? 'sharedTransaction' : 'transaction per call'}`.padEnd(58)} ` +
            `${fmt(rate).padStart(10)} /s   ${(PER_MEASUREMENT / Math.max(1, flushes)).toFixed(1)} calls per WAL flush\n`,
        );
      }
    }
    const ratios = rates.shared.map((r, i) => (r / rates['per call'][i]!).toFixed(2));
    out(`  ${'store: shared / per call, each round'.padEnd(58)} ${ratios.join(', ').padStart(10)}\n`);
  } finally {
    await store.close();
  }
}

export async function runHaBench(options: HaBenchOptions = {}): Promise<void> {
  const renews = options.renewsPerMeasurement ?? 480;
  const budgetMs = (options.phaseBudgetSeconds ?? 10) * 1000;
  out(
    `\nSeveral servers on one PostgreSQL (Renew over mTLS; servers are separate processes; clients in one ` +
      `worker thread, round-robin over the running servers, one connection each; ${os.cpus().length} CPUs)\n`,
  );
  out(`  load average at start (uptime): ${load()}\n`);
  const rawSign = options.rawSignPerSec ?? rawSignRate(1);
  out(`  ${'node:crypto ECDSA P-256 sign (baseline)'.padEnd(58)} ${fmt(rawSign).padStart(10)} /s\n`);

  let cluster: PostgresCluster;
  try {
    cluster = await startPostgresCluster({ durable: true });
  } catch (e) {
    out(
      `  SKIPPED: no PostgreSQL to run on (scripts/install-postgres.sh could not install or start it):\n` +
        `  ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}\n`,
    );
    return;
  }
  const servers: Server[] = [];
  const rows: Row[] = [];
  let failed = 0;
  try {
    await storeCommitPhase(cluster);
    const database = await cluster.createDatabase('bench_ha');
    for (const n of SERVERS) {
      servers.push(await startServer(cluster, database, n));
      if (n === 1) {
        await servers[0]!.admin.createEntry({
          entry: {
            spiffeId: SPIFFE_ID,
            selectors: [{ type: 'bench', value: 'agent' }],
          },
        });
      }
      // The newest server published the union of every server's roots; clients of any server need all of them.
      const bundlePem = await bundleWith(servers[n - 1]!, n);
      out(`  -- ${n} server${n > 1 ? 's' : ''} on one PostgreSQL\n`);
      for (const clients of CONCURRENCY) {
        // Join tokens are shared by every server: server 1's admin socket makes them for all.
        const tokens = await makeTokens(servers[0]!.admin, SPIFFE_ID, clients, 1);
        const flushesBefore = await walFlushes(cluster);
        const result = await runClients({
          address: servers[0]!.address,
          addresses: Array.from({ length: clients }, (_, i) => servers[i % n]!.address),
          trustDomain: TRUST_DOMAIN,
          bundlePem,
          tokens,
          renewsPerClient: Math.ceil(renews / clients),
          phaseBudgetMs: budgetMs,
        });
        const flushes = (await walFlushes(cluster)) - flushesBefore;
        const r = result.renew;
        failed += r.errors + result.attest.errors;
        const rate = r.ops / (r.elapsedMs / 1000);
        const callsPerFlush = (r.ops + result.attest.ops) / Math.max(1, flushes);
        rows.push({ servers: n, clients, rate, renew: r, callsPerFlush });
        out(
          `  ${`Renew (mTLS), ${n} server${n > 1 ? 's' : ''}, N=${clients} concurrent`.padEnd(58)} ` +
            `${fmt(rate).padStart(10)} /s   p50 ${percentile(r.latenciesMs, 50).toFixed(1)} ms, ` +
            `p99 ${percentile(r.latenciesMs, 99).toFixed(1)} ms, ${r.ops} ok` +
            `${r.errors > 0 ? `, ${r.errors} FAILED (${r.firstError ?? '?'})` : ''}` +
            `, ${callsPerFlush.toFixed(1)} calls per WAL flush\n`,
        );
      }
    }
    out(`  load average at end (uptime): ${load()}\n`);
    out('\nRatios (same run)\n');
    for (const row of rows) {
      const one = rows.find((r) => r.servers === 1 && r.clients === row.clients)!;
      const tag = `Renew/s, ${row.servers} server${row.servers > 1 ? 's' : ''}, N=${row.clients}`;
      out(
        `  ${`${tag} / 1 server, same N`.padEnd(58)} ${(row.rate / one.rate).toFixed(2).padStart(10)}` +
          `   / raw P-256 sign ${(row.rate / rawSign).toFixed(3)}\n`,
      );
    }
  } finally {
    await Promise.all(servers.map(stopServer));
    await cluster.stop();
  }
  if (failed > 0) {
    // A rate measured over failing calls is no figure: the run fails.
    process.stderr.write(`bench-ha: ${failed} calls FAILED\n`);
    process.exitCode = 1;
  }
}

/** --renews and --budget from the command line (also when scripts/bench.ts runs this). */
export function haOptionsFromArgv(): HaBenchOptions {
  const renews = arg('--renews');
  const budget = arg('--budget');
  return {
    ...(renews !== undefined && { renewsPerMeasurement: Math.ceil(renews) }),
    ...(budget !== undefined && { phaseBudgetSeconds: budget }),
  };
}

if (require.main === module) {
  runHaBench(haOptionsFromArgv()).catch((e: unknown) => {
    process.stderr.write(`bench-ha: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  });
}
