/**
 * The cost of Lanyard at a hop, as ratios against a baseline measured in the same run (never asserted anywhere):
 *  1. mutual-TLS handshakes: plain Node TLS on both sides (the server checks the client chain against a CA file
 *     with OpenSSL, the client checks the server's the same way, no host-name check since SVIDs have none) vs the
 *     hop helpers on both sides (createHopTlsServer + tlsClientOptions: OpenSSL's chain check, then
 *     verifyX509Svid and an authorizer). The same certificates (P-256 leaf, intermediate and root), no session
 *     resumption on either side (a new full handshake each time);
 *  2. requests over https keep-alive connections to express, with and without lanyardExpress;
 *  3. the same for fastify, with and without the lanyardFastify plugin.
 * The baselines of 2 and 3 are plain Node https servers checking client certificates against the same CA file;
 * the request client (a minimal HTTP/1.1 client on kept-alive TLS connections, opened once before the warm-up
 * and never closed by the servers) is the same for both servers of a pair, and costs a fraction of a server's
 * request, so the server is what limits a window.
 *
 * Servers run on this thread, clients in a worker thread (scripts/bench-hop-clients.ts), so the server thread's
 * own CPU time per operation is measured apart from the clients' (Linux schedstat). A whole round is run first
 * and discarded (warm-up); then `rounds` rounds, each giving every pair its turn (the order rotating), so every
 * pair's rounds spread over the whole run. Within a pair's turn the two sides take turns in `slices` short
 * windows (which one goes first alternates), so load that comes and goes falls on both alike. A ratio is taken
 * within each round; the median over the rounds is printed with a distribution-free 95% confidence interval for
 * it (order statistics: no assumption about how load skews a round), and the server CPU Lanyard adds per
 * operation (the per-round difference, same interval), and the ratio of each side's least disturbed slice (other
 * processes only ever add to a slice's CPU per operation), and the ratio of each slice against the other side's
 * slice next to it (rounds × slices of them: a narrower interval where the load changes within a round). For handshakes, where Lanyard is on the client side
 * too, the client's CPU ratio and both ends' together are printed as well. CPU per operation survives a loaded
 * machine better than rates do; the interval says whether a run settles a target (with 7 rounds it is the whole
 * range, with 21 it narrows). `npm run bench` runs this in a process of its own (runHopBench).
 *
 *   npx tsx scripts/bench-hop.ts [--seconds 1] [--rounds 7] [--slices 5] [--concurrency 8]
 *                                [--pairs handshake,express,fastify,handshake-floor,express-floor,fastify-floor]
 *   (npm run bench runs it with the defaults: all six pairs; `express-own` and `fastify-own`, the helper against
 *   its floor's side in the same turns, only when named)
 */
import { spawn } from 'node:child_process';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { Worker } from 'node:worker_threads';
import express from 'express';
import fastify from 'fastify';
import { StaticX509Source } from '../src/client/static-x509-source';
import { toX509Svid } from '../src/svid/x509-svid';
import { lanyardExpress } from '../src/hop/express';
import { lanyardFastify } from '../src/hop/fastify';
import { createHopTlsServer, followSource, tlsServerOptions } from '../src/hop/tls';
import { authorizeAny } from '../src/verify';
import { encodePem } from '../src/x509/pem';
import { createPki, issueSvid, type Svid } from '../test/support/pki';
import {
  type HopClientKind,
  type HopClientsSetup,
  type HopWindow,
  type HopWindowResult,
  threadCpuNs,
} from './bench-hop-clients';

export interface HopBenchOptions {
  /** Time of one side in one round. */
  seconds: number;
  rounds: number;
  /** Turns per round: each side's time is split into this many slices, the two sides alternating. */
  slices: number;
  concurrency: number;
  /** Which pairs to measure (default all three), e.g. only the handshake with more rounds. */
  pairs: readonly HopPair[];
}

/**
 * The three pairs of issue 15, and for each the part of its cost that no hop helper can avoid, measured the same
 * way against the same baseline (a `-floor` pair has no Lanyard code on either side):
 *  - `handshake-floor`: the plain server reading the peer's leaf with `getPeerCertificate(false)`, the one way to
 *    its DER Node 20 offers a server (see performance.md "The hop ratios, measured tight");
 *  - `express-floor`: express with a middleware that only calls `next()` (the router layer any `app.use` adds);
 *  - `fastify-floor`: fastify with an onRequest hook that only calls `done()` (the hook runner any plugin adds).
 * A pair's ratio over its floor's is what is left to Lanyard's own code.
 */
export type HopPair =
  | 'handshake'
  | 'express'
  | 'fastify'
  | 'handshake-floor'
  | 'express-floor'
  | 'fastify-floor'
  | 'express-own'
  | 'fastify-own';
const ALL_PAIRS: readonly HopPair[] = [
  'handshake',
  'express',
  'fastify',
  'handshake-floor',
  'express-floor',
  'fastify-floor',
];
/**
 * Pairs run only when named: Lanyard's helper against its floor in the same turns (`express-own`: express with
 * a no-op middleware vs express with lanyardExpress; `fastify-own`: a no-op onRequest hook vs lanyardFastify).
 * Both sides have the same framework structure (one more router layer, one hook), so the ratio is Lanyard's own
 * code alone, without taking a ratio of two pairs measured in different turns.
 */
const OWN_PAIRS: readonly HopPair[] = ['express-own', 'fastify-own'];

function pairsFromArg(text: string | undefined): readonly HopPair[] {
  if (text === undefined) return ALL_PAIRS;
  const pairs = text.split(',').map((p) => p.trim());
  const known = [...ALL_PAIRS, ...OWN_PAIRS];
  for (const p of pairs) {
    if (!(known as readonly string[]).includes(p)) {
      throw new Error(`--pairs: unknown pair "${p}" (known: ${known.join(', ')})`);
    }
  }
  return pairs as HopPair[];
}

export function hopOptionsFromArgv(argv = process.argv): HopBenchOptions {
  const arg = (name: string, d: number): number => {
    const i = argv.indexOf(name);
    return i > 0 ? Number(argv[i + 1]) : d;
  };
  return {
    seconds: arg('--seconds', 1),
    rounds: Math.max(1, Math.round(arg('--rounds', 7))),
    slices: Math.max(1, Math.round(arg('--slices', 5))),
    concurrency: arg('--concurrency', 8),
    pairs: pairsFromArg(argv.includes('--pairs') ? argv[argv.indexOf('--pairs') + 1] : undefined),
  };
}

const keyPem = (s: Svid): string => s.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const certPem = (s: Svid): string => s.chain.map((c) => encodePem('CERTIFICATE', c.der)).join('');

function listen(server: tls.Server): Promise<number> {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
}

/** The client worker: one window per call. */
class Clients {
  private readonly worker: Worker;
  private pending: ((m: { ok: true; result: HopWindowResult } | { ok: false; error: string }) => void)[] = [];

  constructor(setup: HopClientsSetup) {
    // tsx's loader does not follow into worker threads: the worker registers tsx's require hook itself.
    const file = path.join(__dirname, 'bench-hop-clients.ts');
    this.worker = new Worker(`require('tsx/cjs'); require(${JSON.stringify(file)});`, {
      eval: true,
      workerData: setup,
    });
    this.worker.on('message', (m: Parameters<Clients['pending'][number]>[0]) => this.pending.shift()?.(m));
    this.worker.on('error', (e) => {
      for (const p of this.pending.splice(0)) p({ ok: false, error: e.message });
    });
  }

  run(w: HopWindow): Promise<HopWindowResult> {
    return new Promise((resolve, reject) => {
      this.pending.push((m) => (m.ok ? resolve(m.result) : reject(new Error(`bench clients: ${m.error}`))));
      this.worker.postMessage(w);
    });
  }

  close(): Promise<number> {
    return this.worker.terminate();
  }
}

/** One side of a pair, measured over one window. */
interface Sample {
  rate: number;
  /** Server-thread CPU per operation, in microseconds (undefined without schedstat). */
  serverUs: number | undefined;
  clientUs: number | undefined;
  /** The least server CPU per operation of the round's slices (undefined without schedstat). */
  minServerUs: number | undefined;
}

interface Side {
  name: string;
  kind: HopClientKind;
  port: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * A distribution-free confidence interval for the median of `xs` (order statistics): the k-th smallest and k-th
 * largest, with k the largest rank whose binomial tail P(Bin(n, 1/2) < k) is at most 2.5%. Coverage is at least
 * 95% whatever the distribution; with fewer than 6 values no such k exists and the range is returned.
 */
export function medianInterval(xs: readonly number[]): { low: number; high: number } {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  let k = 1;
  let below = 0; // P(Bin(n, 1/2) <= j), accumulated
  let term = Math.pow(0.5, n); // P(Bin = j)
  for (let j = 0; j < n; j++) {
    below += term;
    // [x(k), x(n+1-k)] covers the median with probability 1 - 2 P(Bin <= k-1).
    if (below > 0.025) break;
    k = j + 1;
    term = (term * (n - j)) / (j + 1);
  }
  k = Math.min(Math.max(1, k), Math.ceil(n / 2));
  return { low: s[k - 1]!, high: s[n - k]! };
}

function fmtRate(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

/** What one pair measured: per-round ratios (Lanyard over baseline for rates, baseline over Lanyard for CPU). */
export interface PairResult {
  name: string;
  base: Sample[];
  lanyard: Sample[];
  rateRatios: number[];
  serverCpuRatios: number[];
  /** Server CPU per operation, Lanyard minus baseline, per round (µs). */
  serverAddedUs: number[];
  /**
   * The same ratio from each side's least disturbed slice of the round: another process on the machine only
   * ever adds to a slice's CPU per operation (caches and TLB it evicts), so the least of a side's slices is
   * the closest to its own cost.
   */
  minServerCpuRatios: number[];
  /**
   * The server CPU ratio of each slice pair: a side's k-th slice against the other side's k-th of the same
   * round, which ran right before or after it. Rounds times slices of them, each a fraction of a second apart
   * rather than a round's length, so their median's interval is the narrower one where load comes and goes.
   */
  sliceCpuRatios: number[];
  /** Client thread CPU per operation, baseline over Lanyard (the handshake's client side is Lanyard's too). */
  clientCpuRatios: number[];
  /** Server and client CPU per operation together, baseline over Lanyard: both ends of a handshake. */
  bothCpuRatios: number[];
  /** Request connections a server closed and the client opened again inside a window (should be 0). */
  reopened: number;
}

/** A pair to measure: the baseline side and the Lanyard side, and whether the client differs between them. */
interface PairSpec {
  name: string;
  base: Side;
  lanyard: Side;
  /** Lanyard is on the client side too (handshakes): its client CPU is part of the figure. */
  bothEnds: boolean;
  /** What the second side adds, in the printed labels: 'Lanyard', or a floor pair's unavoidable part. */
  adds?: string;
}

/** Totals of one side over the slices of a round. */
interface Totals {
  ops: number;
  wallNs: number;
  serverNs: number | undefined;
  clientNs: number;
  reopened: number;
  /** Server CPU per operation of the least disturbed slice so far (µs). */
  minServerUs: number;
  /** Server CPU per operation of each slice, in order (µs; undefined for a slice too short to say). */
  sliceServerUs: (number | undefined)[];
}

const totals = (): Totals => ({
  ops: 0,
  wallNs: 0,
  serverNs: 0,
  clientNs: 0,
  reopened: 0,
  minServerUs: Infinity,
  sliceServerUs: [],
});

/** A slice with fewer operations says too little about its CPU per operation to be the round's least. */
const MIN_SLICE_OPS = 10;

async function window(
  clients: Clients,
  options: HopBenchOptions,
  side: Side,
  seconds: number,
  into: Totals,
): Promise<void> {
  const cpu0 = threadCpuNs();
  const r = await clients.run({
    kind: side.kind,
    port: side.port,
    seconds,
    concurrency: options.concurrency,
  });
  const cpu1 = threadCpuNs();
  into.ops += r.ops;
  into.wallNs += r.wallNs;
  into.serverNs =
    into.serverNs !== undefined && cpu0 !== undefined && cpu1 !== undefined
      ? into.serverNs + (cpu1 - cpu0)
      : undefined;
  into.clientNs += r.clientCpuNs;
  into.reopened += r.reopened;
  if (cpu0 !== undefined && cpu1 !== undefined && r.ops >= MIN_SLICE_OPS) {
    into.minServerUs = Math.min(into.minServerUs, (cpu1 - cpu0) / 1e3 / r.ops);
    into.sliceServerUs.push((cpu1 - cpu0) / 1e3 / r.ops);
  } else {
    into.sliceServerUs.push(undefined);
  }
}

function sample(side: Side, t: Totals): Sample {
  if (t.ops === 0) throw new Error(`${side.name}: no operation completed`);
  return {
    rate: t.ops / (t.wallNs / 1e9),
    serverUs: t.serverNs !== undefined ? t.serverNs / 1e3 / t.ops : undefined,
    clientUs: t.clientNs > 0 ? t.clientNs / 1e3 / t.ops : undefined,
    minServerUs: Number.isFinite(t.minServerUs) ? t.minServerUs : undefined,
  };
}

/**
 * One round of one pair: the two sides take turns in `slices` short windows, the first one alternating with
 * the round, so that the machine's load (other processes come and go within a second) falls on both alike.
 */
async function pairRound(
  clients: Clients,
  options: HopBenchOptions,
  pair: PairSpec,
  round: number,
  seconds: number,
): Promise<{ b: Totals; l: Totals }> {
  const b = totals();
  const l = totals();
  const slice = seconds / options.slices;
  for (let k = 0; k < options.slices; k++) {
    if ((round + k) % 2 === 0) {
      await window(clients, options, pair.base, slice, b);
      await window(clients, options, pair.lanyard, slice, l);
    } else {
      await window(clients, options, pair.lanyard, slice, l);
      await window(clients, options, pair.base, slice, b);
    }
  }
  return { b, l };
}

/**
 * Measures every pair in the same rounds: a round gives each pair its turn (the order rotating from round to
 * round), so a pair's rounds are spread over the whole run like every other pair's, and what the machine does
 * meanwhile falls on all of them. A whole round is run first and thrown away (JIT tiers, caches, the request
 * connections), at least one second per side.
 */
async function measurePairs(
  clients: Clients,
  options: HopBenchOptions,
  pairs: readonly PairSpec[],
): Promise<PairResult[]> {
  const results: PairResult[] = pairs.map((p) => ({
    name: p.name,
    base: [],
    lanyard: [],
    rateRatios: [],
    serverCpuRatios: [],
    serverAddedUs: [],
    minServerCpuRatios: [],
    sliceCpuRatios: [],
    clientCpuRatios: [],
    bothCpuRatios: [],
    reopened: 0,
  }));
  for (const pair of pairs) await pairRound(clients, options, pair, 0, Math.max(1, options.seconds));
  for (let i = 0; i < options.rounds; i++) {
    for (let j = 0; j < pairs.length; j++) {
      const p = (i + j) % pairs.length;
      const pair = pairs[p]!;
      const result = results[p]!;
      const { b, l } = await pairRound(clients, options, pair, i, options.seconds);
      const bs = sample(pair.base, b);
      const ls = sample(pair.lanyard, l);
      result.base.push(bs);
      result.lanyard.push(ls);
      result.reopened += b.reopened + l.reopened;
      result.rateRatios.push(ls.rate / bs.rate);
      if (bs.serverUs !== undefined && ls.serverUs !== undefined) {
        result.serverCpuRatios.push(bs.serverUs / ls.serverUs);
        result.serverAddedUs.push(ls.serverUs - bs.serverUs);
      }
      if (bs.minServerUs !== undefined && ls.minServerUs !== undefined) {
        result.minServerCpuRatios.push(bs.minServerUs / ls.minServerUs);
      }
      b.sliceServerUs.forEach((bu, k) => {
        const lu = l.sliceServerUs[k];
        if (bu !== undefined && lu !== undefined) result.sliceCpuRatios.push(bu / lu);
      });
      if (bs.clientUs !== undefined && ls.clientUs !== undefined) {
        result.clientCpuRatios.push(bs.clientUs / ls.clientUs);
        if (bs.serverUs !== undefined && ls.serverUs !== undefined) {
          result.bothCpuRatios.push((bs.serverUs + bs.clientUs) / (ls.serverUs + ls.clientUs));
        }
      }
    }
  }
  pairs.forEach((pair, k) => printPair(pair, results[k]!));
  return results;
}

function printPair(pair: PairSpec, result: PairResult): void {
  const out = (text: string): void => void process.stdout.write(`${text}\n`);
  const cpu = (ss: Sample[], k: 'serverUs' | 'clientUs'): string => {
    const xs = ss.map((s) => s[k]).filter((x): x is number => x !== undefined);
    return xs.length === 0 ? 'n/a' : `${Math.round(median(xs))} µs`;
  };
  const range = (xs: number[], digits = 2): string => {
    const ci = medianInterval(xs);
    return `${median(xs).toFixed(digits)}  (95% CI ${ci.low.toFixed(digits)}–${ci.high.toFixed(digits)}; range ${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
  };
  const adds = pair.adds ?? 'Lanyard';
  out(`  ${pair.name}`);
  for (const [side, ss] of [
    [pair.base, result.base],
    [pair.lanyard, result.lanyard],
  ] as const) {
    out(
      `    ${side.name.padEnd(54)} ${fmtRate(median(ss.map((s) => s.rate))).padStart(8)} /s   server ${cpu(ss, 'serverUs').padStart(8)}/op   client ${cpu(ss, 'clientUs').padStart(8)}/op`,
    );
  }
  out(`    ${'rate ratio, median over rounds'.padEnd(54)} ${range(result.rateRatios)}`);
  if (result.serverCpuRatios.length > 0) {
    out(`    ${`server CPU ratio (baseline/op ÷ ${adds}/op)`.padEnd(54)} ${range(result.serverCpuRatios)}`);
    out(`    ${`server CPU ${adds} adds per op, µs`.padEnd(54)} ${range(result.serverAddedUs, 0)}`);
  }
  if (result.minServerCpuRatios.length > 0) {
    out(
      `    ${'server CPU ratio, least disturbed slice of each side'.padEnd(54)} ${range(result.minServerCpuRatios)}`,
    );
  }
  if (result.sliceCpuRatios.length > 0) {
    out(
      `    ${`server CPU ratio, slice pairs (${result.sliceCpuRatios.length})`.padEnd(54)} ${range(result.sliceCpuRatios)}`,
    );
  }
  if (pair.bothEnds && result.bothCpuRatios.length > 0) {
    out(`    ${`client CPU ratio (baseline/op ÷ ${adds}/op)`.padEnd(54)} ${range(result.clientCpuRatios)}`);
    out(`    ${'both ends CPU ratio (server + client)'.padEnd(54)} ${range(result.bothCpuRatios)}`);
  }
  if (result.reopened > 0) {
    out(`    (${result.reopened} request connections were closed by a server and opened again in a window)`);
  }
}

/**
 * The hop bench as `npm run bench` runs it: in a Node process of its own, started with this one's loader
 * (tsx), so that the heap, the JIT state and the verifier's process-wide cache the earlier parts of the bench
 * left behind do not weigh on one side of a pair more than the other, and its figures are those of the bench
 * run alone. Output goes straight to this process's stdout.
 */
export function runHopBench(options: HopBenchOptions): Promise<void> {
  const args = [
    ...process.execArgv,
    __filename,
    '--seconds',
    String(options.seconds),
    '--rounds',
    String(options.rounds),
    '--slices',
    String(options.slices),
    '--concurrency',
    String(options.concurrency),
    '--pairs',
    options.pairs.join(','),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`bench-hop exited with ${code ?? signal}`)),
    );
  });
}

/** Measures the hop pairs in this process (what `runHopBench`'s child and `npx tsx scripts/bench-hop.ts` run). */
export async function measureHops(options: HopBenchOptions): Promise<PairResult[]> {
  const pki = createPki('bench.test');
  const serviceId = 'spiffe://bench.test/service';
  const serverSvid = issueSvid(pki, serviceId);
  const clientId = 'spiffe://bench.test/agent';
  const clientSvid = issueSvid(pki, clientId);
  // What a route answers: the caller's ID from req.agent behind a helper; the same string on the other sides,
  // so that every side of a request pair writes the same bytes and only the server's work differs.
  const answeredAgent = (agent: { spiffeId: string } | undefined): string => agent?.spiffeId ?? clientId;
  const caPem = pki.bundle.toPem();
  const serverSource = new StaticX509Source(
    toX509Svid(serverSvid.chain, serverSvid.key.privateKey),
    pki.bundle,
  );
  // Plain Node TLS with a CA file: OpenSSL checks the client chain; nothing else.
  const plainServerOptions: tls.TlsOptions = {
    key: keyPem(serverSvid),
    cert: certPem(serverSvid),
    ca: caPem,
    requestCert: true,
    rejectUnauthorized: true,
  };
  const clients = new Clients({
    trustDomain: pki.trustDomain,
    serviceId,
    keyPem: keyPem(clientSvid),
    certPem: certPem(clientSvid),
    chainDer: clientSvid.chain.map((c) => c.der),
    caPem,
  });
  process.stdout.write(
    `\nHop: mutual TLS on 127.0.0.1, P-256 SVIDs (leaf, intermediate, root); servers on the main thread, ${options.concurrency} concurrent clients in a worker; ${options.rounds} rounds of ${options.seconds}s per side, in ${options.slices} alternating slices; load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}\n`,
  );
  let results: PairResult[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  const closeServer =
    (s: tls.Server): (() => Promise<void>) =>
    () =>
      new Promise((r) => {
        (s as https.Server).closeAllConnections?.();
        s.close(() => r());
      });
  // The request connections are opened once and idle while the other pairs take their turns: no server may
  // close them in between (Node's default keep-alive timeout is 5 s, fastify's 72 s).
  const keepOpen = (s: https.Server): https.Server => {
    s.keepAliveTimeout = 0;
    return s;
  };
  try {
    const pairs: PairSpec[] = [];
    // 1. Handshakes: a new connection each time, no session resumption.
    if (options.pairs.includes('handshake')) {
      const plain = tls.createServer(plainServerOptions, (socket) => socket.end('x'));
      const hop = createHopTlsServer({ source: serverSource, authorize: authorizeAny() }, (socket) =>
        socket.end('x'),
      );
      closers.push(closeServer(plain), closeServer(hop));
      pairs.push({
        name: 'mutual-TLS handshakes',
        base: {
          name: 'plain Node TLS, CA file, both sides',
          kind: 'plain-handshake',
          port: await listen(plain),
        },
        lanyard: {
          name: 'Lanyard hop (verifier + authorizer) on both sides',
          kind: 'lanyard-handshake',
          port: await listen(hop),
        },
        bothEnds: true,
      });
    }

    // 1a. The handshake's floor: the plain server reading the peer's leaf the way the hop server must.
    if (options.pairs.includes('handshake-floor')) {
      const plain = tls.createServer(plainServerOptions, (socket) => socket.end('x'));
      const leaf = tls.createServer(plainServerOptions, (socket) => {
        if (socket.getPeerCertificate(false).raw === undefined) socket.destroy();
        else socket.end('x');
      });
      closers.push(closeServer(plain), closeServer(leaf));
      pairs.push({
        name: 'floor: mutual-TLS handshakes, the peer leaf read',
        base: {
          name: 'plain Node TLS, CA file, both sides',
          kind: 'plain-handshake',
          port: await listen(plain),
        },
        lanyard: {
          name: 'the same, the server reads getPeerCertificate(false)',
          kind: 'plain-handshake',
          port: await listen(leaf),
        },
        bothEnds: false,
        adds: 'leaf read',
      });
    }

    // 2. express over https keep-alive connections; its floor: a middleware that only calls next().
    const expressApp = (guard: 'lanyard' | 'noop' | 'none'): express.Express => {
      const a = express();
      if (guard === 'lanyard') a.use(lanyardExpress({ source: serverSource, authorize: authorizeAny() }));
      if (guard === 'noop') a.use((_req, _res, next) => next());
      a.get('/docs/:id', (req, res) => {
        res.json({ id: req.params.id, agent: answeredAgent(req.agent) });
      });
      return a;
    };
    const expressServer = async (guard: 'lanyard' | 'noop' | 'none'): Promise<number> => {
      const server = keepOpen(
        https.createServer(
          guard === 'lanyard' ? tlsServerOptions(serverSource) : plainServerOptions,
          expressApp(guard),
        ),
      );
      if (guard === 'lanyard') followSource(server, serverSource);
      closers.push(closeServer(server));
      return listen(server);
    };
    if (options.pairs.includes('express')) {
      pairs.push({
        name: 'express requests (keep-alive)',
        base: {
          name: 'express, plain Node https with a CA file',
          kind: 'request',
          port: await expressServer('none'),
        },
        lanyard: { name: 'express + lanyardExpress', kind: 'request', port: await expressServer('lanyard') },
        bothEnds: false,
      });
    }
    if (options.pairs.includes('express-floor')) {
      pairs.push({
        name: 'floor: express requests, a middleware that only calls next()',
        base: {
          name: 'express, plain Node https with a CA file',
          kind: 'request',
          port: await expressServer('none'),
        },
        lanyard: { name: 'express + a no-op middleware', kind: 'request', port: await expressServer('noop') },
        bothEnds: false,
        adds: 'no-op middleware',
      });
    }

    if (options.pairs.includes('express-own')) {
      pairs.push({
        name: 'own: express requests, lanyardExpress against a no-op middleware',
        base: { name: 'express + a no-op middleware', kind: 'request', port: await expressServer('noop') },
        lanyard: { name: 'express + lanyardExpress', kind: 'request', port: await expressServer('lanyard') },
        bothEnds: false,
      });
    }

    // 3. fastify over https keep-alive connections: the same route, with and without the plugin; its floor: an
    // onRequest hook that only calls done().
    const fastifyApp = async (guard: 'lanyard' | 'noop' | 'none'): Promise<number> => {
      const a = fastify({
        https: guard === 'lanyard' ? tlsServerOptions(serverSource) : plainServerOptions,
        keepAliveTimeout: 0,
      });
      if (guard === 'lanyard') {
        await a.register(lanyardFastify, { source: serverSource, authorize: authorizeAny() });
      }
      if (guard === 'noop') a.addHook('onRequest', (_request, _reply, done) => done());
      a.get<{ Params: { id: string } }>('/docs/:id', async (req) => ({
        id: req.params.id,
        agent: answeredAgent(req.agent),
      }));
      await a.listen({ port: 0, host: '127.0.0.1' });
      if (guard === 'lanyard') followSource(a.server as https.Server, serverSource);
      closers.push(() => a.close());
      return (a.server.address() as AddressInfo).port;
    };
    if (options.pairs.includes('fastify')) {
      pairs.push({
        name: 'fastify requests (keep-alive)',
        base: {
          name: 'fastify, plain Node https with a CA file',
          kind: 'request',
          port: await fastifyApp('none'),
        },
        lanyard: { name: 'fastify + lanyardFastify', kind: 'request', port: await fastifyApp('lanyard') },
        bothEnds: false,
      });
    }
    if (options.pairs.includes('fastify-floor')) {
      pairs.push({
        name: 'floor: fastify requests, an onRequest hook that only calls done()',
        base: {
          name: 'fastify, plain Node https with a CA file',
          kind: 'request',
          port: await fastifyApp('none'),
        },
        lanyard: {
          name: 'fastify + a no-op onRequest hook',
          kind: 'request',
          port: await fastifyApp('noop'),
        },
        bothEnds: false,
        adds: 'no-op hook',
      });
    }
    if (options.pairs.includes('fastify-own')) {
      pairs.push({
        name: 'own: fastify requests, lanyardFastify against a no-op onRequest hook',
        base: { name: 'fastify + a no-op onRequest hook', kind: 'request', port: await fastifyApp('noop') },
        lanyard: { name: 'fastify + lanyardFastify', kind: 'request', port: await fastifyApp('lanyard') },
        bothEnds: false,
      });
    }
    results = await measurePairs(clients, options, pairs);
  } finally {
    await clients.close();
    await Promise.all(closers.map((c) => c()));
    await serverSource.close();
  }
  process.stdout.write(
    `  (load average at the end ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')})\n`,
  );
  return results;
}

if (require.main === module) {
  measureHops(hopOptionsFromArgv()).catch((e: unknown) => {
    process.stderr.write(`bench-hop: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  });
}
