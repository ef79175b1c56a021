/**
 * Debian's Prometheus for the metrics tests, run as the current user with a temp config and temp storage,
 * listening on 127.0.0.1 only; and promtool, its exposition checker. Never the system service.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

const INSTALL = path.join(__dirname, '..', '..', 'scripts', 'install-prometheus.sh');
const BIN_DIRS = ['/usr/bin', '/usr/local/bin'];

function find(name: string): string | undefined {
  return BIN_DIRS.map((d) => path.join(d, name)).find((p) => fs.existsSync(p));
}

/**
 * The prometheus and promtool binaries, installed from Debian by the project's script when missing. apt-get can
 * take minutes: call this from a before() hook with a long timeout.
 */
export function ensurePrometheus(): { prometheus: string; promtool: string } {
  const found = (): { prometheus: string; promtool: string } | undefined => {
    const prometheus = find('prometheus');
    const promtool = find('promtool');
    return prometheus !== undefined && promtool !== undefined ? { prometheus, promtool } : undefined;
  };
  const existing = found();
  if (existing !== undefined) return existing;
  const r = spawnSync(INSTALL, [], { encoding: 'utf8', timeout: 14 * 60_000 });
  const installed = found();
  if (r.status !== 0 || installed === undefined) {
    throw new Error(`scripts/install-prometheus.sh failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  }
  return installed;
}

/** `promtool check metrics` on an exposition: its exit status and what it printed. */
export function promtoolCheckMetrics(exposition: string): { status: number | null; output: string } {
  const { promtool } = ensurePrometheus();
  const r = spawnSync(promtool, ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** A free loopback port (Prometheus cannot report the port it picked for :0). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

export interface RunningPrometheus {
  url: string;
  /** An instant query through the HTTP API (/api/v1/query). */
  query(expr: string): Promise<PromSample[]>;
  /** Polls `expr` until `accept` holds for its samples (Prometheus scrapes on its own schedule). */
  until(expr: string, accept: (samples: PromSample[]) => boolean, timeoutMs?: number): Promise<PromSample[]>;
  log(): string;
  stop(): Promise<void>;
}

/** Starts Prometheus scraping `targets` (job name -> host:port) every `scrapeSeconds`. */
export async function startPrometheus(
  dir: string,
  targets: Record<string, string>,
  scrapeSeconds = 1,
): Promise<RunningPrometheus> {
  const { prometheus } = ensurePrometheus();
  const jobs = Object.entries(targets)
    .map(
      ([job, address]) =>
        `  - job_name: ${JSON.stringify(job)}\n    static_configs:\n      - targets: [${JSON.stringify(address)}]`,
    )
    .join('\n');
  const config = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(
    config,
    `global:\n  scrape_interval: ${scrapeSeconds}s\n  scrape_timeout: ${scrapeSeconds}s\n  evaluation_interval: ${scrapeSeconds}s\nscrape_configs:\n${jobs}\n`,
  );
  let lastError: Error | undefined;
  // The free port may be taken between the probe and Prometheus's bind: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const storage = fs.mkdtempSync(path.join(dir, 'tsdb-'));
    let log = '';
    const child: ChildProcess = spawn(
      prometheus,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${storage}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--storage.tsdb.retention.time=1h',
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    };
    const ready = await waitReady(url, exited);
    if (!ready) {
      await stop();
      lastError = new Error(`prometheus did not become ready on ${url}:\n${log}`);
      continue;
    }
    const query = async (expr: string): Promise<PromSample[]> => {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await res.json()) as {
        status: string;
        error?: string;
        data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      if (body.status !== 'success' || body.data?.resultType !== 'vector') {
        throw new Error(`query ${expr} failed: ${body.error ?? JSON.stringify(body)}`);
      }
      return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    };
    return {
      url,
      query,
      async until(expr, accept, timeoutMs = 30_000) {
        const deadline = Date.now() + timeoutMs;
        let last: PromSample[] = [];
        for (;;) {
          last = await query(expr);
          if (accept(last)) return last;
          if (Date.now() > deadline) {
            throw new Error(`${expr}: not as expected within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
          }
          await new Promise((r) => setTimeout(r, 250));
        }
      },
      log: () => log,
      stop,
    };
  }
  throw lastError ?? new Error('prometheus did not start');
}

async function waitReady(url: string, exited: Promise<number | null>): Promise<boolean> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 60_000;
  while (!gone && Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/-/ready`);
      if (res.ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}
