/**
 * The node agent's Workload API, measured end to end on this machine: a real server (SQLite in a temp data
 * dir, TLS on 127.0.0.1:0), a real agent attested with a join token, and a standard-proto client on the agent's
 * Unix socket. Each figure is printed beside a baseline measured in the same run:
 *
 *   - FetchX509SVID's first message on a new connection (every connection is attested at accept: SO_PEERCRED,
 *     pidfd, /proc identity, exe hash cached, one scan of every /proc/<pid>/fd for the connection's
 *     holders), vs FetchJWTBundles' first message on a new connection (the same connect and attestation, a
 *     small answer): the difference is the cost of the SVID answer itself;
 *   - FetchJWTSVID answered from the agent's cache, and ValidateJWTSVID, vs raw node:crypto ES256 verify.
 *
 * Bounded: --ops calls per figure, each figure stops after --budget seconds. Loopback and a Unix socket only;
 * everything is removed at the end.
 *
 *   npx tsx scripts/bench-agent.ts [--ops 200] [--budget 20]     (npm run bench:agent)
 */
import * as grpc from '@grpc/grpc-js';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAgent } from '../src/agent/agent';
import { WORKLOAD_API_HEADER } from '../src/agent/workload-api/service';
import { SpiffeWorkloadAPIClient } from '../src/gen/spiffe/workload/workload';
import { AdminClient } from '../src/server/admin-client';
import { loadConfig } from '../src/server/config';
import { createLogger } from '../src/internal/logging';
import { startServer } from '../src/server/run';

const TD = 'bench.lanyard.local';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  const v = i < 0 ? NaN : Number(process.argv[i + 1]);
  return Number.isFinite(v) && v > 0 ? v : dflt;
}

async function rate(
  ops: number,
  budgetMs: number,
  fn: () => Promise<void> | void,
): Promise<{ perSec: number; n: number; p50: number; p99: number }> {
  const times: number[] = [];
  const start = process.hrtime.bigint();
  const deadline = Date.now() + budgetMs;
  for (let i = 0; i < ops && Date.now() < deadline; i++) {
    const t = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const totalS = Number(process.hrtime.bigint() - start) / 1e9;
  times.sort((a, b) => a - b);
  const q = (p: number): number => times[Math.min(times.length - 1, Math.floor(p * times.length))] ?? NaN;
  return { perSec: times.length / totalS, n: times.length, p50: q(0.5), p99: q(0.99) };
}

function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(WORKLOAD_API_HEADER, 'true');
  return md;
}

function firstMessage<T>(call: grpc.ClientReadableStream<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    call.once('data', (m: T) => {
      call.cancel();
      resolve(m);
    });
    call.once('error', (e: grpc.ServiceError) => {
      if (e.code !== grpc.status.CANCELLED) reject(e);
    });
  });
}

async function main(): Promise<void> {
  const ops = arg('--ops', 200);
  const budgetMs = arg('--budget', 20) * 1000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-bench-agent-'));
  const logger = createLogger({ level: 'warn' });
  const config = {
    ...loadConfig({ dataDir: path.join(dir, 'server'), env: {} }),
    trustDomain: TD,
    listenAddress: { host: '127.0.0.1', port: 0 },
  };
  const server = await startServer(config, { logger });
  const admin = new AdminClient(config.adminSocketPath);
  const agentId = `spiffe://${TD}/agent/bench`;
  let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
  try {
    await admin.createEntry({
      entry: { spiffeId: agentId, selectors: [{ type: 'node', value: 'name:bench' }] },
    });
    await admin.createEntry({
      entry: {
        spiffeId: `spiffe://${TD}/workload/bench`,
        parentId: agentId,
        selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
      },
    });
    const { token } = await admin.createJoinToken({ spiffeId: agentId });
    const socketPath = path.join(dir, 'agent.sock');
    agent = await startAgent({
      server: server.publicAddress,
      bundle: server.ca.bundle(),
      socketPath,
      attestation: { attestorType: 'join_token', evidence: Buffer.from(token) },
      logger,
    });
    console.log(
      `node agent Workload API on ${os.cpus().length} cores, Node ${process.version}; ${ops} calls per figure, ${budgetMs / 1000} s budget`,
    );

    const fresh = (): SpiffeWorkloadAPIClient =>
      new SpiffeWorkloadAPIClient(`unix://${socketPath}`, grpc.credentials.createInsecure());
    // Warm the exe-hash cache and the channel code paths once.
    const warm = fresh();
    await firstMessage(warm.fetchX509Svid({}, header()));
    warm.close();

    const bare = await rate(ops, budgetMs, async () => {
      const c = fresh();
      await firstMessage(c.fetchJwtBundles({}, header()));
      c.close();
    });
    const x509 = await rate(ops, budgetMs, async () => {
      const c = fresh();
      await firstMessage(c.fetchX509Svid({}, header()));
      c.close();
    });

    const client = fresh();
    const jwt = (): Promise<string> =>
      new Promise((resolve, reject) =>
        client.fetchJwtsvid({ audience: ['bench'], spiffeId: '' }, header(), (e, r) =>
          e ? reject(e) : resolve(r.svids[0]!.svid),
        ),
      );
    const token0 = await jwt();
    const jwtCached = await rate(ops * 5, budgetMs, async () => {
      await jwt();
    });
    const validate = await rate(
      ops * 5,
      budgetMs,
      () =>
        new Promise<void>((resolve, reject) =>
          client.validateJwtsvid({ audience: 'bench', svid: token0 }, header(), (e) =>
            e ? reject(e) : resolve(),
          ),
        ),
    );
    client.close();

    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const sig = sign('sha256', Buffer.from(token0), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    const raw = await rate(ops * 50, budgetMs, () => {
      verify('sha256', Buffer.from(token0), { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig);
    });

    const row = (
      name: string,
      r: { perSec: number; n: number; p50: number; p99: number },
      base: number,
      baseName: string,
    ): void =>
      console.log(
        `${name.padEnd(62)} ${r.perSec.toFixed(0).padStart(8)}/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  (n=${r.n})  ${(r.perSec / base).toFixed(3)} of ${baseName}`,
      );
    row('FetchJWTBundles, new connection (accept-time attestation incl.)', bare, bare.perSec, 'itself');
    row(
      'FetchX509SVID, new connection (accept-time attestation incl.)',
      x509,
      bare.perSec,
      'FetchJWTBundles',
    );
    row('node:crypto ES256 verify (baseline)', raw, raw.perSec, 'itself');
    row('FetchJWTSVID from the agent cache', jwtCached, raw.perSec, 'a raw verify');
    row('ValidateJWTSVID', validate, raw.perSec, 'a raw verify');
  } finally {
    await agent?.close();
    admin.close();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
