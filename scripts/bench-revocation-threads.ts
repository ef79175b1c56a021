/**
 * `npx tsx scripts/bench-revocation-threads.ts [--revocations N] [--rounds R] [--parts threads,endsession,fetch]`:
 *
 * `threads`: what a CRL build and a new watcher's initial state cost the server's thread, on it (inline) against
 * off it (worker thread), alternated in one process over the same store, so the machine's load falls on both
 * alike.
 *
 * `endsession`: EndSession over gRPC on a real server (each call its own mTLS connection, as `npm run
 * bench:scale` makes them) while the first CRL of N revocations is built in a new worker, for worker settings
 * alternated round by round in one process: bounded reads at nice 10 alone (the default), and at nice 10 with a
 * 10 ms time slice (thread-priority.ts); with `--idle` also under SCHED_IDLE, with `--older` also the whole list
 * in one read and bounded reads, both at the process's priority. Beside each: the main thread's GC pauses (count, total, longest), its event-loop delay
 * (p99, max), how far the SQLite WAL grew (it is truncated before each build, so its size is the frames no
 * checkpoint could reset), and the main thread's time runnable but not running per call (Linux schedstat: what
 * the build, and everything else on the cores, took from it). `taskset -c 1 npx tsx ...` puts every thread of
 * the process on one core, which makes the build thread and the server's thread compete whatever else runs.
 *
 * `fetch`: EndSession on a real server holding N revocations and their CRL, alternated round by round with
 * nothing else, with a `curl` process fetching the DER over and over, and fetching the PEM; then an incremental
 * build, with the main thread's longest stall around its hand-off. Beside each: event-loop delay and stalls.
 *
 * `threads`, for each: wall time, the server thread's busy share during it (event-loop utilisation), the longest the event
 * loop was blocked (what an EndSession arriving then would wait at least), and the latency of store writes made
 * meanwhile (a revocation's commit). Real SQLite (WAL, durable commits), real CA keys, N revoked serials written
 * straight into the file. Figures, not assertions.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  monitorEventLoopDelay,
  performance,
  PerformanceObserver,
  type IntervalHistogram,
} from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { AdminClient } from '../src/server/admin-client';
import { loadConfig, type ServerConfig } from '../src/server/config';
import { CRL_WORKER_DEFAULTS } from '../src/server/revocation/crl-builder';
import { CrlPublisher } from '../src/server/revocation/crl-publisher';
import { startServer } from '../src/server/run';
import { SQLITE_FILE_NAME } from '../src/store';
import { endSession, register, startSession } from '../test/support/sessions';
import type { TestServer } from '../test/support/test-server';
import { RevocationFeed } from '../src/server/sessions/revocation-feed';
import { RevocationWatchers } from '../src/server/sessions/watch-revocations';
import { createLogger } from '../src/internal/logging';
import { DataDir } from '../test/support/ca';
import { seedRevocations } from './bench-seed';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const REVOCATIONS = arg('--revocations', 1_000_000);
const ROUNDS = arg('--rounds', 3);
const PARTS = (
  process.argv.includes('--parts') ? process.argv[process.argv.indexOf('--parts') + 1]! : 'threads,endsession'
).split(',');
const out = (s: string): boolean => process.stdout.write(s);

interface Cost {
  ms: number;
  /** The thread's busy share during the work, the store writes included. */
  elu: number;
  maxBlockMs: number;
  writeP50: number;
  writeMax: number;
}

/**
 * Runs `work` while store writes are due every 20 ms; what it cost the thread. A write's latency counts from when
 * it was due, so a write held up behind a blocked thread counts the wait; the longest block is the longest gap
 * between ticks of a 5 ms timer.
 */
async function measure(work: () => Promise<unknown>, write: () => Promise<unknown>): Promise<Cost> {
  const elu0 = performance.eventLoopUtilization();
  let maxBlock = 0;
  let lastTick = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    maxBlock = Math.max(maxBlock, now - lastTick - 5);
    lastTick = now;
  }, 5);
  let done = false;
  const writes: number[] = [];
  const writer = (async () => {
    let due = performance.now();
    while (!done) {
      await write();
      writes.push(performance.now() - due);
      due += 20;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })();
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  // One more tick, so a block that ended with the work is counted.
  await new Promise((r) => setTimeout(r, 10));
  done = true;
  await writer;
  clearInterval(ticker);
  const elu = performance.eventLoopUtilization(elu0).utilization;
  writes.sort((a, b) => a - b);
  return {
    ms,
    elu,
    maxBlockMs: Math.max(0, maxBlock),
    writeP50: writes[Math.floor(writes.length / 2)] ?? NaN,
    writeMax: writes[writes.length - 1] ?? NaN,
  };
}

function show(name: string, c: Cost): void {
  out(
    `  ${name.padEnd(34)} ${c.ms.toFixed(0).padStart(7)} ms  thread busy ${(c.elu * 100).toFixed(0).padStart(3)}%` +
      `  longest block ${c.maxBlockMs.toFixed(0).padStart(6)} ms  store write p50 ${c.writeP50.toFixed(1)} ms,` +
      ` max ${c.writeMax.toFixed(0)} ms\n`,
  );
}

async function threadsPart(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-bench-threads-'));
  const d = new DataDir(dir);
  const { store, ca } = await d.start();
  const logger = createLogger({ level: 'error', destination: process.stderr });
  try {
    d.clock.set(new Date());
    const t = performance.now();
    seedRevocations(store.file, REVOCATIONS);
    out(`  seeded (not a figure) ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
    const feed = new RevocationFeed();
    let n = 0;
    const write = async (): Promise<void> => {
      const r = await store.addRevocation(
        {
          kind: 'certificate',
          id: (0x7000_0000_0000 + n++).toString(16),
          reason: 'bench',
          expiresAt: new Date(Date.now() + 3600_000),
        },
        new Date(),
      );
      feed.publish([r]);
    };
    const publisher = (builder: 'inline' | 'worker'): CrlPublisher => {
      const p = new CrlPublisher({
        store,
        ca,
        feed,
        clock: () => new Date(),
        logger,
        minRebuildMs: 0,
        builder,
      });
      p.start();
      return p;
    };
    const crls = { inline: publisher('inline'), worker: publisher('worker') };
    const watchers = (snapshotReader: 'inline' | 'worker'): RevocationWatchers =>
      new RevocationWatchers({
        store,
        feed,
        logger,
        maxWatchers: 16,
        heartbeatMs: 60_000,
        stallTimeoutMs: 60_000,
        snapshotCacheBytes: 0,
        snapshotReader,
      });
    const snapshots = { inline: watchers('inline'), worker: watchers('worker') };
    const readAll = async (w: RevocationWatchers): Promise<void> => {
      let after = 0;
      for (;;) {
        const chunk = await w.snapshotChunk(after);
        const last = chunk.pages[chunk.pages.length - 1];
        if (!chunk.full || last === undefined) return;
        after = last.sequence;
      }
    };
    out('\nCRL: the first build (the whole list)\n');
    for (const kind of ['inline', 'worker'] as const) {
      show(kind, await measure(() => crls[kind].refresh(), write));
    }
    out('\nCRL: a build after new revocations (incremental), alternated\n');
    for (let r = 0; r < ROUNDS; r++) {
      for (const kind of r % 2 === 0 ? (['inline', 'worker'] as const) : (['worker', 'inline'] as const)) {
        await write();
        show(`${kind} (round ${r + 1})`, await measure(() => crls[kind].refresh(), write));
      }
    }
    out("\nA new watcher's initial state, read and packed (no cache), alternated\n");
    for (let r = 0; r < ROUNDS; r++) {
      for (const kind of r % 2 === 0 ? (['inline', 'worker'] as const) : (['worker', 'inline'] as const)) {
        show(`${kind} (round ${r + 1})`, await measure(() => readAll(snapshots[kind]), write));
      }
    }
    for (const s of Object.values(snapshots)) s.closeAll();
    for (const c of Object.values(crls)) await c.stop();
  } finally {
    await d.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** What the main thread's GC did between `start()` and `stop()`: pauses as the gc performance entries say. */
function gcPauses(): { stop(): { count: number; totalMs: number; maxMs: number } } {
  const pauses: number[] = [];
  const observer = new PerformanceObserver((l) => {
    for (const e of l.getEntries()) pauses.push(e.duration);
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    stop() {
      observer.disconnect();
      return {
        count: pauses.length,
        totalMs: pauses.reduce((a, b) => a + b, 0),
        maxMs: Math.max(0, ...pauses),
      };
    },
  };
}

const pct = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** A real server on loopback in this process, as the parts below measure it (no rotation timer, errors only). */
async function startBenchServer(prefix: string, extra: Partial<ServerConfig> = {}): Promise<TestServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const config: ServerConfig = {
    ...loadConfig({ dataDir: dir, env: {} }),
    listenAddress: { host: '127.0.0.1', port: 0 },
    logLevel: 'error',
    ...extra,
  };
  const logger = createLogger({ level: 'error', destination: process.stderr });
  const running = await startServer(config, { logger, rotationTimer: false });
  const client = new AdminClient(config.adminSocketPath, { timeoutMs: 120_000 });
  return {
    dir,
    config,
    running,
    client,
    logs: [],
    async stop() {
      client.close();
      await running.close();
    },
  };
}

/**
 * Seeds REVOCATIONS revoked serials into the server's file and warms EndSession up (connections, JIT, the store's
 * statements); returns one timed EndSession of a new session, in ms.
 */
async function seededEndSessions(s: TestServer, file: string): Promise<() => Promise<number>> {
  const agent = await register(s, 'bench-verifier');
  const t = performance.now();
  seedRevocations(file, REVOCATIONS);
  out(`  seeded (not a figure) ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  const endOne = async (): Promise<number> => {
    const { agent: sess, res } = await startSession(s, agent);
    const t0 = performance.now();
    await endSession(s, sess, res.sessionId, 'bench');
    return performance.now() - t0;
  };
  for (let i = 0; i < 20; i++) await endOne();
  return endOne;
}

async function endSessionPart(): Promise<void> {
  const s = await startBenchServer('lanyard-bench-endsession-');
  const { dir: dataDir, running } = s;
  const logger = createLogger({ level: 'error', destination: process.stderr });
  const file = path.join(dataDir, SQLITE_FILE_NAME);
  const truncateWal = (): void => {
    const db = new Database(file);
    db.pragma('busy_timeout = 60000');
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
  };
  const walBytes = (): number => {
    try {
      return fs.statSync(`${file}-wal`).size;
    } catch {
      return 0;
    }
  };
  try {
    const endOne = await seededEndSessions(s, file);
    // At rest, for as many calls as a build usually overlaps: the same figures without a build.
    const restGc = gcPauses();
    const restDelay = monitorEventLoopDelay({ resolution: 5 });
    restDelay.enable();
    const rest: number[] = [];
    const restStart = performance.now();
    const restSched = mainSchedstat();
    for (let i = 0; i < 200; i++) rest.push(await endOne());
    const restMs = performance.now() - restStart;
    const restWait = (mainSchedstat().waitMs - restSched.waitMs) / rest.length;
    restDelay.disable();
    const rg = restGc.stop();
    rest.sort((a, b) => a - b);
    out(
      `  ${'at rest (no build)'.padEnd(40)} ${(restMs / 1000).toFixed(1).padStart(11)} s ` +
        `EndSession p50 ${pct(rest, 50).toFixed(1)} p99 ${pct(rest, 99).toFixed(1)} max ${pct(rest, 100).toFixed(1)} ms` +
        ` (${rest.length} calls)  main GC ${rg.count} pauses ${rg.totalMs.toFixed(0)} ms, longest ` +
        `${rg.maxMs.toFixed(1)} ms  loop delay p99 ${(restDelay.percentile(99) / 1e6).toFixed(1)} max ` +
        `${(restDelay.max / 1e6).toFixed(1)} ms  main thread runnable, not running ${restWait.toFixed(2)} ms/call` +
        `  load ${os.loadavg()[0]!.toFixed(1)}\n`,
    );
    type WorkerSetting = { readChunk: number; niceness: number; sliceMs: number; idle: boolean };
    const bounded = CRL_WORKER_DEFAULTS.readChunk;
    const nice = CRL_WORKER_DEFAULTS.niceness;
    // The long slice measured against the default (thread-priority.ts).
    const slice = 10;
    const variants: { name: string; worker: WorkerSetting }[] = [
      ...(process.argv.includes('--older')
        ? [
            {
              name: 'one read, nice 0',
              worker: { readChunk: Number.MAX_SAFE_INTEGER, niceness: 0, sliceMs: 0, idle: false },
            },
            {
              name: 'bounded reads, nice 0',
              worker: { readChunk: bounded, niceness: 0, sliceMs: 0, idle: false },
            },
          ]
        : []),
      {
        name: `nice ${nice} (the default)`,
        worker: { readChunk: bounded, niceness: nice, sliceMs: 0, idle: false },
      },
      {
        name: `nice ${nice}, ${slice} ms slice`,
        worker: { readChunk: bounded, niceness: nice, sliceMs: slice, idle: false },
      },
      // SCHED_IDLE starves the build on a busy host: only when asked for.
      ...(process.argv.includes('--idle')
        ? [{ name: 'SCHED_IDLE', worker: { readChunk: bounded, niceness: nice, sliceMs: 0, idle: true } }]
        : []),
    ];
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        truncateWal();
        // A publisher of its own, so each build is a first one (a new worker reads the whole list).
        const crl = new CrlPublisher({
          store: running.store,
          ca: running.ca,
          feed: new RevocationFeed(),
          clock: () => new Date(),
          logger,
          minRebuildMs: 0,
          worker: v.worker,
        });
        const gc = gcPauses();
        const delay = monitorEventLoopDelay({ resolution: 5 });
        delay.enable();
        let walMax = walBytes();
        const walTimer = setInterval(() => (walMax = Math.max(walMax, walBytes())), 50);
        let done = false;
        const times: number[] = [];
        const calls = (async () => {
          while (!done) times.push(await endOne());
        })();
        const t0 = performance.now();
        const sched0 = mainSchedstat();
        const built = await crl.refresh();
        const buildMs = performance.now() - t0;
        const waitMs = mainSchedstat().waitMs - sched0.waitMs;
        const callsInBuild = times.length;
        done = true;
        await calls;
        clearInterval(walTimer);
        delay.disable();
        const g = gc.stop();
        await crl.stop();
        times.sort((a, b) => a - b);
        out(
          `  ${`${v.name}, round ${r + 1}`.padEnd(40)} build ${(buildMs / 1000).toFixed(1).padStart(5)} s ` +
            `(${built.revokedCount.toLocaleString('en-US')} serials)  EndSession p50 ${pct(times, 50).toFixed(1)}` +
            ` p99 ${pct(times, 99).toFixed(1)} max ${pct(times, 100).toFixed(1)} ms (${times.length} calls)` +
            `  main GC ${g.count} pauses ${g.totalMs.toFixed(0)} ms, longest ${g.maxMs.toFixed(1)} ms` +
            `  loop delay p99 ${(delay.percentile(99) / 1e6).toFixed(1)} max ${(delay.max / 1e6).toFixed(1)} ms` +
            `  WAL ${(walMax / 2 ** 20).toFixed(1)} MiB  main thread runnable, not running ` +
            `${(waitMs / Math.max(1, callsInBuild)).toFixed(2)} ms/call  load ${os.loadavg()[0]!.toFixed(1)}\n`,
        );
      }
    }
  } finally {
    await s.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * The main thread's CPU time and its time runnable but waiting for a CPU (Linux /proc schedstat, ns): what a
 * build thread on the same cores takes from it. Zero elsewhere.
 */
function mainSchedstat(): { runMs: number; waitMs: number } {
  try {
    const [run, wait] = fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ');
    return { runMs: Number(run) / 1e6, waitMs: Number(wait) / 1e6 };
  } catch {
    return { runMs: 0, waitMs: 0 };
  }
}

/** The main thread's longest stalls, with when they ended: a 1 ms timer's gaps beyond its period. */
function stalls(): { stop(): { at: number; ms: number }[] } {
  const seen: { at: number; ms: number }[] = [];
  let last = performance.now();
  const t = setInterval(() => {
    const now = performance.now();
    if (now - last > 6) seen.push({ at: now, ms: now - last - 1 });
    last = now;
  }, 1);
  return {
    stop() {
      clearInterval(t);
      return seen;
    },
  };
}

/** `curl` fetching `url` (to /dev/null) one request after another until `stop()`: a relying party apart. */
function fetchLoop(url: string): { stop(): Promise<number[]> } {
  const times: number[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const c = spawn('curl', ['-sf', '-o', '/dev/null', url], { stdio: 'ignore' });
        c.on('error', reject);
        c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`curl ${url}: exit ${code}`))));
      });
      times.push(performance.now() - t0);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return times;
    },
  };
}

/**
 * `fetch`: EndSession on a real server holding N revocations and their CRL, with nothing else running and while a
 * `curl` process fetches the DER (or the PEM) over and over, alternated round by round; and an incremental
 * build's hand-off. Beside each: the main thread's event-loop delay and its longest stalls.
 */
async function fetchPart(): Promise<void> {
  const s = await startBenchServer('lanyard-bench-fetch-', {
    crlListenAddress: { host: '127.0.0.1', port: 0 },
  });
  const { dir: dataDir, running } = s;
  const file = path.join(dataDir, SQLITE_FILE_NAME);
  const td = running.ca.trustDomain.name;
  const url = (form: 'crl' | 'pem'): string => `http://${running.crlAddress}/crl/${td}.${form}`;
  try {
    const endOne = await seededEndSessions(s, file);
    const first = await running.crl.refresh();
    out(
      `  first CRL built (not a figure): ${first.revokedCount.toLocaleString('en-US')} serials, ` +
        `${(first.activeDer.byteLength / 2 ** 20).toFixed(1)} MiB DER\n`,
    );
    const report = (
      name: string,
      times: number[],
      delay: IntervalHistogram,
      st: { ms: number }[],
      extra = '',
    ): void => {
      times.sort((a, b) => a - b);
      const longest = st.map((x) => x.ms).sort((a, b) => b - a);
      out(
        `  ${name.padEnd(34)} EndSession p50 ${pct(times, 50).toFixed(1)} p99 ${pct(times, 99).toFixed(1)} max ` +
          `${pct(times, 100).toFixed(1)} ms (${times.length} calls)  loop delay p99 ` +
          `${(delay.percentile(99) / 1e6).toFixed(1)} max ${(delay.max / 1e6).toFixed(1)} ms  stalls > 5 ms ` +
          `${st.length}, longest ${
            longest
              .slice(0, 3)
              .map((x) => x.toFixed(0))
              .join(', ') || '-'
          } ms${extra}` +
          `  load ${os.loadavg()[0]!.toFixed(1)}\n`,
      );
    };
    const CALLS = 60;
    const variants = ['no fetch', 'DER fetched', 'PEM fetched'] as const;
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        // The calls revoke sessions: bring the CRL up to date first, so no build runs during the round.
        await running.crl.refresh();
        const delay = monitorEventLoopDelay({ resolution: 1 });
        delay.enable();
        const st = stalls();
        const loop = v === 'no fetch' ? undefined : fetchLoop(url(v === 'DER fetched' ? 'crl' : 'pem'));
        const times: number[] = [];
        for (let i = 0; i < CALLS; i++) times.push(await endOne());
        const fetches = (await loop?.stop()) ?? [];
        delay.disable();
        fetches.sort((a, b) => a - b);
        const extra =
          fetches.length > 0 ? `  ${fetches.length} fetches, p50 ${pct(fetches, 50).toFixed(0)} ms` : '';
        report(`${v}, round ${r + 1}`, times, delay, st.stop(), extra);
      }
      // An incremental build (the round's revocations): the thread around its hand-off.
      const delay = monitorEventLoopDelay({ resolution: 1 });
      delay.enable();
      const st = stalls();
      let done = false;
      const times: number[] = [];
      const calls = (async () => {
        while (!done || times.length < 3) times.push(await endOne());
      })();
      const t0 = performance.now();
      const built = await running.crl.refresh();
      const end = performance.now();
      await new Promise((res) => setTimeout(res, 100));
      done = true;
      await calls;
      delay.disable();
      const all = st.stop();
      const nearEnd = all.filter((x) => x.at > end - 200 && x.at < end + 100).map((x) => x.ms);
      report(
        `incremental build, round ${r + 1}`,
        times,
        delay,
        all,
        `  build ${(end - t0).toFixed(0)} ms (${built.revokedCount.toLocaleString('en-US')}), stall at its ` +
          `hand-off ${nearEnd.length > 0 ? Math.max(...nearEnd).toFixed(0) : '0'} ms`,
      );
    }
  } finally {
    await s.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  out(
    `revocation work on and off the server thread (node ${process.version}, ${os.cpus().length} CPUs, ` +
      `load average ${os.loadavg()[0]!.toFixed(1)}), ${REVOCATIONS.toLocaleString('en-US')} revocations\n`,
  );
  if (PARTS.includes('threads')) await threadsPart();
  if (PARTS.includes('fetch')) {
    out("\nEndSession with and without a CRL fetch, alternated; an incremental build's hand-off\n");
    await fetchPart();
  }
  if (PARTS.includes('endsession')) {
    out('\nEndSession while the first CRL is built, worker settings alternated\n');
    await endSessionPart();
  }
  out(
    `\nload average at the end ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-revocation-threads: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
