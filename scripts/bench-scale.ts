/**
 * `npm run bench:scale`: what the server does at the sizes issue 15 names, each figure beside a baseline of the
 * same run (the same operation at a small size, on the same server). The server is its own process, as deployed:
 * `lanyard server run` from dist/ (built first when stale; `--from-source` runs the sources under tsx) on a temp
 * data dir removed afterwards, TLS on loopback, SQLite with durable commits, the CRL and metrics listeners on
 * loopback (scripts/bench-server-process.ts). The bench's clients (watchers and their caches, the seeding) run in
 * this process, so the server's memory is measured apart: its VmRSS, and its VmHWM (the peak since the stage
 * before), from /proc/<pid>/status after each stage, beside its main thread's heap from /metrics. The bulk state
 * is seeded into its store directly, the measured calls go through the real gRPC path; the CRL is fetched over
 * HTTP as a relying party does, its build timed by the server's 'CRL published' log line.
 *
 *   revocations  --revocations (default 1,000,000) revoked serials: EndSession latency (--end-samples calls at
 *                rest, default 300), the first CRL after a change (build time, size) and an incremental one, each
 *                with EndSession timed while it is built and fetched, then EndSession while a relying party
 *                GETs the CRL --crl-fetches times back to back (default 8); the CRL is always fetched by a node
 *                process of its own, as a relying party does, never by this thread that times the calls, and the
 *                calls are reported by what they overlapped (a transfer, a build only, neither); beside each set
 *                of calls the data directory's own fsync latency, probed after each call (a 4 KiB write and
 *                fsync, as each commit's; the disk's part of EndSession's latency, same run); the transfer's
 *                floor: a trivial GET on the server's CRL listener and on a plain node http server sending the
 *                same bytes, each at rest and while the relying party GETs the CRL (no build running); a new
 *                watcher's time to its complete state (paged WatchRevocations), and a revocation check in the
 *                client cache holding that state; then a restart on the same data dir: start until ready, a
 *                new watcher right at ready and one after the start-up read of the state (warm_snapshot);
 *                --restarts N restarts in a row (default 1); --restart-only: only the seeding and the restarts
 *                (none of the figures before them), for measuring the start-up read alone
 *   entries      --entries (default 100,000) registration entries: join-token Attest latency
 *   watchers     --watchers (default 1,000) WatchRevocations streams (4 per connection, the server's default
 *                cap): EndSession until every watcher holds the revocation, p50/p99
 *   audit        `lanyard audit export` and `audit verify` (--server and --file) as processes over a chain of
 *                --stream-records records (default 100,000; a list such as 100000,1000000,10000000 measures at
 *                each size in turn; a signed checkpoint every --stream-checkpoint-every records, default 100),
 *                wall time, records per second and peak RSS beside the same commands on the chain before the seeding; then --audit-records (default 1,000,000, at least the largest
 *                --stream-records) records in the chain: `audit trace` with the server's part (its
 *                QueryAuditRecords calls) apart from the CLI's
 *
 * Bulk state (revoked serials, entries, audit records) is written straight into the server's SQLite file on a
 * second connection, in large transactions, by the store's own code, so the rows are exactly what the server
 * writes; only the measured calls go through gRPC.
 *
 *   npm run bench:scale
 *   npm run bench:scale -- --revocations 200000 --entries 20000 --watchers 200 --audit-records 200000
 *   npm run bench:scale -- --skip revocations,fanout      # parts: revocations, entries, fanout, audit
 *   npm run bench:scale -- --skip revocations,entries,fanout --stream-records 100000,1000000,10000000
 *   npm run bench:scale -- --heap-snapshots    # a heap snapshot of the server after each stage (kept, path printed;
 *                                              # taking one grows the server's RSS: not for the memory figures)
 * LANYARD_BENCH_CALLS_FILE=file: each EndSession call timed (its phase, start and latency) as JSON lines.
 * LANYARD_BENCH_PROFILE_DIR=dir: CPU profiles of the server process (whole run, written at its exit) and of this
 * process's watcher syncs.
 * Figures, not assertions: tests never time anything.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as inspector from 'node:inspector';
import { promisify } from 'node:util';
import { watchRevocationsInto } from '../src/client/revocation-watch';
import { CRL_DEFAULTS } from '../src/server/revocation/crl-publisher';
import { RevocationCache } from '../src/verify';
import Database from 'better-sqlite3';
import { parseRecord } from '../src/audit/record';
import { AuditSigningKey } from '../src/audit/audit-key';
import { AUDIT_KEY_FILE } from '../src/server/audit/recorder';
import { buildTrace } from '../src/audit/trace';
import { AuditAdminClient } from '../src/server/audit/client';
import { SqliteEntries } from '../src/store/sqlite/entries';
import { BIN } from '../test/support/paths';
import { runProcess } from '../test/support/server-process';
import { PER_ROOT, PRINCIPALS, seedAuditRecords } from './bench-audit-trail';
import { seedRevocations } from './bench-seed';
import { connectPublic, attest, newKey } from '../test/support/public-client';
import {
  endSession,
  register,
  sessionClient,
  startSession,
  TD,
  unary,
  type Agent,
} from '../test/support/sessions';
import { EndSessionRequest } from '../src/gen/lanyard/v1/session';
import { newEntry } from '../test/store/conformance';
import {
  processMemory,
  startBenchServer,
  type CrlPublished,
  type ServerUnderBench,
} from './bench-server-process';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const REVOCATIONS = arg('--revocations', 1_000_000);
const ENTRIES = arg('--entries', 100_000);
const WATCHERS = arg('--watchers', 1_000);
/**
 * Chain sizes at which export and verify are measured (all of the chain is exported and verified each time),
 * ascending; the chain is seeded up to each in turn.
 */
const STREAM_SIZES = (() => {
  const i = process.argv.indexOf('--stream-records');
  const given = i > 0 ? (process.argv[i + 1] ?? '') : '100000';
  const sizes = given.split(',').map(Number);
  if (sizes.some((n) => !Number.isSafeInteger(n) || n <= 0)) {
    throw new Error(`--stream-records: a size or a comma-separated list of sizes, not "${given}"`);
  }
  return [...new Set(sizes)].sort((a, b) => a - b);
})();
/**
 * A signed checkpoint over every this many seeded records (a busy server's timer and exports): export and verify
 * must stay flat in the checkpoints too, not only in the records.
 */
const STREAM_CHECKPOINT_EVERY = arg('--stream-checkpoint-every', 100);
/** Records in the chain for the trace: at least the largest size export and verify ran at. */
const AUDIT_RECORDS = Math.max(arg('--audit-records', 1_000_000), STREAM_SIZES[STREAM_SIZES.length - 1]!);
/** Samples per latency figure. */
const SAMPLES = arg('--samples', 20);
/**
 * EndSession calls at rest per size: enough that p99 is not the largest of a handful (at 300 it is the third
 * largest).
 */
const END_SAMPLES = arg('--end-samples', 300);
/** GETs of the CRL, back to back, by the relying party's process while EndSession calls run. */
const CRL_FETCHES = arg('--crl-fetches', 8);
const SEED_BATCH = 20_000;
/** Entries of the baseline in the entries part. */
const BASE_ENTRIES = 1_000;
const PARTS = ['revocations', 'entries', 'fanout', 'audit'] as const;
const skipped = new Set(
  (process.argv.includes('--skip') ? (process.argv[process.argv.indexOf('--skip') + 1] ?? '') : '')
    .split(',')
    .filter((p) => p !== ''),
);
for (const p of skipped) {
  if (!(PARTS as readonly string[]).includes(p))
    throw new Error(`--skip: unknown part ${p} (${PARTS.join(', ')})`);
}
const runs = (part: (typeof PARTS)[number]): boolean => !skipped.has(part);
const FROM_SOURCE = process.argv.includes('--from-source');
const RESTARTS = arg('--restarts', 1);
const RESTART_ONLY = process.argv.includes('--restart-only');
const HEAP_SNAPSHOTS = process.argv.includes('--heap-snapshots');

const out = (s: string): boolean => process.stdout.write(s);
const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

function line(name: string, value: string): void {
  out(`  ${name.padEnd(64)} ${value}\n`);
}

function latency(name: string, samples: number[]): { p50: number; p99: number } {
  const r = { p50: pct(samples, 50), p99: pct(samples, 99) };
  line(name, `p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms (${samples.length} calls)`);
  return r;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = process.hrtime.bigint();
  const r = await fn();
  return [r, ms(t0)];
}

/**
 * Registration entries written straight into the server's SQLite file through the store's own SqliteEntries on a
 * second connection (the same checks, encoders and selector rows as CreateEntry), SEED_BATCH per transaction:
 * one commit per batch instead of one durable commit per entry.
 */
function seedEntries(file: string, first: number, count: number): void {
  const db = new Database(file);
  db.pragma('busy_timeout = 60000');
  const entries = new SqliteEntries(db, () => new Date());
  const batch = db.transaction((from: number, n: number) => {
    for (let i = from; i < from + n; i++) {
      entries.createEntry(
        newEntry({
          spiffeId: `spiffe://${TD}/seeded/${i}`,
          selectors: [{ type: 'unix', value: `uid:${i}` }],
        }),
      );
    }
  });
  for (let done = 0; done < count; done += SEED_BATCH) {
    batch.immediate(first + done, Math.min(SEED_BATCH, count - done));
  }
  db.close();
}

/** Join-token Attests of `agent`'s entry, one at a time: latency of each. */
async function attestLatencies(s: ServerUnderBench, spiffeId: string, samples: number): Promise<number[]> {
  const tokens = [];
  for (let i = 0; i < samples; i++) tokens.push((await s.client.createJoinToken({ spiffeId })).token);
  const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD);
  const times: number[] = [];
  try {
    for (const token of tokens) {
      const { csr } = newKey();
      const [, t] = await timed(() =>
        attest(pub.attestation, { attestorType: 'join_token', evidence: Buffer.from(token), csr }),
      );
      times.push(t);
    }
  } finally {
    pub.close();
  }
  return times;
}

/**
 * The disk's own part of EndSession's latency, measured in the same run: a small write into a file in the
 * server's data directory and its fsync(2) on libuv's threadpool, as the server's WalFsync makes each commit
 * durable (EndSession is answered only once its revocation's commit is). One probe after each EndSession call,
 * never during one, so the two sets of samples are interleaved in time and see the same disk. The write
 * overwrites 4 KiB at the next offset of a preallocated file, as SQLite reuses its -wal after a checkpoint.
 */
class DiskProbe {
  private static readonly WRITE = Buffer.alloc(4096, 0x5a);
  private static readonly FILE_BYTES = 4 * 1024 * 1024;
  private readonly fd: number;
  private readonly file: string;
  private offset = 0;
  readonly samples: number[] = [];

  constructor(dir: string) {
    this.file = path.join(dir, 'bench-fsync-probe');
    this.fd = fs.openSync(this.file, 'w+', 0o600);
    fs.writeSync(this.fd, Buffer.alloc(DiskProbe.FILE_BYTES));
    fs.fsyncSync(this.fd);
  }

  async probe(): Promise<void> {
    const t0 = process.hrtime.bigint();
    await writeAt(this.fd, DiskProbe.WRITE, this.offset);
    await fsyncAsync(this.fd);
    this.samples.push(ms(t0));
    this.offset = (this.offset + DiskProbe.WRITE.length) % DiskProbe.FILE_BYTES;
  }

  /** The samples since the last take, printed as `name`. */
  report(name: string): { p50: number; p99: number } {
    const r = latency(name, this.samples);
    this.samples.length = 0;
    return r;
  }

  close(): void {
    fs.closeSync(this.fd);
    fs.rmSync(this.file, { force: true });
  }
}
const fsyncAsync = promisify(fs.fsync);
const writeAt = (fd: number, b: Buffer, at: number): Promise<unknown> =>
  new Promise((resolve, reject) => fs.write(fd, b, 0, b.length, at, (e, n) => (e ? reject(e) : resolve(n))));

/**
 * One EndSession as the session's agent makes it: on its connection, made and ready before the clock starts (as
 * the issuance bench times Renew), so the figure is the call's, not a new channel's TCP and mTLS set-up, which a
 * fresh client per call added to it (docs/design/performance-log.md, "EndSession on the agent's connection").
 */
async function endSessionOnConnection(
  s: ServerUnderBench,
  sess: Agent,
  sessionId: string,
): Promise<{ start: bigint; ms: number }> {
  const c = sessionClient(s, sess);
  try {
    await new Promise<void>((resolve, reject) =>
      c.waitForReady(Date.now() + 30_000, (e) => (e ? reject(e) : resolve())),
    );
    const start = process.hrtime.bigint();
    await unary(c.endSession.bind(c), EndSessionRequest.fromPartial({ sessionId, reason: 'bench' }));
    return { start, ms: ms(start) };
  } finally {
    c.close();
  }
}

/** StartSession then EndSession, `samples` times: EndSession's latency each time, a disk probe after each. */
async function endSessionLatencies(
  s: ServerUnderBench,
  agent: Agent,
  samples: number,
  disk: DiskProbe,
): Promise<number[]> {
  const times: number[] = [];
  const starts: bigint[] = [];
  for (let i = 0; i < samples; i++) {
    const { agent: sess, res } = await startSession(s, agent);
    const call = await endSessionOnConnection(s, sess, res.sessionId);
    starts.push(call.start);
    times.push(call.ms);
    await disk.probe();
  }
  logCalls('at rest', { times, starts });
  return times;
}

/**
 * LANYARD_BENCH_CALLS_FILE=file: every EndSession call timed, one JSON line each (the phase, its start as
 * process.hrtime in ns, its latency), to set beside what the server's thread did at that moment.
 */
const callLog: string[] = [];
function logCalls(phase: string, calls: Calls): void {
  calls.times.forEach((t, i) =>
    callLog.push(JSON.stringify({ phase, start: String(calls.starts[i]), ms: Number(t.toFixed(3)) })),
  );
}
function writeCallLog(): void {
  const file = process.env.LANYARD_BENCH_CALLS_FILE;
  if (file !== undefined && file !== '') fs.writeFileSync(file, callLog.join('\n') + '\n');
}

/**
 * Runs `fn` under the inspector's CPU profiler when LANYARD_BENCH_PROFILE_DIR is set, writing
 * `<dir>/<name>.cpuprofile` (the bench's own process: the watcher's client side; the server profiles itself).
 */
async function profiled<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const dir = process.env.LANYARD_BENCH_PROFILE_DIR;
  if (dir === undefined || dir === '') return fn();
  const session = new inspector.Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) =>
      session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))),
    );
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 500 });
  await post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = (await post('Profiler.stop')) as { profile: object };
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${name.replace(/\W+/g, '-')}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

/** A new verifier: WatchRevocations from sequence 0 into a client cache, until it holds the whole state. */
async function newWatcher(
  s: ServerUnderBench,
  agent: Agent,
): Promise<{ ms: number; cache: RevocationCache }> {
  const client = sessionClient(s, agent);
  const cache = new RevocationCache();
  const [handle, t] = await profiled(`watcher-sync-${Date.now()}`, () =>
    timed(async () => {
      const h = watchRevocationsInto(client, cache);
      await h.ready;
      return h;
    }),
  );
  handle.close();
  client.close();
  return { ms: t, cache };
}

/** Server memory after one stage of the run. */
interface Stage {
  label: string;
  rss: number;
  /** VmHWM since the stage before (the peak is reset after each stage). */
  peak: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  /** This process (the bench's clients), for comparison with the single-process figures of earlier runs. */
  benchRss: number;
}
const stages: Stage[] = [];

/** The server process's RSS now and its peak since the last stage, its main thread's heap; then a new peak. */
async function memoryStage(s: ServerUnderBench, label: string): Promise<void> {
  const m = s.memory();
  const h = await s.mainThread();
  s.resetPeak();
  const stage = { label, rss: m.rss, peak: m.peak, ...h, benchRss: processMemory('self').rss };
  stages.push(stage);
  line(
    `server RSS, ${label}`,
    `${mib(m.rss)}, peak ${mib(m.peak)} (heap ${mib(h.heapUsed)} of ${mib(h.heapTotal)}, external ${mib(h.external)})`,
  );
  const snapshot = await s.heapSnapshot(label);
  if (snapshot !== undefined) line(`server heap snapshot, ${label}`, snapshot);
}

function stageTable(): void {
  out('\nServer memory by stage (the server process alone; peak = VmHWM since the stage before)\n');
  out(
    `  ${'stage'.padEnd(52)} ${'RSS'.padStart(9)} ${'peak'.padStart(9)} ${'heap used'.padStart(9)} ` +
      `${'external'.padStart(9)} ${'bench'.padStart(9)}\n`,
  );
  for (const st of stages) {
    out(
      `  ${st.label.padEnd(52)} ${mib(st.rss).padStart(9)} ${mib(st.peak).padStart(9)} ` +
        `${mib(st.heapUsed).padStart(9)} ${mib(st.external).padStart(9)} ${mib(st.benchRss).padStart(9)}\n`,
    );
  }
  const peak = Math.max(...stages.map((st) => st.peak));
  line('server peak RSS over the run (VmHWM)', `${mib(peak)} (${(peak / 2 ** 30).toFixed(2)} GiB)`);
}

const lastCrlNumber = (s: ServerUnderBench): bigint =>
  s.crlsPublished().reduce((max, l) => (l.crlNumber > max ? l.crlNumber : max), -1n);

/**
 * A CRL that covers the changes so far, asked for as a relying party asks: GET the CRL endpoint (a request builds
 * when something changed; it waits for the build up to the server's maxWaitMs, then gets the last CRL). Waits
 * for the server's 'CRL published' line of the build that request started: the wall time until that line (the
 * 1 s spacing between builds included), the server's own build time, and the size of the CRL it served.
 */
async function crlAfterChange(
  s: ServerUnderBench,
): Promise<{ wallMs: number; published: CrlPublished; bytes: number; fetches: CrlFetch[] }> {
  const n0 = lastCrlNumber(s);
  const t0 = process.hrtime.bigint();
  const published = s.crlPublishedAfter(n0);
  for (;;) {
    const r = await s.fetchCrl('HEAD');
    // A new CRL is out, or the request waited maxWaitMs for a build that is still running: its line will come.
    if (lastCrlNumber(s) > n0 || r.ms >= CRL_DEFAULTS.maxWaitMs - 250) break;
    // Nothing had changed yet (the change is a call still in flight): ask again.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const p = await published;
  // Served once its line is out: this CRL, or a later one that covers the calls made meanwhile; fetched by the
  // relying party's own process, so this thread (which times the EndSession calls) does not receive it.
  const fetches = await fetchCrlElsewhere(s.crlUrl, 1);
  return { wallMs: Number(p.seenAt - t0) / 1e6, published: p, bytes: fetches[0]!.bytes, fetches };
}

/**
 * One GET of the CRL by the relying party's process: when it was sent, when the response's headers came (the
 * server's wait for a build before them) and its last byte (the transfer). process.hrtime is CLOCK_MONOTONIC,
 * one clock for every process on the machine, so these compare with this process's call times.
 */
interface CrlFetch {
  sent: bigint;
  headers: bigint;
  end: bigint;
  bytes: number;
}

/** The relying party: a node process of its own that GETs the CRL `count` times back to back, counting bytes. */
const FETCHER = `
const http = require('node:http');
const [url, count] = [process.argv[1], Number(process.argv[2])];
const one = () => new Promise((resolve, reject) => {
  const sent = process.hrtime.bigint();
  http.get(url, (res) => {
    const headers = process.hrtime.bigint();
    let bytes = 0;
    res.on('data', (c) => (bytes += c.length));
    res.on('end', () => {
      if (res.statusCode !== 200) return reject(new Error('GET the CRL: HTTP ' + res.statusCode));
      const end = process.hrtime.bigint();
      process.stdout.write(JSON.stringify({ sent: String(sent), headers: String(headers), end: String(end), bytes }) + '\\n');
      resolve();
    });
    res.on('error', reject);
  }).on('error', reject);
});
(async () => { for (let i = 0; i < count; i++) await one(); })().catch((e) => { console.error(String(e)); process.exit(1); });
`;

async function fetchCrlElsewhere(url: string, count: number): Promise<CrlFetch[]> {
  const r = await runProcess(process.execPath, ['-e', FETCHER, url, String(count)], { ignoreStdin: true });
  if (r.code !== 0) throw new Error(`the CRL fetcher: exit ${r.code}\n${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const j = JSON.parse(l) as { sent: string; headers: string; end: string; bytes: number };
      return { sent: BigInt(j.sent), headers: BigInt(j.headers), end: BigInt(j.end), bytes: j.bytes };
    });
}

/**
 * Until no CRL build runs: a request answered at once with no new CRL published meanwhile. Only while nothing
 * revokes (every change starts another build).
 */
async function crlSettled(s: ServerUnderBench): Promise<void> {
  for (;;) {
    const n = lastCrlNumber(s);
    // HEAD: its time is the server's wait for a build, not the transfer of a CRL of tens of MiB.
    const r = await s.fetchCrl('HEAD');
    if (r.ms < CRL_DEFAULTS.maxWaitMs - 250 && lastCrlNumber(s) === n) return;
    // A build ran or still runs: ask again once it has published, or after maxWaitMs in any case.
    const next = s.crlPublishedAfter(n);
    next.catch(() => undefined);
    await Promise.race([next, new Promise((resolve) => setTimeout(resolve, CRL_DEFAULTS.maxWaitMs))]);
  }
}

/**
 * EndSession calls one after another while `work` runs (at least `min`): their latencies, and how long `work` took.
 * What a CRL build costs the server's other calls.
 */
async function endSessionsDuring(
  s: ServerUnderBench,
  agent: Agent,
  disk: DiskProbe,
  work: () => Promise<unknown>,
  min = 3,
): Promise<Calls & { workMs: number }> {
  let done = false;
  const times: number[] = [];
  const starts: bigint[] = [];
  const calls = (async () => {
    while (!done || times.length < min) {
      const { agent: sess, res } = await startSession(s, agent);
      const call = await endSessionOnConnection(s, sess, res.sessionId);
      starts.push(call.start);
      times.push(call.ms);
      await disk.probe();
    }
  })();
  const [, workMs] = await timed(work);
  done = true;
  await calls;
  logCalls('during CRL work', { times, starts });
  return { times, starts, workMs };
}

/** EndSession calls: each one's latency and when it began (process.hrtime). */
interface Calls {
  times: number[];
  starts: bigint[];
}

/**
 * The calls split by what the server did while each ran: those that overlapped the transfer of a CRL to the
 * relying party's process (from its response headers to its last byte), those that overlapped a build only (from
 * the build's start, its 'CRL published' line less its duration, to that line), and the rest.
 */
function splitCalls(
  calls: Calls,
  fetches: readonly CrlFetch[],
  builds: readonly CrlPublished[],
): { fetch: number[]; build: number[]; rest: number[] } {
  const r = { fetch: [] as number[], build: [] as number[], rest: [] as number[] };
  const overlaps = (a: bigint, b: bigint, from: bigint, to: bigint): boolean => a < to && b > from;
  calls.times.forEach((t, i) => {
    const a = calls.starts[i]!;
    const b = a + BigInt(Math.round(t * 1e6));
    if (fetches.some((f) => overlaps(a, b, f.headers, f.end))) r.fetch.push(t);
    else if (builds.some((p) => overlaps(a, b, p.seenAt - BigInt(Math.round(p.durationMs * 1e6)), p.seenAt)))
      r.build.push(t);
    else r.rest.push(t);
  });
  return r;
}

/** EndSession calls during CRL work, printed by what they overlapped (splitCalls). */
function reportSplit(calls: Calls, fetches: readonly CrlFetch[], s: ServerUnderBench, label: string): void {
  logCalls('CRL transfer', {
    times: fetches.map((f) => Number(f.end - f.headers) / 1e6),
    starts: fetches.map((f) => f.headers),
  });
  const split = splitCalls(calls, fetches, s.crlsPublished());
  if (split.build.length > 0) latency(`  of which overlapped a build, not a transfer, ${label}`, split.build);
  if (split.fetch.length > 0)
    latency(`  of which overlapped the CRL's transfer to another process, ${label}`, split.fetch);
  if (split.rest.length > 0) latency(`  of which overlapped neither, ${label}`, split.rest);
}

/**
 * The floor under "EndSession while the CRL is transferred": what a transfer of the same size costs a call on the
 * same cores whoever sends it. A trivial GET (404, on a ready keep-alive connection, back to back) is timed at
 * rest and while the relying party's process GETs the CRL `CRL_FETCHES` times, twice: on the server's CRL
 * listener (the loop that also runs gRPC and writes the CRL) and on a plain node http server of its own sending
 * `bytes` bytes as one `res.end(buffer)`, with nothing else on its loop. No revocation happens meanwhile, so no
 * build runs: the transfer alone. Where the server's figures match the plain server's, what is left is the
 * receiving process and the kernel on the same cores, not the server's thread.
 */
async function transferFloor(s: ServerUnderBench, bytes: number, label: string): Promise<void> {
  await crlSettled(s);
  await trivialBesideTransfers(`the server's CRL listener, ${label}`, new URL('/x', s.crlUrl).href, s.crlUrl);
  const plain = spawn(process.execPath, ['-e', PLAIN_SERVER, String(bytes)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  try {
    const port = await new Promise<string>((resolve, reject) => {
      plain.stdout.once('data', (b: Buffer) => resolve(b.toString().trim()));
      plain.once('exit', (code) => reject(new Error(`the plain http server exited: ${code}`)));
    });
    const base = `http://127.0.0.1:${port}`;
    await trivialBesideTransfers(`a plain node http server, same size, ${label}`, `${base}/x`, `${base}/crl`);
  } finally {
    plain.stdin.end();
    plain.kill();
  }
}

/** The floor's sender: `bytes` bytes as one buffer, `res.end` of it; anything else is a 404. */
const PLAIN_SERVER = `
const http = require('node:http');
const n = Number(process.argv[1]);
const body = Buffer.alloc(n, 0x5a);
const server = http.createServer((req, res) => {
  if (req.url === '/crl') res.writeHead(200, { 'Content-Type': 'application/pkix-crl', 'Content-Length': n }).end(body);
  else res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\\n');
});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

/** Trivial GETs of `pingUrl` at rest, then while another process GETs `crlUrl`: printed split by overlap. */
async function trivialBesideTransfers(name: string, pingUrl: string, crlUrl: string): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const one = (): Promise<{ start: bigint; ms: number }> =>
    new Promise((resolve, reject) => {
      const start = process.hrtime.bigint();
      http
        .get(pingUrl, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ start, ms: ms(start) }));
          res.on('error', reject);
        })
        .on('error', reject);
    });
  try {
    for (let i = 0; i < 20; i++) await one();
    const rest: number[] = [];
    for (let i = 0; i < END_SAMPLES; i++) rest.push((await one()).ms);
    let done = false;
    const calls: Calls = { times: [], starts: [] };
    const pings = (async () => {
      while (!done) {
        const c = await one();
        calls.times.push(c.ms);
        calls.starts.push(c.start);
      }
    })();
    let fetches: CrlFetch[] = [];
    try {
      fetches = await fetchCrlElsewhere(crlUrl, CRL_FETCHES);
    } finally {
      done = true;
      await pings;
    }
    const split = splitCalls(calls, fetches, []);
    const transfers = fetches.map((f) => Number(f.end - f.headers) / 1e6);
    out(`  trivial GET on ${name}\n`);
    latency(`    at rest`, rest);
    latency(
      `    overlapping one of ${CRL_FETCHES} transfers (p50 ${pct(transfers, 50).toFixed(0)} ms)`,
      split.fetch,
    );
    if (split.rest.length > 0) latency(`    between transfers`, split.rest);
  } finally {
    agent.destroy();
  }
}

/** WatchRevocations from 0, packed pages received but not decoded: the server's part of a sync (and gRPC's). */
async function pagesOnly(s: ServerUnderBench, agent: Agent): Promise<{ ms: number; bytes: number }> {
  const client = sessionClient(s, agent);
  try {
    let bytes = 0;
    const [, t] = await timed(
      () =>
        new Promise<void>((resolve, reject) => {
          const call = client.watchRevocations({ afterSequence: 0, packed: true });
          call.on('data', (m: { packedRevocations: Uint8Array; synced: boolean }) => {
            bytes += m.packedRevocations.length;
            if (m.synced) {
              call.cancel();
              resolve();
            }
          });
          call.on('error', (e: { code?: number }) => {
            if (e.code !== 1) reject(e as Error);
          });
        }),
    );
    return { ms: t, bytes };
  } finally {
    client.close();
  }
}

/** Revocation-side figures at the current state of the server. */
async function revocationFigures(
  s: ServerUnderBench,
  agent: Agent,
  label: string,
): Promise<Record<string, number>> {
  const disk = new DiskProbe(s.dataDir);
  try {
    return await revocationFiguresWith(s, agent, label, disk);
  } finally {
    disk.close();
  }
}

/**
 * A restart on the data dir that holds the large revocation list, as an operator's restart or an upgrade: the
 * server reads the revocation state for new watchers after it is ready (revocation_feed.warm_snapshot). A new
 * watcher right at ready joins that read; one after it is served from the chunks it kept.
 */
async function restartPart(old: ServerUnderBench, agent: Agent): Promise<ServerUnderBench> {
  out('\nRestart on the same data dir\n');
  const s = await old.restart();
  line('server start until ready, the revocations in its store', `${s.startMs.toFixed(0)} ms`);
  const atReady = await newWatcher(s, agent);
  line('new watcher right at ready (joins the start-up read of the state)', `${atReady.ms.toFixed(0)} ms`);
  atReady.cache.close();
  const warmed = await s.snapshotWarmed();
  line(
    'start-up read of the revocation state, from ready',
    `${warmed.ms} ms, ${warmed.outcome}, ${warmed.chunks} chunks kept, ${mib(warmed.bytes)}`,
  );
  const after = await newWatcher(s, agent);
  line('new watcher after the start-up read (served from the kept chunks)', `${after.ms.toFixed(0)} ms`);
  after.cache.close();
  await memoryStage(s, 'restarted on the large list, two watchers synced');
  return s;
}

/** revocationFigures, the data directory's fsync probed after each EndSession call and printed beside it. */
async function revocationFiguresWith(
  s: ServerUnderBench,
  agent: Agent,
  label: string,
  disk: DiskProbe,
): Promise<Record<string, number>> {
  const end = latency(`EndSession, ${label}`, await endSessionLatencies(s, agent, END_SAMPLES, disk));
  const endDisk = disk.report(`  the data dir's fsync, probed after each of those calls`);
  // The CRL is built in a worker thread: EndSession is measured while the build runs.
  let crl!: Awaited<ReturnType<typeof crlAfterChange>>;
  const first = await endSessionsDuring(s, agent, disk, async () => {
    crl = await crlAfterChange(s);
  });
  line(
    `first CRL after a change, ${label}`,
    `${crl.wallMs.toFixed(0)} ms (the build ${crl.published.durationMs} ms), ` +
      `${crl.published.revoked.toLocaleString('en-US')} serials, ${mib(crl.bytes)} DER`,
  );
  const during = latency(`EndSession while that CRL is built and fetched, ${label}`, first.times);
  disk.report(`  the data dir's fsync, probed after each of those calls`);
  reportSplit(first, crl.fetches, s, label);
  await crlSettled(s);
  await memoryStage(s, `${label}, first CRL built`);
  // The next build after a few more revocations: what a CRL request pays once the list is held.
  let next!: Awaited<ReturnType<typeof crlAfterChange>>;
  const second = await endSessionsDuring(s, agent, disk, async () => {
    next = await crlAfterChange(s);
  });
  line(
    `CRL after a few more revocations (incremental), ${label}`,
    `${next.wallMs.toFixed(0)} ms (the build ${next.published.durationMs} ms), ` +
      `${next.published.revoked.toLocaleString('en-US')} serials, ${next.published.added} added`,
  );
  const duringNext = latency(
    `EndSession while the incremental CRL is built and fetched, ${label}`,
    second.times,
  );
  disk.report(`  the data dir's fsync, probed after each of those calls`);
  reportSplit(second, next.fetches, s, label);
  await crlSettled(s);
  // A relying party fetching over and over while sessions end: each GET after a revocation waits for an
  // incremental build (up to maxWaitMs), then receives the whole CRL.
  let fetches: CrlFetch[] = [];
  const repeated = await endSessionsDuring(s, agent, disk, async () => {
    fetches = await fetchCrlElsewhere(s.crlUrl, CRL_FETCHES);
  });
  const transfers = fetches.map((f) => Number(f.end - f.headers) / 1e6);
  line(
    `${CRL_FETCHES} GETs of the CRL back to back by another process, ${label}`,
    `transfer p50 ${pct(transfers, 50).toFixed(0)} ms, wait for the build p50 ` +
      `${pct(
        fetches.map((f) => Number(f.headers - f.sent) / 1e6),
        50,
      ).toFixed(0)} ms`,
  );
  const duringFetches = latency(`EndSession while another process fetches the CRL, ${label}`, repeated.times);
  disk.report(`  the data dir's fsync, probed after each of those calls`);
  reportSplit(repeated, fetches, s, label);
  await crlSettled(s);
  await transferFloor(s, crl.bytes, label);
  // The first stream from 0 reads the state from the store (the snapshot reader) and keeps its full chunks
  // (WATCH_DEFAULTS.snapshotCacheBytes); every later new watcher is served from them. Both are printed. The
  // server here started before the seeding, so its start-up warm-up (revocation_feed.warm_snapshot) found
  // nothing to read: the first figure is what the first new verifier after a server start waited for before
  // the warm-up, and still waits for when it arrives before the warm-up ends, or with warm_snapshot false.
  const pages = await pagesOnly(s, agent);
  line(
    `new watcher, server's part: packed pages until synced, not decoded, the first since the seeding (read from the store), ${label}`,
    `${pages.ms.toFixed(0)} ms, ${mib(pages.bytes)}`,
  );
  const watcher = await newWatcher(s, agent);
  line(
    `new watcher: WatchRevocations until synced, served from the kept chunks, ${label}`,
    `${watcher.ms.toFixed(0)} ms`,
  );
  const q = { serialHex: 'abc', certSha256Hex: '00', spiffeId: `spiffe://${TD}/x`, delegationSessionIds: [] };
  const n = 200_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) watcher.cache.isRevoked(q);
  const checkPerSec = n / (ms(t0) / 1000);
  line(
    `revocation check in the client cache, ${label}`,
    `${Math.round(checkPerSec).toLocaleString('en-US')} /s`,
  );
  watcher.cache.close();
  await memoryStage(s, `${label}, a watcher synced`);
  return {
    endP50: end.p50,
    endP99: end.p99,
    diskP50: endDisk.p50,
    diskP99: endDisk.p99,
    duringP99: Math.max(during.p99, duringNext.p99, duringFetches.p99),
    crlMs: crl.wallMs,
    nextMs: next.wallMs,
    pagesMs: pages.ms,
    watcherMs: watcher.ms,
    checkPerSec,
  };
}

async function fanOut(s: ServerUnderBench, agent: Agent, watchers: number): Promise<void> {
  // 4 streams per connection: the server's default cap (limits.watchers_per_connection).
  const clients = Array.from({ length: Math.ceil(watchers / 4) }, () => sessionClient(s, agent));
  const caches: RevocationCache[] = [];
  const handles: ReturnType<typeof watchRevocationsInto>[] = [];
  const from = s.lastRevocationSequence();
  for (let i = 0; i < watchers; i++) {
    // A verifier that restarts with its state resumes from its sequence: these start at the current one.
    const cache = new RevocationCache();
    cache.apply({ entries: [], sequence: from, fullState: true, synced: false });
    caches.push(cache);
    handles.push(watchRevocationsInto(clients[Math.floor(i / 4)]!, cache));
  }
  const [, startMs] = await timed(() => Promise.all(handles.map((h) => h.ready)));
  line(`${watchers} watchers resuming at the current sequence: all synced`, `${startMs.toFixed(0)} ms`);
  const rounds: number[][] = [];
  for (let r = 0; r < 3; r++) {
    const { agent: sess, res } = await startSession(s, agent);
    const seen: number[] = [];
    // Each cache says when it applied the revocation (its 'revoked' event): no polling loop competing with
    // the server for the same cores.
    let t0 = process.hrtime.bigint();
    let allSeen!: () => void;
    const done = new Promise<void>((resolve) => (allSeen = resolve));
    const stops = caches.map((c) => {
      const stop = c.onChange((entries) => {
        if (!entries.some((e) => e.kind === 'session' && e.id === res.sessionId)) return;
        seen.push(ms(t0));
        stop();
        if (seen.length === caches.length) allSeen();
      });
      return stop;
    });
    t0 = process.hrtime.bigint();
    await endSession(s, sess, res.sessionId, 'bench');
    await done;
    for (const stop of stops) stop();
    rounds.push(seen);
  }
  latency(`EndSession until each of ${watchers} watchers holds it (3 rounds)`, rounds.flat());
  await memoryStage(s, `${watchers.toLocaleString('en-US')} watchers streaming`);
  for (const h of handles) h.close();
  for (const c of clients) c.close();
  for (const c of caches) c.close();
}

/** CreateJoinToken naming an entry by a SPIFFE ID that prefixes every seeded one, and one page of `entry list`. */
async function entryLookups(
  s: ServerUnderBench,
  prefixId: string,
): Promise<{ token: number[]; page: number[] }> {
  const token: number[] = [];
  const page: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    token.push((await timed(() => s.client.createJoinToken({ spiffeId: prefixId })))[1]);
    page.push(
      (
        await timed(() =>
          s.client.listEntries({
            filter: { spiffeIdPrefix: `${prefixId}/`, parentId: '', bySelectors: undefined },
            pageSize: 500,
          }),
        )
      )[1],
    );
  }
  return { token, page };
}

async function entriesPart(s: ServerUnderBench, agent: Agent): Promise<void> {
  out('\nRegistration entries\n');
  // An entry whose SPIFFE ID prefixes every seeded one: naming it must not read them.
  const prefixId = `spiffe://${TD}/seeded`;
  await s.client.createEntry({ entry: { spiffeId: prefixId, selectors: [] } });
  // The baseline is the same server with BASE_ENTRIES entries, so a page of the listing is full in both.
  const base = Math.min(BASE_ENTRIES, ENTRIES);
  const file = s.sqliteFile;
  seedEntries(file, 0, base);
  const b = base.toLocaleString('en-US');
  const few = latency(`join-token Attest, ${b} entries`, await attestLatencies(s, agent.spiffeId, SAMPLES));
  const fewLookups = await entryLookups(s, prefixId);
  const fewToken = latency(`CreateJoinToken by a SPIFFE ID that prefixes ${b} others`, fewLookups.token);
  const fewPage = latency(`ListEntries, first page of 500 by prefix, ${b} entries`, fewLookups.page);
  const [, entriesMs] = await timed(async () => seedEntries(file, base, ENTRIES - base));
  line(
    `seeded ${(ENTRIES - base).toLocaleString('en-US')} more entries into the store (not a figure)`,
    `${(entriesMs / 1000).toFixed(1)} s`,
  );
  const n = ENTRIES.toLocaleString('en-US');
  const many = latency(`join-token Attest, ${n} entries`, await attestLatencies(s, agent.spiffeId, SAMPLES));
  const manyLookups = await entryLookups(s, prefixId);
  const manyToken = latency(`CreateJoinToken by a SPIFFE ID that prefixes ${n} others`, manyLookups.token);
  const manyPage = latency(`ListEntries, first page of 500 by prefix, ${n} entries`, manyLookups.page);
  line('Attest p50: large / baseline', (many.p50 / few.p50).toFixed(2));
  line('CreateJoinToken p50: large / baseline', (manyToken.p50 / fewToken.p50).toFixed(2));
  line('ListEntries page p50: large / baseline', (manyPage.p50 / fewPage.p50).toFixed(2));
  await memoryStage(s, `${n} entries`);
}

/**
 * A `lanyard` command as its own process (asynchronously: the server runs in this process and must answer it):
 * wall time, and peak RSS when /usr/bin/time is there to report it.
 */
async function cliRun(args: string[]): Promise<{ ms: number; rssKiB?: number; stdout: string }> {
  const timeBin = '/usr/bin/time';
  const withTime = fs.existsSync(timeBin);
  const argv = [process.execPath, BIN, ...args];
  const t0 = process.hrtime.bigint();
  const r = await runProcess(
    withTime ? timeBin : argv[0]!,
    withTime ? ['-f', 'maxrss=%M', ...argv] : argv.slice(1),
    {
      env: { ...process.env, LANYARD_FROM_SOURCE: '1' },
    },
  );
  const elapsed = ms(t0);
  if (r.code !== 0) throw new Error(`lanyard ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  const rss = /maxrss=(\d+)/.exec(r.stderr)?.[1];
  return { ms: elapsed, ...(rss !== undefined && { rssKiB: Number(rss) }), stdout: r.stdout };
}

interface StreamFigures {
  exportMs: number;
  exportRss?: number;
  verifyFileMs: number;
  verifyFileRss?: number;
  verifyServerMs: number;
  verifyServerRss?: number;
  bytes: number;
}

/** `audit export --out`, `audit verify --file` on it, and `audit verify --server`, each as a process. */
async function streamFigures(
  s: ServerUnderBench,
  dir: string,
  bundleFile: string,
  label: string,
): Promise<StreamFigures> {
  const socket = ['--socket', s.config.adminSocketPath];
  const file = path.join(dir, `export-${label.replace(/\W+/g, '-')}.jsonl`);
  const exp = await cliRun(['audit', 'export', '--out', file, ...socket]);
  const bytes = fs.statSync(file).size;
  const vf = await cliRun(['audit', 'verify', '--file', file, '--bundle', bundleFile]);
  fs.rmSync(file, { force: true });
  const vs = await cliRun(['audit', 'verify', '--server', ...socket]);
  const rss = (k?: number): string => (k === undefined ? 'RSS n/a' : `peak RSS ${(k / 1024).toFixed(0)} MiB`);
  line(`audit export --out, ${label}`, `${(exp.ms / 1000).toFixed(1)} s, ${rss(exp.rssKiB)}, ${mib(bytes)}`);
  line(`audit verify --file, ${label}`, `${(vf.ms / 1000).toFixed(1)} s, ${rss(vf.rssKiB)}`);
  line(`audit verify --server, ${label}`, `${(vs.ms / 1000).toFixed(1)} s, ${rss(vs.rssKiB)}`);
  return {
    exportMs: exp.ms,
    verifyFileMs: vf.ms,
    verifyServerMs: vs.ms,
    bytes,
    ...(exp.rssKiB !== undefined && { exportRss: exp.rssKiB }),
    ...(vf.rssKiB !== undefined && { verifyFileRss: vf.rssKiB }),
    ...(vs.rssKiB !== undefined && { verifyServerRss: vs.rssKiB }),
  };
}

/**
 * `audit trace --principal` as the CLI does it: the server's part is its QueryAuditRecords calls (the principal's
 * records, then each of its root sessions), measured here on the admin socket; the CLI's own part is building
 * the trace from them. Then whole `lanyard audit trace` processes, node start-up included.
 */
async function traceFigures(s: ServerUnderBench, roots: number): Promise<void> {
  const client = new AuditAdminClient(s.config.adminSocketPath, { timeoutMs: 120_000 });
  const server: number[] = [];
  const build: number[] = [];
  let records = 0;
  try {
    for (let i = 0; i < 50; i++) {
      const principal = `user-${Math.floor(Math.random() * Math.min(PRINCIPALS, roots))}`;
      const t0 = process.hrtime.bigint();
      const first = await client.query('principal', principal);
      const all = [...first];
      const rootIds = new Set(first.map((l) => (JSON.parse(l) as { rootSessionId?: string }).rootSessionId));
      for (const root of rootIds)
        if (root !== undefined) all.push(...(await client.query('rootSessionId', root)));
      server.push(ms(t0));
      const t1 = process.hrtime.bigint();
      buildTrace(
        all.map((l) => {
          const { type: _type, ...r } = JSON.parse(l) as Record<string, unknown>;
          return parseRecord(r);
        }),
      );
      build.push(ms(t1));
      records += all.length;
    }
  } finally {
    client.close();
  }
  latency(
    `audit trace --principal: the server's queries (${(records / 50).toFixed(0)} records each)`,
    server,
  );
  latency('audit trace --principal: building the trace (the CLI)', build);
  const whole: number[] = [];
  for (let i = 0; i < 3; i++) {
    const principal = `user-${Math.floor(Math.random() * Math.min(PRINCIPALS, roots))}`;
    const socket = ['--socket', s.config.adminSocketPath];
    whole.push((await cliRun(['audit', 'trace', '--principal', principal, '--json', ...socket])).ms);
  }
  latency('lanyard audit trace --principal, whole process (node start-up included)', whole);
}

async function auditPart(s: ServerUnderBench): Promise<void> {
  out('\nAudit\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-bench-scale-audit-'));
  try {
    const bundleFile = path.join(dir, 'bundle.json');
    fs.writeFileSync(bundleFile, (await s.client.getBundle()).bundle!.spiffeBundleJson);
    const chain = s.chain;
    const file = s.sqliteFile;
    const small = await streamFigures(s, dir, bundleFile, 'the chain before seeding');
    const ratio = (a?: number, b?: number): string => (a && b ? (a / b).toFixed(2) : 'n/a');
    const perSec = (n: number, msTaken: number): string =>
      `${Math.round((n / msTaken) * 1000).toLocaleString('en-US')} records/s`;
    // Export and verify read the whole chain: they run at each STREAM_SIZES, the trace at AUDIT_RECORDS.
    let seeded = 0;
    for (const size of STREAM_SIZES) {
      const [, seedMs] = await timed(async () =>
        seedAuditRecords(file, chain, size - seeded, seeded, {
          every: STREAM_CHECKPOINT_EVERY,
          // The server's own signing key, read from its data dir (0600) as the server reads it.
          key: AuditSigningKey.loadOrCreate(path.join(s.dataDir, AUDIT_KEY_FILE)),
        }),
      );
      seeded = size;
      const sn = size.toLocaleString('en-US');
      line(
        `seeded up to ${sn} audit records, a checkpoint every ${STREAM_CHECKPOINT_EVERY} (not a figure)`,
        `${(seedMs / 1000).toFixed(1)} s`,
      );
      const big = await streamFigures(s, dir, bundleFile, `${sn} records`);
      line(`peak RSS at ${sn} / before seeding: export`, ratio(big.exportRss, small.exportRss));
      line(
        `peak RSS at ${sn} / before seeding: verify --file`,
        ratio(big.verifyFileRss, small.verifyFileRss),
      );
      line(
        `peak RSS at ${sn} / before seeding: verify --server`,
        ratio(big.verifyServerRss, small.verifyServerRss),
      );
      // Whole processes, node start-up included: at small sizes that start-up is most of it.
      line(`export, ${sn} records, whole process`, perSec(size, big.exportMs));
      line(`verify --file, ${sn} records, whole process`, perSec(size, big.verifyFileMs));
      line(`verify --server, ${sn} records, whole process`, perSec(size, big.verifyServerMs));
    }
    const [, restMs] = await timed(async () => seedAuditRecords(file, chain, AUDIT_RECORDS - seeded, seeded));
    line(
      `seeded up to ${AUDIT_RECORDS.toLocaleString('en-US')} records (not a figure)`,
      `${(restMs / 1000).toFixed(1)} s`,
    );
    await traceFigures(s, Math.floor(AUDIT_RECORDS / PER_ROOT));
    await memoryStage(s, `${AUDIT_RECORDS.toLocaleString('en-US')} audit records`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The figures at the large size, each beside the baseline's. */
async function largeRevocationFigures(
  s: ServerUnderBench,
  agent: Agent,
  small: Record<string, number>,
): Promise<void> {
  const big = await revocationFigures(s, agent, `${REVOCATIONS.toLocaleString('en-US')} revocations`);
  line('EndSession p99: large / baseline', (big.endP99! / small.endP99!).toFixed(2));
  for (const [name, r] of [
    ['baseline', small],
    ['large', big],
  ] as const) {
    line(
      `EndSession at rest against the data dir's fsync, ${name}`,
      `p50 ${r.endP50!.toFixed(1)} / ${r.diskP50!.toFixed(1)} ms, p99 ${r.endP99!.toFixed(1)} / ` +
        `${r.diskP99!.toFixed(1)} ms`,
    );
  }
  line(
    'EndSession p99 during a CRL build (large) / baseline without',
    (big.duringP99! / small.endP99!).toFixed(2),
  );
}

async function main(): Promise<void> {
  out(
    `Lanyard scale benchmark (node ${process.version}, ${os.cpus().length} CPUs, load average ` +
      `${os.loadavg()[0]!.toFixed(1)})\n`,
  );
  const started = process.hrtime.bigint();
  const profileDir = process.env.LANYARD_BENCH_PROFILE_DIR;
  let s = await startBenchServer({
    trustDomain: TD,
    watchers: WATCHERS,
    fromSource: FROM_SOURCE,
    heapSnapshots: HEAP_SNAPSHOTS,
    ...(profileDir !== undefined && profileDir !== '' && { cpuProfileDir: path.resolve(profileDir) }),
  });
  out(`server: pid ${s.pid}, ${s.runtime === 'dist' ? 'dist/' : 'the sources under tsx'}\n\n`);
  try {
    const agent = await register(s, 'bench-verifier');
    await memoryStage(s, 'started, one agent registered');

    if (runs('revocations') && REVOCATIONS > 0) {
      out('\nRevocations\n');
      const small = RESTART_ONLY
        ? undefined
        : await revocationFigures(s, agent, 'baseline (a few revocations)');
      const [, seedMs] = await timed(async () => seedRevocations(s.sqliteFile, REVOCATIONS));
      line(
        `seeded ${REVOCATIONS.toLocaleString('en-US')} revoked serials into the store (not a figure)`,
        `${(seedMs / 1000).toFixed(1)} s`,
      );
      if (small !== undefined) await largeRevocationFigures(s, agent, small);
      for (let i = 0; i < RESTARTS; i++) s = await restartPart(s, agent);
    }

    if (runs('entries')) await entriesPart(s, agent);

    if (runs('fanout') && WATCHERS > 0) {
      out('\nFan-out\n');
      await fanOut(s, agent, WATCHERS);
    }

    if (runs('audit') && AUDIT_RECORDS > 0) await auditPart(s);
    stageTable();
  } finally {
    await s.stop();
    writeCallLog();
  }
  out(
    `\nwhole run ${(ms(started) / 1000).toFixed(0)} s, load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-scale: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
