/** A real server, a real node agent attested to it with a join token, and Workload API clients on its socket. */
import * as grpc from '@grpc/grpc-js';
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import { BIN } from './paths';
import { tempDir as kitTempDir } from './tmp';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { startAgent, type RunningAgent } from '../../src/agent/agent';
import { WORKLOAD_API_HEADER } from '../../src/agent/workload-api/service';
import { SpiffeWorkloadAPIClient, type X509SVIDResponse } from '../../src/gen/spiffe/workload/workload';
import { createLogger } from '../../src/internal/logging';
import { readTlv } from '../../src/x509/der';
import type { TestServer } from './test-server';

export const TD = 'lanyard.local';
export const AGENT_ID = `spiffe://${TD}/agent/node-1`;

export interface AgentFixture {
  agent: RunningAgent;
  dir: string;
  socketPath: string;
  logs: string[];
  close(): Promise<void>;
}

/** A temp dir any local user can traverse (the second-user test connects from another uid). */
export function tempDir(): string {
  const dir = kitTempDir('agent');
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** Registers the agent's own entry, gets it a join token, and starts the agent against `s`. */
export async function startAgentFor(
  s: TestServer,
  opts: {
    syncIntervalMs?: number;
    dir?: string;
    agentId?: string;
    agentContextOid?: string;
    allowInheritableConnections?: boolean;
    /** Serve Prometheus metrics here (port 0: a free one; RunningAgent.metricsAddress says which). */
    metrics?: { listen: { host: string; port: number } };
  } = {},
): Promise<AgentFixture> {
  const agentId = opts.agentId ?? AGENT_ID;
  const existing = await s.client.listEntries({ filter: { spiffeIdPrefix: agentId } });
  if (!existing.entries.some((e) => e.spiffeId === agentId)) {
    await s.client.createEntry({
      entry: { spiffeId: agentId, selectors: [{ type: 'node', value: `name:${path.basename(agentId)}` }] },
    });
  }
  const { token } = await s.client.createJoinToken({ spiffeId: agentId });
  const dir = opts.dir ?? tempDir();
  const socketPath = path.join(dir, 'agent.sock');
  const logs: string[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk: Buffer, _e, cb) {
        logs.push(chunk.toString());
        cb();
      },
    }),
  });
  const agent = await startAgent({
    server: s.running.publicAddress,
    bundle: s.running.ca.bundle(),
    socketPath,
    attestation: { attestorType: 'join_token', evidence: Buffer.from(token) },
    dataDir: path.join(dir, 'data'),
    syncIntervalMs: opts.syncIntervalMs ?? 300,
    maxBackoffMs: 500,
    ...(opts.allowInheritableConnections !== undefined && {
      allowInheritableConnections: opts.allowInheritableConnections,
    }),
    logger,
    ...(opts.agentContextOid !== undefined && { agentContextOid: opts.agentContextOid }),
    ...(opts.metrics !== undefined && { metrics: opts.metrics }),
  });
  return { agent, dir, socketPath, logs, close: () => agent.close() };
}

export function workloadClient(socketPath: string): SpiffeWorkloadAPIClient {
  return new SpiffeWorkloadAPIClient(`unix://${socketPath}`, grpc.credentials.createInsecure());
}

export function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(WORKLOAD_API_HEADER, 'true');
  return md;
}

/** Reads X509SVIDResponse messages from a FetchX509SVID stream, one at a time. */
export class X509Stream {
  private readonly queue: X509SVIDResponse[] = [];
  private waiters: ((r: X509SVIDResponse | Error) => void)[] = [];
  private error: Error | undefined;
  readonly call: grpc.ClientReadableStream<X509SVIDResponse>;

  constructor(client: SpiffeWorkloadAPIClient, md: grpc.Metadata = header()) {
    this.call = client.fetchX509Svid({}, md);
    this.call.on('data', (r: X509SVIDResponse) => {
      const w = this.waiters.shift();
      if (w) w(r);
      else this.queue.push(r);
    });
    this.call.on('error', (e: Error) => {
      this.error = e;
      for (const w of this.waiters.splice(0)) w(e);
    });
  }

  next(timeoutMs = 10_000): Promise<X509SVIDResponse> {
    const r = this.queue.shift();
    if (r) return Promise.resolve(r);
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no X509SVIDResponse in time')), timeoutMs);
      this.waiters.push((v) => {
        clearTimeout(t);
        if (v instanceof Error) reject(v);
        else resolve(v);
      });
    });
  }

  cancel(): void {
    this.call.cancel();
  }
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** DER certificates back to back (the Workload API's chain and bundle encoding) -> one DER each. */
export function splitDer(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < buf.length) {
    const tlv = readTlv(buf, off);
    out.push(buf.subarray(off, tlv.end));
    off = tlv.end;
  }
  return out;
}

/** `lanyard agent run` as a child process (from source); `ready` once its banner is printed. */
export interface AgentProcess {
  child: ChildProcessWithoutNullStreams;
  output(): string;
  ready: Promise<void>;
  /** SIGTERM and wait for the exit (no-op when already gone). */
  stop(): Promise<void>;
}

/**
 * Starts `lanyard agent run --server <server>... --bundle <bundleFile> --socket <socketPath>` with a join token
 * file and `extra` flags. The banner is printed whether or not the server was reached (the agent retries).
 */
export function spawnAgent(opts: {
  /** One server, or several (one --server each). */
  server: string | readonly string[];
  bundleFile: string;
  socketPath: string;
  tokenFile: string;
  extra?: string[];
}): AgentProcess {
  const child = spawn(
    process.execPath,
    [
      BIN,
      'agent',
      'run',
      ...(typeof opts.server === 'string' ? [opts.server] : opts.server).flatMap((s) => ['--server', s]),
      '--bundle',
      opts.bundleFile,
      '--socket',
      opts.socketPath,
      '--join-token-file',
      opts.tokenFile,
      ...(opts.extra ?? []),
    ],
    { env: { ...process.env, LANYARD_FROM_SOURCE: '1' } },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  let gone = false;
  const exited = new Promise<void>((resolve) =>
    child.once('close', () => {
      gone = true;
      resolve();
    }),
  );
  const ready = waitFor(() => gone || out.includes('Lanyard agent running'), 60_000).then(() => {
    if (!out.includes('Lanyard agent running'))
      throw new Error(`the agent exited before its banner:\n${out}`);
  });
  ready.catch(() => undefined);
  return {
    child,
    output: () => out,
    ready,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

const compiled = new Map<string, string>();

/**
 * Compiles test/support/fixtures/<name>.c with the system C compiler (once per test run) and returns the binary,
 * in a directory any local user can traverse.
 */
export function compileFixture(name: string): string {
  const done = compiled.get(name);
  if (done !== undefined) return done;
  const out = path.join(tempDir(), name);
  execFileSync('cc', [
    '-O2',
    '-Wall',
    '-Wextra',
    '-Werror',
    '-o',
    out,
    path.join(__dirname, 'fixtures', `${name}.c`),
  ]);
  compiled.set(name, out);
  return out;
}
