/**
 * End-to-end issuance over gRPC: a real server (SQLite in a temp data dir, TLS on 127.0.0.1:0), one
 * registration entry, then N = 1, 4, 16, 64 concurrent clients (worker thread, one connection each) doing Attest
 * with pre-made join tokens, then Renew over mTLS. Printed beside the raw P-256 sign rate of the same run and the
 * transport's ceiling: the same clients calling a bare grpc-js server with Renew's sizes (bench-transport-echo.ts).
 * Bounded: a fixed number of calls per client, and each phase stops starting calls after --budget seconds.
 * Everything is on loopback; the data dir is removed at the end.
 *
 *   npx tsx scripts/bench-issuance.ts [--ops 32] [--budget 60] [--seconds 1] [--workers 0,2]
 *                                     [--clients 1,4,16,64] [--phases attest,renew] [--client-threads 1]
 *                                     [--renew-perf FILE [--renew-perf-record]]
 *   (--workers: the ca.signing_workers settings to compare, one server each; --clients: the concurrency levels;
 *   --phases: which calls to time, Renew needs the SVIDs Attest gave, so Attest always runs; --client-threads:
 *   the worker threads the clients are dealt over, so that one client thread is not what limits the rate;
 *   --renew-perf: `perf stat` counts the process's syscalls by thread over each Renew phase into FILE.<setting>,
 *   or with --renew-perf-record records on-CPU samples of every thread there)
 *   (on Linux each phase also prints its CPU per call by thread: the server's, the clients', the others')
 *   (npm run bench runs it after scripts/bench.ts; run alone, it measures the in-process issuance figure itself)
 */
import { randomBytes, sign } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { AdminClient } from '../src/server/admin-client';
import { loadConfig } from '../src/server/config';
import { createLogger } from '../src/internal/logging';
import { startServer } from '../src/server/run';
import { SqliteStore } from '../src/store/sqlite/sqlite-store';
import { createCsr, parseCsr } from '../src/x509/csr';
import { generateSigningKeyPair } from '../src/x509/keys';
import { issueX509Svid } from '../src/x509/profiles';
import { asIssuer, createPki, TD } from '../test/support/pki';
import type { ClientsJob, ClientsProbe, ClientsResult, PhaseResult } from './bench-issuance-clients';
import { type PhaseCpu, splitCpu, startPerf, stopPerf } from './bench-issuance-cpu';
import { startEchoServer } from './bench-transport-echo';

const CONCURRENCY = [1, 4, 16, 64];
const TRUST_DOMAIN = 'bench.lanyard.local';

export interface IssuanceBenchOptions {
  /** Attest calls per client, and as many Renew calls. Default 32. */
  opsPerClient?: number;
  /** Each phase stops starting calls after this many seconds. Default 60. */
  phaseBudgetSeconds?: number;
  /** Seconds for the raw sign baseline when none is passed in. Default 1. */
  baselineSeconds?: number;
  /** The raw P-256 sign rate when the caller measured it in this run already (scripts/bench.ts). */
  rawSignPerSec?: number;
  /** `parseCsr + issueX509Svid` in process, same run (scripts/bench.ts): what the server could reach at best. */
  inProcessIssuePerSec?: number;
  /** The server's ca.signing_workers settings to run, one server each. Default 0 and 2. */
  signingWorkers?: number[];
  /** Concurrent clients per round. Default 1, 4, 16, 64. */
  clients?: number[];
  /** Print Attest figures too (default true); Attest always runs, Renew needs the SVIDs it gives. */
  showAttest?: boolean;
  /** Worker threads the clients are dealt over (client i to thread i mod threads). Default 1. */
  clientThreads?: number;
  /** `perf stat` counts this process's syscalls over each Renew phase into this file (suffixed per server). */
  renewPerf?: string;
  /** `record` instead: on-CPU samples of every thread over each Renew phase (perf report reads them). */
  renewPerfMode?: 'stat' | 'record';
}

/** Work the main thread does at a phase's gate, once every client thread is there and before they start. */
export type PhaseHooks = Partial<Record<'attest' | 'renew' | 'renewed' | 'echo', () => Promise<void>>>;

/** A positive number given as `name value` on the command line, or undefined. */
export function arg(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} needs a positive number`);
  return v;
}

/** node:crypto ECDSA P-256 signatures per second over a certificate-sized message (as scripts/bench.ts). */
export function rawSignRate(seconds: number): number {
  const { privateKey } = generateSigningKeyPair('ec-p256');
  const message = randomBytes(400);
  for (let i = 0; i < 200; i++) sign('sha256', message, privateKey);
  const budget = seconds * 1e9;
  const start = process.hrtime.bigint();
  let ops = 0;
  let elapsed = 0;
  while (elapsed < budget) {
    for (let i = 0; i < 8; i++) sign('sha256', message, privateKey);
    ops += 8;
    elapsed = Number(process.hrtime.bigint() - start);
  }
  return ops / (elapsed / 1e9);
}

/** `parseCsr + issueX509Svid` in this thread (as scripts/bench.ts): the best a server's one thread could do. */
function inProcessIssueRate(seconds: number): number {
  const pki = createPki(TD);
  const issuer = asIssuer(pki.intermediate);
  const csrDer = createCsr(generateSigningKeyPair('ec-p256').privateKey).der;
  const once = (): void => {
    const csr = parseCsr(csrDer);
    issueX509Svid({ spiffeId: `spiffe://${TD}/agent`, publicKey: csr.publicKey, issuer, ttlSeconds: 3600 });
  };
  for (let i = 0; i < 100; i++) once();
  const budget = seconds * 1e9;
  const start = process.hrtime.bigint();
  let ops = 0;
  let elapsed = 0;
  while (elapsed < budget) {
    for (let i = 0; i < 8; i++) once();
    ops += 8;
    elapsed = Number(process.hrtime.bigint() - start);
  }
  return ops / (elapsed / 1e9);
}

export function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** How often runClients asks its worker where it is, and how long the worker may take to answer. */
const PROBE_EVERY_MS = 15_000;
/**
 * No call settled for this long while calls are pending: every call has a 30 s deadline, so grpc-js should have
 * failed them by now; the run stops and says what it saw instead of waiting forever.
 */
const STALL_MS = 120_000;
/** A probe unanswered this long: the worker's thread is not running its event loop (its key making takes less). */
const UNANSWERED_MS = 180_000;

/**
 * Runs the clients of `job` in `threads` worker threads (client i in thread i mod threads), each phase starting in
 * all of them together, and merges what they measured: one phase from the first start to the last end.
 */
export async function runClients(job: ClientsJob, threads = 1, hooks?: PhaseHooks): Promise<ClientsResult> {
  const n = Math.max(1, Math.min(threads, job.tokens.length));
  const parts: ClientsJob[] = Array.from({ length: n }, (_, t) => {
    const mine = (_: unknown, i: number): boolean => i % n === t;
    return {
      ...job,
      tokens: job.tokens.filter(mine),
      ...(job.addresses !== undefined && { addresses: job.addresses.filter(mine) }),
      gated: n > 1 || hooks !== undefined,
    };
  });
  const ready = new Map<string, number>();
  const workers: Worker[] = [];
  // A phase starts in every worker once all of them are at its start (connected, keys made).
  const onReady = (phase: string): void => {
    const count = (ready.get(phase) ?? 0) + 1;
    ready.set(phase, count);
    if (count !== n) return;
    const go = (): void => {
      for (const w of workers) w.postMessage({ go: phase });
    };
    const hook = hooks?.[phase as keyof PhaseHooks];
    if (hook === undefined) go();
    else
      hook().then(go, (e: unknown) => {
        process.stderr.write(`bench: the ${phase} hook failed (${String(e)}); going on without it\n`);
        go();
      });
  };
  const results = await Promise.all(parts.map((part) => runWorker(part, workers, onReady))).catch(
    async (e: unknown) => {
      // The others may be waiting at a phase's start for the one that failed.
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    },
  );
  const echoes = results.flatMap((r) => (r.echo !== undefined ? [r.echo] : []));
  return {
    attest: mergePhases(results.map((r) => r.attest)),
    renew: mergePhases(results.map((r) => r.renew)),
    ...(echoes.length === results.length && { echo: mergePhases(echoes) }),
  };
}

/** The phases of several workers as one: calls and errors summed, from the first start to the last end. */
function mergePhases(phases: PhaseResult[]): PhaseResult {
  if (phases.length === 1) return phases[0]!;
  const startedAtMs = Math.min(...phases.map((p) => p.startedAtMs));
  const endedAtMs = Math.max(...phases.map((p) => p.endedAtMs));
  const firstError = phases.find((p) => p.firstError !== undefined)?.firstError;
  const first = phases.find((p) => p.startedAtMs === startedAtMs);
  const last = phases.find((p) => p.endedAtMs === endedAtMs);
  const cpu: PhaseCpu | undefined =
    first?.cpu !== undefined && last?.cpu !== undefined && phases.every((p) => p.cpu !== undefined)
      ? { start: first.cpu.start, end: last.cpu.end, clients: phases.flatMap((p) => p.cpu!.clients) }
      : undefined;
  return {
    ...(cpu !== undefined && { cpu }),
    ops: phases.reduce((a, p) => a + p.ops, 0),
    errors: phases.reduce((a, p) => a + p.errors, 0),
    ...(firstError !== undefined && { firstError }),
    elapsedMs: endedAtMs - startedAtMs,
    startedAtMs,
    endedAtMs,
    latenciesMs: phases.flatMap((p) => p.latenciesMs).sort((a, b) => a - b),
  };
}

function runWorker(
  job: ClientsJob,
  workers: Worker[],
  onReady: (phase: string) => void,
): Promise<ClientsResult> {
  return new Promise((resolve, reject) => {
    // tsx's loader does not follow into worker threads: the worker registers tsx's require hook itself.
    const file = path.join(__dirname, 'bench-issuance-clients.ts');
    const worker = new Worker(`require('tsx/cjs'); require(${JSON.stringify(file)});`, {
      eval: true,
      workerData: job,
    });
    workers.push(worker);
    // Two runs stalled with every process idle, cause unknown: the worker is asked where it is every
    // PROBE_EVERY_MS, and a worker that stops answering (its thread blocked outside its event loop) or whose
    // calls stop settling (a call grpc-js neither answers nor fails) ends the run with what it said last.
    let last: { probe: ClientsProbe } | undefined;
    let progressAt = performance.now();
    // When the oldest probe still unanswered was sent.
    let unanswered: number | undefined;
    let done = false;
    const finish = (settle: () => void): void => {
      if (done) return;
      done = true;
      clearInterval(watchdog);
      settle();
    };
    const stalled = (why: string): void => {
      finish(() =>
        reject(new Error(`bench clients stalled: ${why}; last probe ${JSON.stringify(last?.probe)}`)),
      );
      void worker.terminate();
    };
    const watchdog = setInterval(() => {
      const now = performance.now();
      if (unanswered !== undefined && now - unanswered > UNANSWERED_MS) {
        stalled(`the worker has not answered a probe for ${Math.round((now - unanswered) / 1000)} s`);
        return;
      }
      if (last !== undefined && last.probe.pending > 0 && now - progressAt > STALL_MS) {
        stalled(
          `no call settled for ${Math.round((now - progressAt) / 1000)} s with ${last.probe.pending} pending`,
        );
        return;
      }
      unanswered ??= now;
      worker.postMessage('probe');
    }, PROBE_EVERY_MS);
    watchdog.unref();
    worker.on(
      'message',
      (
        m:
          | { ok: true; result: ClientsResult }
          | { ok: false; error: string }
          | { probe: ClientsProbe }
          | { ready: string },
      ) => {
        if ('ready' in m) {
          onReady(m.ready);
          return;
        }
        if ('probe' in m) {
          if (last === undefined || m.probe.settled !== last.probe.settled) progressAt = performance.now();
          last = { probe: m.probe };
          unanswered = undefined;
          return;
        }
        void worker.terminate();
        finish(() => (m.ok ? resolve(m.result) : reject(new Error(`bench clients failed: ${m.error}`))));
      },
    );
    worker.once('error', (e) => finish(() => reject(e)));
    // A worker that ends without posting (its loop drained with a call unsettled, or it died quietly) left the
    // bench waiting for the message forever.
    worker.once('exit', (code) =>
      finish(() =>
        reject(
          new Error(
            `bench clients ended (exit ${code}) without a result: a call neither answered nor failed; ` +
              `last probe ${JSON.stringify(last?.probe)}`,
          ),
        ),
      ),
    );
  });
}

/** Join tokens for every planned Attest, made ahead over the admin socket (not timed). */
export async function makeTokens(admin: AdminClient, spiffeId: string, clients: number, each: number) {
  const tokens: string[][] = [];
  for (let c = 0; c < clients; c++) {
    tokens.push(
      await Promise.all(
        Array.from({ length: each }, async () => (await admin.createJoinToken({ spiffeId })).token),
      ),
    );
  }
  return tokens;
}

export async function runIssuanceBench(options: IssuanceBenchOptions = {}): Promise<void> {
  const opsPerClient = options.opsPerClient ?? 32;
  const budgetMs = (options.phaseBudgetSeconds ?? 60) * 1000;
  const out = (s: string): boolean => process.stdout.write(s);
  out(
    `\nEnd-to-end issuance over gRPC (TLS on loopback, SQLite; ${opsPerClient} Attest then ` +
      `${opsPerClient} Renew per client; clients in ${options.clientThreads ?? 1} worker thread(s), ` +
      `${os.cpus().length} CPUs)\n`,
  );
  const rawSign = options.rawSignPerSec ?? rawSignRate(options.baselineSeconds ?? 1);
  out(`  ${'node:crypto ECDSA P-256 sign (baseline)'.padEnd(58)} ${fmt(rawSign).padStart(10)} /s\n`);
  const before = options.inProcessIssuePerSec ?? inProcessIssueRate(options.baselineSeconds ?? 1);
  out(`  ${'parseCsr + issueX509Svid in process'.padEnd(58)} ${fmt(before).padStart(10)} /s\n`);
  // Run alone, the in-process figure is taken again after the servers ran and the ratios use the mean: on a
  // shared machine the load moves during a run of several minutes.
  const inProcess = { perSec: before };
  out(
    `  ${'load average (1, 5, 15 min)'.padEnd(58)} ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(', ')}\n`,
  );

  const rows: string[] = [];
  let failed = 0;
  for (const workers of options.signingWorkers ?? [0, 2]) {
    out(
      `  -- ca.signing_workers: ${workers}${workers === 0 ? " (CSR checks and signing on the server's thread)" : ''}\n`,
    );
    failed += await runServer(workers, opsPerClient, budgetMs, rawSign, inProcess, rows, options);
  }
  if (options.inProcessIssuePerSec === undefined) {
    const after = inProcessIssueRate(options.baselineSeconds ?? 1);
    inProcess.perSec = (before + after) / 2;
    out(
      `  ${'parseCsr + issueX509Svid in process, again'.padEnd(58)} ${fmt(after).padStart(10)} /s` +
        `   (ratios below use the mean, ${fmt(inProcess.perSec)} /s)\n`,
    );
  }
  const resolved = rows.map((r) =>
    r.replace(/@@(\d+(?:\.\d+)?)@@/g, (_, rate: string) =>
      (Number(rate) / inProcess.perSec).toFixed(3).padStart(10),
    ),
  );
  rows.splice(0, rows.length, ...resolved);
  out(
    `  ${'load average at the end (1, 5, 15 min)'.padEnd(58)} ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(', ')}\n`,
  );
  out('\nRatios (same run)\n' + rows.join('\n') + '\n');
  if (failed > 0) {
    // A rate measured over failing calls is no figure: the run fails (scripts/bench.ts too).
    process.stderr.write(`bench-issuance: ${failed} calls FAILED\n`);
    process.exitCode = 1;
  }
}

/** CPU per call of the phase by thread (Linux; empty elsewhere): the server's, the clients', the others'. */
function cpuLine(r: PhaseResult): string {
  if (r.cpu === undefined || r.ops === 0) return '';
  const c = splitCpu(r.cpu, r.ops);
  const us = (x: number): string => x.toFixed(0);
  return (
    `    CPU per call, µs: server thread / clients / other threads ` +
    `${us(c.server)} / ${us(c.clients)} / ${us(c.others)} ` +
    `(busiest ${c.topOthers.map((o) => `${us(o.us)} [pid+${o.tidOffset}]`).join(', ')}), ` +
    `total ${us(c.total)}\n`
  );
}

/** With --renew-perf, `perf stat` runs over each Renew phase only (the clients wait at its gates meanwhile). */
function perfHooks(
  file: string | undefined,
  tag: string,
  mode: 'stat' | 'record' = 'stat',
): PhaseHooks | undefined {
  if (file === undefined) return undefined;
  let child: Awaited<ReturnType<typeof startPerf>> | undefined;
  return {
    renew: async () => {
      child = await startPerf(`${file}.${tag}`, mode);
    },
    renewed: async () => {
      if (child !== undefined) await stopPerf(child);
    },
  };
}

/** One server with `workers` signing threads, every concurrency level; returns the failed calls. */
async function runServer(
  workers: number,
  opsPerClient: number,
  budgetMs: number,
  rawSign: number,
  inProcess: { perSec: number },
  rows: string[],
  options: IssuanceBenchOptions,
): Promise<number> {
  const out = (s: string): boolean => process.stdout.write(s);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-bench-'));
  const config = {
    ...loadConfig({ dataDir, env: {} }),
    trustDomain: TRUST_DOMAIN,
    listenAddress: { host: '127.0.0.1', port: 0 },
    logLevel: 'error' as const,
    caSigningWorkers: workers,
  };
  // Errors only, to stderr: a bench must not measure log formatting, but a failure must not go unseen.
  const logger = createLogger({ level: 'error', destination: process.stderr });
  const running = await startServer(config, { logger, rotationTimer: false });
  // On the server's thread, like the server: the transport's ceiling as this server's clients see it.
  const echo = await startEchoServer('echo.bench.lanyard.local');
  const admin = new AdminClient(config.adminSocketPath, { timeoutMs: 60_000 });
  let failed = 0;
  try {
    const spiffeId = `spiffe://${TRUST_DOMAIN}/bench/agent`;
    await admin.createEntry({
      entry: { spiffeId, selectors: [{ type: 'bench', value: 'agent' }], allowedScopes: ['bench:run'] },
    });
    for (const n of options.clients ?? CONCURRENCY) {
      const result = await runClients(
        {
          address: running.publicAddress,
          trustDomain: TRUST_DOMAIN,
          bundlePem: running.ca.bundle().toPem(),
          tokens: await makeTokens(admin, spiffeId, n, opsPerClient),
          renewsPerClient: opsPerClient,
          phaseBudgetMs: budgetMs,
          echo: echo.target,
        },
        options.clientThreads,
        perfHooks(options.renewPerf, `${workers}w-${n}c`, options.renewPerfMode),
      );
      for (const [name, r] of [
        ['Attest', result.attest],
        ['Renew', result.renew],
      ] as [string, PhaseResult][]) {
        failed += r.errors;
        if (name === 'Attest' && options.showAttest === false) continue;
        const rate = r.ops / (r.elapsedMs / 1000);
        const label = `${name} (${name === 'Renew' ? 'mTLS' : 'join_token'}), N=${n} concurrent`;
        out(
          `  ${label.padEnd(58)} ${fmt(rate).padStart(10)} /s` +
            `   p50 ${percentile(r.latenciesMs, 50).toFixed(1)} ms, p99 ${percentile(r.latenciesMs, 99).toFixed(1)} ms` +
            `, ${r.ops} ok${r.errors > 0 ? `, ${r.errors} FAILED (${r.firstError ?? '?'})` : ''}\n`,
        );
        out(cpuLine(r));
        if (n < 16 && n !== 1) continue;
        const tag = `${name}/s, N=${n}, ${workers} workers`;
        rows.push(`  ${`${tag} / raw P-256 sign`.padEnd(58)} ${(rate / rawSign).toFixed(3).padStart(10)}`);
        rows.push(
          `  ${`${tag} / in-process CSR -> SVID`.padEnd(58)} ` +
            // Filled in once the run's in-process figure is final (see runIssuanceBench).
            `@@${rate}@@`,
        );
        if (name === 'Renew' && result.echo !== undefined && result.echo.ops > 0) {
          const e = result.echo;
          failed += e.errors;
          const echoRate = e.ops / (e.elapsedMs / 1000);
          out(
            `  ${`bare grpc-js unary, mTLS, Renew's sizes, N=${n}`.padEnd(58)} ${fmt(echoRate).padStart(10)} /s` +
              `   p50 ${percentile(e.latenciesMs, 50).toFixed(1)} ms, p99 ${percentile(e.latenciesMs, 99).toFixed(1)} ms` +
              `, ${e.ops} ok${e.errors > 0 ? `, ${e.errors} FAILED (${e.firstError ?? '?'})` : ''}\n`,
          );
          out(cpuLine(e));
          rows.push(
            `  ${`${tag} / bare grpc-js unary (same sizes)`.padEnd(58)} ${(rate / echoRate).toFixed(3).padStart(10)}`,
          );
        }
      }
    }
    if (running.store instanceof SqliteStore) {
      const g = running.store.groupCommitStats();
      out(
        `  ${'group commit: calls per durable commit (this server)'.padEnd(58)} ` +
          `${(g.calls / Math.max(1, g.batches)).toFixed(1).padStart(10)}   (${g.calls} calls, ${g.batches} commits)\n`,
      );
    }
  } finally {
    admin.close();
    await echo.close();
    await running.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return failed;
}

/** --ops, --budget, --seconds and --workers from the command line (also when scripts/bench.ts runs this). */
function listArg(name: string, min: number): number[] | undefined {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const list = (process.argv[i + 1] ?? '').split(',').map((x) => Number(x));
  if (list.some((n) => !Number.isInteger(n) || n < min)) {
    throw new Error(`${name} takes a list of integers >= ${min}, such as ${min},${min + 1}`);
  }
  return list;
}

export function issuanceOptionsFromArgv(): IssuanceBenchOptions {
  const signingWorkers = listArg('--workers', 0);
  const clients = listArg('--clients', 1);
  const p = process.argv.indexOf('--phases');
  const phases = p < 0 ? undefined : (process.argv[p + 1] ?? '').split(',');
  if (phases?.some((x) => x !== 'attest' && x !== 'renew')) {
    throw new Error('--phases takes attest, renew or attest,renew');
  }
  const ops = arg('--ops');
  const clientThreads = arg('--client-threads');
  const pi = process.argv.indexOf('--renew-perf');
  const renewPerf = pi < 0 ? undefined : process.argv[pi + 1];
  const budget = arg('--budget');
  const seconds = arg('--seconds');
  return {
    ...(ops !== undefined && { opsPerClient: Math.ceil(ops) }),
    ...(budget !== undefined && { phaseBudgetSeconds: budget }),
    ...(seconds !== undefined && { baselineSeconds: seconds }),
    ...(signingWorkers !== undefined && { signingWorkers }),
    ...(clients !== undefined && { clients }),
    ...(phases !== undefined && { showAttest: phases.includes('attest') }),
    ...(clientThreads !== undefined && { clientThreads: Math.ceil(clientThreads) }),
    ...(renewPerf !== undefined && { renewPerf }),
    ...(process.argv.includes('--renew-perf-record') && { renewPerfMode: 'record' as const }),
  };
}

if (require.main === module) {
  runIssuanceBench(issuanceOptionsFromArgv()).catch((e: unknown) => {
    process.stderr.write(`bench-issuance: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  });
}
