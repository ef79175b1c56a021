/**
 * `npm run bench:scale`: what the server does at the sizes issue 15 names, each figure beside a baseline of the
 * same run (the same operation at a small size, on the same server). A real server on loopback (TLS, SQLite with
 * durable commits, a temp data dir removed afterwards); the bulk state is seeded into its store directly, the
 * measured calls go through the real gRPC path.
 *
 *   revocations  --revocations (default 1,000,000) revoked serials: server RSS, EndSession latency, the first CRL
 *                after a change (build time, size), a new watcher's time to its complete state (paged
 *                WatchRevocations), and a revocation check in the client cache holding that state
 *   entries      --entries (default 100,000) registration entries: join-token Attest latency
 *   watchers     --watchers (default 1,000) WatchRevocations streams (4 per connection, the server's default
 *                cap): EndSession until every watcher holds the revocation, p50/p99
 *   audit        `audit trace` over --audit-records (default 1,000,000) records: scripts/bench-audit.ts --query-only
 *
 *   npm run bench:scale
 *   npm run bench:scale -- --revocations 200000 --entries 20000 --watchers 200 --audit-records 200000
 * Figures, not assertions: tests never time anything.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { watchRevocationsInto } from '../src/client/revocation-watch';
import { AdminClient } from '../src/server/admin-client';
import { loadConfig } from '../src/server/config';
import { createLogger } from '../src/internal/logging';
import { startServer } from '../src/server/run';
import { RevocationCache } from '../src/verify';
import { SQLITE_FILE_NAME } from '../src/store';
import Database from 'better-sqlite3';
import { connectPublic, attest, newKey } from '../test/support/public-client';
import { endSession, register, sessionClient, startSession, TD, type Agent } from '../test/support/sessions';
import type { TestServer } from '../test/support/test-server';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const REVOCATIONS = arg('--revocations', 1_000_000);
const ENTRIES = arg('--entries', 100_000);
const WATCHERS = arg('--watchers', 1_000);
const AUDIT_RECORDS = arg('--audit-records', 1_000_000);
/** Samples per latency figure. */
const SAMPLES = arg('--samples', 20);
const SEED_BATCH = 20_000;

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
 * Revoked serials written straight into the server's SQLite file (a second connection, one transaction per
 * batch): through the store API a million rows take many minutes on this machine, and only the reads are being
 * measured. The rows are what addRevocation writes; the server reads them on its next change.
 */
function seedRevocations(file: string, count: number): void {
  const db = new Database(file);
  db.pragma('busy_timeout = 60000');
  const insert = db.prepare(
    `INSERT OR IGNORE INTO revocations (kind, target_id, reason, revoked_at, expires_at) VALUES ('certificate', ?, 'bench', ?, ?)`,
  );
  const now = Date.now();
  const expiresAt = now + 6 * 3600_000;
  const batch = db.transaction((n: number) => {
    for (let i = 0; i < n; i++) {
      // A serial as the CA makes them: random, 127 bits, lower-case hex.
      insert.run((BigInt(`0x${randomBytes(16).toString('hex')}`) >> 1n).toString(16), now, expiresAt);
    }
  });
  for (let done = 0; done < count; done += SEED_BATCH) batch(Math.min(SEED_BATCH, count - done));
  db.close();
}

async function seedEntries(s: TestServer, count: number): Promise<void> {
  for (let done = 0; done < count;) {
    const n = Math.min(SEED_BATCH, count - done);
    await s.running.store.transaction(async (tx) => {
      for (let i = 0; i < n; i++) {
        await tx.createEntry({
          spiffeId: `spiffe://${TD}/seeded/${done + i}`,
          selectors: [{ type: 'unix', value: `uid:${done + i}` }],
          x509SvidTtlSeconds: 0,
          allowedScopes: [],
          maxDelegationDepth: 0,
          allowedDelegates: [],
          admin: false,
          dnsNames: [],
          canAssertPrincipal: false,
        });
      }
    });
    done += n;
  }
}

/** Join-token Attests of `agent`'s entry, one at a time: latency of each. */
async function attestLatencies(s: TestServer, spiffeId: string, samples: number): Promise<number[]> {
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

/** StartSession then EndSession, `samples` times: EndSession's latency each time. */
async function endSessionLatencies(s: TestServer, agent: Agent, samples: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const { agent: sess, res } = await startSession(s, agent);
    const [, t] = await timed(() => endSession(s, sess, res.sessionId, 'bench'));
    times.push(t);
  }
  return times;
}

/** A new verifier: WatchRevocations from sequence 0 into a client cache, until it holds the whole state. */
async function newWatcher(s: TestServer, agent: Agent): Promise<{ ms: number; cache: RevocationCache }> {
  const client = sessionClient(s, agent);
  const cache = new RevocationCache();
  const [handle, t] = await timed(async () => {
    const h = watchRevocationsInto(client, cache);
    await h.ready;
    return h;
  });
  handle.close();
  client.close();
  return { ms: t, cache };
}

async function server(): Promise<{ s: TestServer; dataDir: string }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-bench-scale-'));
  const config = {
    ...loadConfig({ dataDir, env: {} }),
    listenAddress: { host: '127.0.0.1', port: 0 },
    logLevel: 'error' as const,
    // The bench is the only user: its watchers are not a flood.
    limits: {
      ...loadConfig({ dataDir, env: {} }).limits,
      watchers: Math.max(4096, WATCHERS + 16),
      // Every watcher here is the same verifier identity; in a fleet each verifier has its own.
      watchersPerIdentity: Math.max(256, WATCHERS + 16),
    },
  };
  const logger = createLogger({ level: 'error', destination: process.stderr });
  const running = await startServer(config, { logger, rotationTimer: false });
  const client = new AdminClient(config.adminSocketPath, { timeoutMs: 120_000 });
  const s: TestServer = {
    dir: dataDir,
    config,
    running,
    client,
    logs: [],
    async stop() {
      client.close();
      await running.close();
    },
  };
  return { s, dataDir };
}

/** Revocation-side figures at the current state of the server. */
async function revocationFigures(
  s: TestServer,
  agent: Agent,
  label: string,
): Promise<Record<string, number>> {
  const rss = process.memoryUsage().rss;
  line(`process RSS (server + bench clients), ${label}`, mib(rss));
  const end = latency(`EndSession, ${label}`, await endSessionLatencies(s, agent, SAMPLES));
  const [crls, crlMs] = await timed(() => s.running.crl.current());
  line(
    `first CRL after a change, ${label}`,
    `${crlMs.toFixed(0)} ms, ${crls.revokedCount.toLocaleString('en-US')} serials, ${mib(crls.activeDer.length)} DER`,
  );
  // The next build after one more revocation: what a CRL request pays once the list is held.
  const { agent: one, res: oneRes } = await startSession(s, agent);
  await endSession(s, one, oneRes.sessionId, 'bench');
  const [next, nextMs] = await timed(() => s.running.crl.current());
  line(
    `CRL after one more revocation (incremental), ${label}`,
    `${nextMs.toFixed(0)} ms, ${next.revokedCount.toLocaleString('en-US')} serials`,
  );
  const watcher = await newWatcher(s, agent);
  line(`new watcher: WatchRevocations until synced, ${label}`, `${watcher.ms.toFixed(0)} ms`);
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
  return { rss, endP50: end.p50, endP99: end.p99, crlMs, nextMs, watcherMs: watcher.ms, checkPerSec };
}

async function fanOut(s: TestServer, agent: Agent, watchers: number): Promise<void> {
  // 4 streams per connection: the server's default cap (limits.watchers_per_connection).
  const clients = Array.from({ length: Math.ceil(watchers / 4) }, () => sessionClient(s, agent));
  const caches: RevocationCache[] = [];
  const handles: ReturnType<typeof watchRevocationsInto>[] = [];
  const from = await s.running.store.lastRevocationSequence();
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
  for (const h of handles) h.close();
  for (const c of clients) c.close();
  for (const c of caches) c.close();
}

async function main(): Promise<void> {
  out(
    `Lanyard scale benchmark (node ${process.version}, ${os.cpus().length} CPUs, load average ` +
      `${os.loadavg()[0]!.toFixed(1)})\n\n`,
  );
  const { s, dataDir } = await server();
  try {
    const agent = await register(s, 'bench-verifier');

    out('Revocations\n');
    const small = await revocationFigures(s, agent, 'baseline (a few revocations)');
    const [, seedMs] = await timed(async () =>
      seedRevocations(path.join(dataDir, SQLITE_FILE_NAME), REVOCATIONS),
    );
    line(
      `seeded ${REVOCATIONS.toLocaleString('en-US')} revoked serials into the store (not a figure)`,
      `${(seedMs / 1000).toFixed(1)} s`,
    );
    const big = await revocationFigures(s, agent, `${REVOCATIONS.toLocaleString('en-US')} revocations`);
    line('EndSession p99: large / baseline', (big.endP99! / small.endP99!).toFixed(2));

    out('\nRegistration entries\n');
    const few = latency(
      'join-token Attest, a few entries',
      await attestLatencies(s, agent.spiffeId, SAMPLES),
    );
    const [, entriesMs] = await timed(() => seedEntries(s, ENTRIES));
    line(
      `seeded ${ENTRIES.toLocaleString('en-US')} entries into the store (not a figure)`,
      `${(entriesMs / 1000).toFixed(1)} s`,
    );
    const many = latency(
      `join-token Attest, ${ENTRIES.toLocaleString('en-US')} entries`,
      await attestLatencies(s, agent.spiffeId, SAMPLES),
    );
    line('Attest p50: large / baseline', (many.p50 / few.p50).toFixed(2));
    line(`process RSS with both`, mib(process.memoryUsage().rss));

    if (WATCHERS > 0) {
      out('\nFan-out\n');
      await fanOut(s, agent, WATCHERS);
    }
  } finally {
    await s.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }

  if (AUDIT_RECORDS <= 0) return;
  out('\nAudit\n');
  const audit = execFileSync(
    process.execPath,
    [
      ...process.execArgv,
      path.join(__dirname, 'bench-audit.ts'),
      '--records',
      String(AUDIT_RECORDS),
      '--query-only',
    ],
    { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
  );
  out(audit.replace(/^/gm, '  '));
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-scale: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
