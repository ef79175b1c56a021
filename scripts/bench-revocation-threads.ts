/**
 * `npx tsx scripts/bench-revocation-threads.ts [--revocations N] [--rounds R]`: what a CRL build and a new
 * watcher's initial state cost the server's thread, on it (inline) against off it (worker thread), alternated
 * in one process over the same store, so the machine's load falls on both alike.
 *
 * For each: wall time, the server thread's busy share during it (event-loop utilisation), the longest the event
 * loop was blocked (what an EndSession arriving then would wait at least), and the latency of store writes made
 * meanwhile (a revocation's commit). Real SQLite (WAL, durable commits), real CA keys, N revoked serials written
 * straight into the file. Figures, not assertions.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CrlPublisher } from '../src/server/revocation/crl-publisher';
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

async function main(): Promise<void> {
  out(
    `revocation work on and off the server thread (node ${process.version}, ${os.cpus().length} CPUs, ` +
      `load average ${os.loadavg()[0]!.toFixed(1)}), ${REVOCATIONS.toLocaleString('en-US')} revocations\n`,
  );
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
