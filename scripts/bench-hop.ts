/**
 * The cost of Lanyard at a hop, as figures with ratios against a baseline measured in the same run (never
 * asserted anywhere):
 *  1. mutual-TLS handshakes per second: plain Node TLS (OpenSSL checks the client chain against a CA file, the
 *     client checks the server chain, no host-name check since SVIDs have none) vs the hop helpers
 *     (createHopTlsServer + tlsClientOptions: verifyX509Svid and an authorizer on both sides);
 *  2. requests per second through express over https keep-alive connections, with and without lanyardExpress;
 *  3. the same through fastify, with and without the lanyardFastify plugin.
 * Everything runs on 127.0.0.1 in this process with a throwaway in-memory PKI.
 *
 *   npx tsx scripts/bench-hop.ts [--seconds 2] [--concurrency 8]     (npm run bench runs it after the rest)
 */
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import express from 'express';
import fastify, { type FastifyInstance } from 'fastify';
import { StaticX509Source } from '../src/client/static-x509-source';
import { toX509Svid } from '../src/svid/x509-svid';
import { lanyardExpress } from '../src/hop/express';
import { lanyardFastify } from '../src/hop/fastify';
import {
  createHopTlsServer,
  followSource,
  HopHttpsAgent,
  tlsClientOptions,
  tlsServerOptions,
} from '../src/hop/tls';
import { authorizeAny, authorizeId } from '../src/verify';
import { encodePem } from '../src/x509/pem';
import { createPki, issueSvid, type Svid } from '../test/support/pki';

export interface HopBenchOptions {
  seconds: number;
  concurrency: number;
}

export function hopOptionsFromArgv(argv = process.argv): HopBenchOptions {
  const arg = (name: string, d: number): number => {
    const i = argv.indexOf(name);
    return i > 0 ? Number(argv[i + 1]) : d;
  };
  return { seconds: arg('--seconds', 1), concurrency: arg('--concurrency', 8) };
}

/** Runs `once` from `concurrency` loops for `seconds`; completed operations per second. */
async function rate(seconds: number, concurrency: number, once: () => Promise<void>): Promise<number> {
  const warm = Date.now() + 200;
  while (Date.now() < warm) await once();
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let ops = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (process.hrtime.bigint() < end) {
        await once();
        ops += 1;
      }
    }),
  );
  return ops / (Number(process.hrtime.bigint() - start) / 1e9);
}

const keyPem = (s: Svid): string => s.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const certPem = (s: Svid): string => s.chain.map((c) => encodePem('CERTIFICATE', c.der)).join('');

function listen(server: tls.Server): Promise<number> {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
}

/** One full handshake: connect, read the server's byte, close. */
function handshake(port: number, options: tls.ConnectionOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    socket.once('data', () => socket.end());
    socket.once('error', reject);
    socket.once('close', () => resolve());
  });
}

function get(port: number, agent: https.Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: '/docs/1', agent }, (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`)),
        );
      })
      .on('error', reject);
  });
}

/**
 * Measures `a` and `b` alternately, `rounds` times each, and returns each one's overall rate: on a shared,
 * busy machine the load drifts, and alternating keeps that drift out of the ratio.
 */
async function paired(
  options: HopBenchOptions,
  a: () => Promise<void>,
  b: () => Promise<void>,
  rounds = 3,
): Promise<[number, number]> {
  const sums: [number, number] = [0, 0];
  for (let i = 0; i < rounds; i++) {
    sums[0] += await rate(options.seconds / rounds, options.concurrency, a);
    sums[1] += await rate(options.seconds / rounds, options.concurrency, b);
  }
  return [sums[0] / rounds, sums[1] / rounds];
}

export async function runHopBench(options: HopBenchOptions): Promise<void> {
  const { seconds, concurrency } = options;
  const pki = createPki('bench.test');
  const serverSvid = issueSvid(pki, 'spiffe://bench.test/service');
  const clientSvid = issueSvid(pki, 'spiffe://bench.test/agent');
  const caPem = pki.bundle.toPem();
  const serverSource = new StaticX509Source(
    toX509Svid(serverSvid.chain, serverSvid.key.privateKey),
    pki.bundle,
  );
  const clientSource = new StaticX509Source(
    toX509Svid(clientSvid.chain, clientSvid.key.privateKey),
    pki.bundle,
  );
  const serviceId = 'spiffe://bench.test/service';
  const line = (name: string, v: number, unit: string): void => {
    process.stdout.write(
      `  ${name.padEnd(58)} ${Math.round(v).toLocaleString('en-US').padStart(10)} ${unit}\n`,
    );
  };
  process.stdout.write(
    `\nHop: mutual TLS on 127.0.0.1 (${concurrency} concurrent clients, ${seconds}s per figure, baseline and Lanyard alternated)\n`,
  );

  // 1. Handshakes: a new connection each time, no session resumption.
  const plain = tls.createServer(
    {
      key: keyPem(serverSvid),
      cert: certPem(serverSvid),
      ca: caPem,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => socket.end('x'),
  );
  const plainPort = await listen(plain);
  const plainClient: tls.ConnectionOptions = {
    key: keyPem(clientSvid),
    cert: certPem(clientSvid),
    ca: caPem,
    checkServerIdentity: () => undefined,
  };
  const hop = createHopTlsServer({ source: serverSource, authorize: authorizeAny() }, (socket) =>
    socket.end('x'),
  );
  const hopPort = await listen(hop);
  const [plainRate, hopRate] = await paired(
    options,
    () => handshake(plainPort, plainClient),
    // Client options built per connection, as a client following rotation does.
    () => handshake(hopPort, tlsClientOptions({ source: clientSource, authorize: authorizeId(serviceId) })),
  );
  line('plain Node TLS, CA file (handshakes)', plainRate, '/s');
  line('Lanyard hop: verifier + authorizer on both sides (handshakes)', hopRate, '/s');
  plain.close();
  hop.close();

  // 2. express over https keep-alive connections, the same client agent type for both.
  const app = (guarded: boolean): express.Express => {
    const a = express();
    if (guarded) a.use(lanyardExpress({ source: serverSource, authorize: authorizeAny() }));
    a.get('/docs/:id', (req, res) => {
      res.json({ id: req.params.id, agent: req.agent?.spiffeId ?? null });
    });
    return a;
  };
  const servers: https.Server[] = [];
  const agents: https.Agent[] = [];
  const setup = async (guarded: boolean): Promise<() => Promise<void>> => {
    const server = https.createServer(tlsServerOptions(serverSource), app(guarded));
    followSource(server, serverSource);
    servers.push(server);
    const port = await listen(server);
    const agent = new HopHttpsAgent(
      { source: clientSource, authorize: authorizeId(serviceId) },
      { maxSockets: concurrency },
    );
    agents.push(agent);
    return () => get(port, agent);
  };
  const [bare, guarded] = await paired(options, await setup(false), await setup(true));
  line('express without the middleware (requests)', bare, '/s');
  line('express + lanyardExpress (requests)', guarded, '/s');
  for (const a of agents) a.destroy();
  for (const s of servers) s.close();
  agents.length = 0;

  // 3. fastify over https keep-alive connections: the same route, with and without the plugin.
  const apps: FastifyInstance[] = [];
  const setupFastify = async (guarded: boolean): Promise<() => Promise<void>> => {
    const a = fastify({ https: tlsServerOptions(serverSource) });
    if (guarded) await a.register(lanyardFastify, { source: serverSource, authorize: authorizeAny() });
    a.get<{ Params: { id: string } }>('/docs/:id', async (req) => ({
      id: req.params.id,
      agent: req.agent?.spiffeId ?? null,
    }));
    await a.listen({ port: 0, host: '127.0.0.1' });
    followSource(a.server as https.Server, serverSource);
    apps.push(a);
    const agent = new HopHttpsAgent(
      { source: clientSource, authorize: authorizeId(serviceId) },
      { maxSockets: concurrency },
    );
    agents.push(agent);
    return () => get((a.server.address() as AddressInfo).port, agent);
  };
  const [fBare, fGuarded] = await paired(options, await setupFastify(false), await setupFastify(true));
  line('fastify without the plugin (requests)', fBare, '/s');
  line('fastify + lanyardFastify (requests)', fGuarded, '/s');
  for (const a of agents) a.destroy();
  await Promise.all(apps.map((a) => a.close()));

  process.stdout.write('\nHop ratios (same run)\n');
  const ratio = (text: string, v: number): void => {
    process.stdout.write(`  ${text.padEnd(58)} ${v.toFixed(2).padStart(10)}\n`);
  };
  ratio('Lanyard hop handshakes / plain Node TLS handshakes', hopRate / plainRate);
  ratio('express with lanyardExpress / without', guarded / bare);
  ratio('fastify with lanyardFastify / without', fGuarded / fBare);
  await Promise.all([serverSource.close(), clientSource.close()]);
}

if (require.main === module) {
  runHopBench(hopOptionsFromArgv()).catch((e: unknown) => {
    process.stderr.write(`bench-hop: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  });
}
