/**
 * The server a scale bench measures, as its own process: `lanyard server run` (bin/lanyard.js: the compiled
 * dist/ when it is current, built first when it is not) on a temp data dir, with the CRL and metrics listeners
 * on loopback. So its memory is its own (/proc/<pid>/status), not shared with the bench's clients, and its CPU
 * profile (LANYARD_BENCH_PROFILE_DIR) is of the server alone.
 *
 * The bench reaches it only the ways a deployment does: gRPC (public TLS and the admin socket), the CRL over
 * HTTP, /metrics, its JSON log lines, and its SQLite file (the seeding, on a second connection).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { parseSpiffeBundle, type X509Bundle } from '../src/bundle';
import { TrustDomain } from '../src/spiffe';
import { AdminClient } from '../src/server/admin-client';
import { SQLITE_FILE_NAME } from '../src/store';
import { SqliteSessions } from '../src/store/sqlite/sessions';
import { REPO_ROOT } from '../test/support/paths';
import { runProcess, spawnServer, type ServerProcess } from '../test/support/server-process';
import type { PublicServer } from '../test/support/sessions';

// bin/build-stamp.js is the launcher's own rule for "dist/ is current": the bench asks it the same question.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { distStaleReason } = require('../bin/build-stamp') as { distStaleReason(root: string): string | null };

/** /proc/<pid>/status, in bytes: what the kernel charges the process (every thread, workers included). */
export interface ProcessMemory {
  /** VmRSS: resident now. */
  rss: number;
  /** VmHWM: the peak since the process started or since the last resetPeak(). */
  peak: number;
  /** RssAnon: heap, stacks, malloc'd memory (V8, SQLite's page cache, OpenSSL). */
  anon: number;
  /** RssFile: mapped files (node, shared libraries, a memory-mapped database). */
  file: number;
}

/** The server's main thread, from its /metrics (prom-client reads process.memoryUsage and v8's heap spaces). */
export interface MainThreadMemory {
  heapUsed: number;
  heapTotal: number;
  /** Memory of JS objects held outside V8's heap (Buffers, typed arrays' stores). */
  external: number;
}

/** A 'CRL published' log line of the server. */
export interface CrlPublished {
  crlNumber: bigint;
  revoked: number;
  added: number;
  full: boolean;
  durationMs: number;
  /** When the bench read the line (process.hrtime). */
  seenAt: bigint;
}

export interface ServerUnderBench extends PublicServer {
  pid: number;
  dataDir: string;
  sqliteFile: string;
  /** Admin API on the server's socket. */
  client: AdminClient;
  config: { adminSocketPath: string };
  /** The server's audit chain (its SPIFFE ID). */
  chain: string;
  /** How the server runs: the compiled dist/ or the sources under tsx. */
  runtime: 'dist' | 'source';
  memory(): ProcessMemory;
  /** Makes VmHWM the current RSS, so the next memory() reports the peak since now. */
  resetPeak(): void;
  mainThread(): Promise<MainThreadMemory>;
  /** Every 'CRL published' line so far. */
  crlsPublished(): readonly CrlPublished[];
  /** Resolves with the first 'CRL published' line whose cRLNumber is above `after`. */
  crlPublishedAfter(after: bigint): Promise<CrlPublished>;
  /**
   * GET the active CA's CRL (DER) as a relying party does: its size, and how long the request took. HEAD asks the
   * same (a build when something changed) without the body, so its time is the server's wait alone.
   */
  fetchCrl(method?: 'GET' | 'HEAD'): Promise<{ bytes: number; ms: number }>;
  /** The active CA's CRL (DER) URL, for a relying party in another process. */
  crlUrl: string;
  /** The last revocation sequence committed, read by the store's own code. */
  lastRevocationSequence(): number;
  /** SIGUSR2: the server writes a heap snapshot into its data dir's `heap/` (started with `heapSnapshots`). */
  heapSnapshot(label: string): Promise<string | undefined>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /**
   * SIGTERM, then a new server process on the same data dir and configuration (its listeners on new ports): what
   * an operator's restart does. This object is stopped; use the one returned.
   */
  restart(): Promise<ServerUnderBench>;
  /** Milliseconds from spawning this process until it logged that it was ready. */
  startMs: number;
  /**
   * The server's 'revocation state read for new watchers' line (revocation_feed.warm_snapshot), once logged: how
   * the start-up read of the revocation state ended, the chunks and bytes it kept and how long it took.
   */
  snapshotWarmed(): Promise<{ outcome: string; chunks: number; bytes: number; ms: number }>;
}

export interface BenchServerOptions {
  trustDomain: string;
  /** limits.watchers and limits.watchers_per_identity (the bench's watchers share one identity). */
  watchers: number;
  /** Run the TypeScript sources under tsx instead of dist/ (no build). */
  fromSource?: boolean;
  /** Start node with --heapsnapshot-signal=SIGUSR2. */
  heapSnapshots?: boolean;
  /** Start node with --cpu-prof into this directory (the profile is written when the server exits). */
  cpuProfileDir?: string;
  /** Start on this data dir (a restart) rather than a new one. */
  dataDir?: string;
}

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

function statusBytes(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  if (m === null) throw new Error(`/proc status has no ${field}`);
  return Number(m[1]) * 1024;
}

/** Node's process: the bench's own figures use the same reading. */
export function processMemory(pid: number | 'self'): ProcessMemory {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    rss: statusBytes(status, 'VmRSS'),
    peak: statusBytes(status, 'VmHWM'),
    anon: statusBytes(status, 'RssAnon'),
    file: statusBytes(status, 'RssFile'),
  };
}

function httpGet(
  address: string,
  urlPath: string,
  method: 'GET' | 'HEAD' = 'GET',
  keepBody = true,
): Promise<{ status: number; body: Buffer; length: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`http://${address}${urlPath}`, { method }, (res) => {
      const chunks: Buffer[] = [];
      let received = 0;
      res.on('data', (c: Buffer) => {
        received += c.length;
        // The CRL (tens of MiB) is only counted: concatenating it would block this process, whose event loop
        // also times the EndSession calls made meanwhile.
        if (keepBody || res.statusCode !== 200) chunks.push(c);
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const length = method === 'HEAD' ? Number(res.headers['content-length'] ?? 0) : received;
        resolve({ status: res.statusCode ?? 0, body, length });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)`, 'm').exec(text);
  if (m === null) throw new Error(`/metrics has no ${name}`);
  return Number(m[1]);
}

/** Builds dist/ when the launcher would not run it (a commit since the last build): what an operator runs. */
async function ensureDist(): Promise<void> {
  const stale = distStaleReason(REPO_ROOT);
  if (stale === null) return;
  process.stdout.write(`(building dist/ first: ${stale})\n`);
  const r = await runProcess('npm', ['run', 'build'], { cwd: REPO_ROOT, ignoreStdin: true });
  if (r.code !== 0) throw new Error(`npm run build failed:\n${r.stdout}\n${r.stderr}`);
}

function configYaml(dataDir: string, o: BenchServerOptions): string {
  const watchers = Math.max(4096, o.watchers + 16);
  return [
    `trust_domain: ${o.trustDomain}`,
    `data_dir: ${JSON.stringify(dataDir)}`,
    'listen_address: 127.0.0.1:0',
    // Debug for the CRL publisher's 'CRL published' lines (a handful per run); nothing logs per call at debug.
    'log:',
    '  level: debug',
    'limits:',
    // The bench is the only user: its watchers are not a flood, and every one is the same verifier identity
    // (in a fleet each verifier has its own).
    `  watchers: ${watchers}`,
    `  watchers_per_identity: ${Math.max(256, o.watchers + 16)}`,
    'crl:',
    '  listen_address: 127.0.0.1:0',
    'metrics:',
    '  listen_address: 127.0.0.1:0',
    '',
  ].join('\n');
}

export async function startBenchServer(o: BenchServerOptions): Promise<ServerUnderBench> {
  if (o.fromSource !== true) await ensureDist();
  const dataDir = o.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-bench-scale-'));
  const configFile = path.join(dataDir, 'bench-server.yaml');
  fs.writeFileSync(configFile, configYaml(dataDir, o), { mode: 0o600 });
  const heapDir = path.join(dataDir, 'heap');
  const nodeOptions =
    o.heapSnapshots === true ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${heapDir}`] : [];
  if (o.heapSnapshots === true) fs.mkdirSync(heapDir, { recursive: true });
  const spawnedAt = process.hrtime.bigint();
  const proc: ServerProcess = spawnServer(
    ['--config', configFile],
    {
      // '' lets bin/lanyard.js run dist/ (current: ensured above); '1' forces the sources.
      LANYARD_FROM_SOURCE: o.fromSource === true ? '1' : '',
      LANYARD_LISTEN_ADDRESS: '',
      ...(nodeOptions.length > 0 && {
        NODE_OPTIONS: [process.env.NODE_OPTIONS ?? '', ...nodeOptions].join(' ').trim(),
      }),
    },
    // On node's command line: node refuses --cpu-prof in NODE_OPTIONS, and the server did not start.
    o.cpuProfileDir !== undefined ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfileDir}`] } : {},
  );
  // The server must not outlive the bench, however the bench ends.
  const killServer = (): void => {
    proc.kill();
    if (o.heapSnapshots !== true) fs.rmSync(dataDir, { recursive: true, force: true });
  };
  process.once('exit', killServer);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.exit(130);
    });
  }
  try {
    const publicAddress = await proc.ready;
    const startMs = ms(spawnedAt);
    const crlAddress = await loggedField(proc, 'CRL served over HTTP', 'crlAddress');
    const metricsAddress = await loggedField(proc, 'Prometheus metrics served at /metrics', 'metricsAddress');
    const chain = /server identity:\s+(\S+)/.exec(proc.stderr())?.[1];
    if (chain === undefined) throw new Error(`no server identity in the banner:\n${proc.stderr()}`);
    const runtime = o.fromSource === true || distStaleReason(REPO_ROOT) !== null ? 'source' : 'dist';
    const adminSocketPath = path.join(dataDir, 'admin.sock');
    const client = new AdminClient(adminSocketPath, { timeoutMs: 120_000 });
    const td = TrustDomain.parse(o.trustDomain);
    const bundleJson = (await client.getBundle()).bundle!.spiffeBundleJson;
    const bundle: X509Bundle = parseSpiffeBundle(td, bundleJson);
    const published = followCrlLog(proc);
    const sqliteFile = path.join(dataDir, SQLITE_FILE_NAME);
    const reader = new Database(sqliteFile, { readonly: true });
    const sessions = new SqliteSessions(reader, () => new Date());
    const pid = proc.child.pid!;
    return {
      pid,
      dataDir,
      sqliteFile,
      client,
      config: { adminSocketPath },
      chain,
      runtime,
      running: { publicAddress, ca: { bundle: () => bundle } },
      memory: () => processMemory(pid),
      resetPeak: () => fs.writeFileSync(`/proc/${pid}/clear_refs`, '5'),
      async mainThread() {
        const { body } = await httpGet(metricsAddress, '/metrics');
        const text = body.toString();
        return {
          heapUsed: metricValue(text, 'nodejs_heap_size_used_bytes'),
          heapTotal: metricValue(text, 'nodejs_heap_size_total_bytes'),
          external: metricValue(text, 'nodejs_external_memory_bytes'),
        };
      },
      crlsPublished: () => published.lines,
      crlPublishedAfter: (after) => published.after(after),
      crlUrl: `http://${crlAddress}/crl/${o.trustDomain}.crl`,
      async fetchCrl(method = 'GET') {
        const t0 = process.hrtime.bigint();
        const r = await httpGet(crlAddress, `/crl/${o.trustDomain}.crl`, method, false);
        if (r.status !== 200) throw new Error(`${method} the CRL: HTTP ${r.status} ${r.body.toString()}`);
        return { bytes: r.length, ms: ms(t0) };
      },
      lastRevocationSequence: () => sessions.lastRevocationSequence(),
      async heapSnapshot(label) {
        if (o.heapSnapshots !== true) return undefined;
        const before = new Set(fs.readdirSync(heapDir));
        proc.child.kill('SIGUSR2');
        // Node writes the snapshot synchronously on the server's thread, then renames nothing: the file is done
        // when the server answers again.
        for (;;) {
          await new Promise((r) => setTimeout(r, 500));
          const made = fs.readdirSync(heapDir).find((f) => !before.has(f));
          if (made !== undefined) {
            await client.getBundle();
            const named = path.join(heapDir, `${label.replace(/\W+/g, '-')}.heapsnapshot`);
            fs.renameSync(path.join(heapDir, made), named);
            return named;
          }
        }
      },
      async stop() {
        client.close();
        reader.close();
        proc.child.kill('SIGTERM');
        await proc.exited;
        if (o.heapSnapshots !== true) fs.rmSync(dataDir, { recursive: true, force: true });
        else process.stdout.write(`(heap snapshots kept in ${heapDir})\n`);
      },
      async restart() {
        client.close();
        reader.close();
        proc.child.kill('SIGTERM');
        await proc.exited;
        process.off('exit', killServer);
        return startBenchServer({ ...o, dataDir });
      },
      startMs,
      async snapshotWarmed() {
        const line = await loggedRecord(proc, 'revocation state read for new watchers');
        return {
          outcome: String(line.outcome),
          chunks: Number(line.chunks),
          bytes: Number(line.bytes),
          ms: Number(line.ms),
        };
      },
    };
  } catch (e) {
    proc.kill();
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
}

/** The server's first JSON log line with this message, once logged. */
async function loggedRecord(proc: ServerProcess, msg: string): Promise<Record<string, unknown>> {
  await proc.logged(msg);
  const line = proc
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((l) => l.msg === msg);
  if (line === undefined) throw new Error(`no JSON log line "${msg}"`);
  return line;
}

async function loggedField(proc: ServerProcess, msg: string, field: string): Promise<string> {
  const v = (await loggedRecord(proc, msg))[field];
  if (typeof v !== 'string') throw new Error(`log line "${msg}" has no ${field}`);
  return v;
}

/** The server's 'CRL published' lines, as they come. */
function followCrlLog(proc: ServerProcess): {
  lines: CrlPublished[];
  after(n: bigint): Promise<CrlPublished>;
} {
  const lines: CrlPublished[] = [];
  /** 'CRL build failed' lines: a build that failed publishes nothing, so a wait for it must end. */
  let failures = 0;
  const waiters: (() => void)[] = [];
  let partial = '';
  proc.child.stdout.on('data', (d: Buffer) => {
    const text = partial + d.toString();
    const split = text.split('\n');
    partial = split.pop() ?? '';
    for (const l of split) {
      if (l.includes('"CRL build failed')) failures += 1;
      if (!l.includes('"CRL published"')) continue;
      const j = JSON.parse(l) as {
        crlNumber: string;
        revoked: number;
        added: number;
        full: boolean;
        durationMs: number;
      };
      lines.push({
        crlNumber: BigInt(j.crlNumber),
        revoked: j.revoked,
        added: j.added,
        full: j.full,
        durationMs: j.durationMs,
        seenAt: process.hrtime.bigint(),
      });
    }
    for (const w of waiters.splice(0)) w();
  });
  const after = (n: bigint): Promise<CrlPublished> =>
    new Promise((resolve, reject) => {
      const failed = failures;
      const check = (): void => {
        const found = lines.find((l) => l.crlNumber > n);
        if (found !== undefined) resolve(found);
        else if (failures > failed) reject(new Error(`a CRL build failed (the server's log says why)`));
        else if (proc.child.exitCode !== null || proc.child.signalCode !== null)
          reject(new Error(`the server exited before a CRL numbered above ${n}`));
        else waiters.push(check);
      };
      check();
    });
  return { lines, after };
}
