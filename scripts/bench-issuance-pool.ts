/**
 * The CA's issuance path alone, in one process, as a Renew drives it: 64 calls in flight, each a fresh P-256
 * CSR and a leaf with a 300-byte agent context, through CaManager as the server calls it. Two ways, alternated
 * in rounds so that both see the same load: "two trips" (checkCsr, then signX509Svid for the key it gave back:
 * two signing-pool requests per leaf) and "one trip" (signX509Svid given the CSR: one request). Prints, per
 * leaf, the CPU of the calling thread (the server's thread in a server), of the other threads (signing
 * workers, V8's helpers) and the wall time, from /proc/self/task/<tid>/schedstat (bench-issuance-cpu.ts).
 *
 *   npx tsx scripts/bench-issuance-pool.ts [--workers 2] [--rounds 6] [--calls 2048] [--inflight 64]
 */
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { CaManager, MemoryKeyManager } from '../src/ca';
import { SqliteStore } from '../src/store/sqlite/sqlite-store';
import { encodeAgentContext } from '../src/x509/agent-context/codec';
import { createCsr } from '../src/x509/csr';
import { generateSigningKeyPair } from '../src/x509/keys';
import { createPki, plannerChain } from '../test/support/pki';
import { arg } from './bench-issuance';
import { ownThreadId, threadCpuNs } from './bench-issuance-cpu';

const TRUST_DOMAIN = 'bench.lanyard.local';

type Way = 'two trips' | 'one trip';

async function main(): Promise<void> {
  const workers = process.argv.includes('--workers')
    ? Number(process.argv[process.argv.indexOf('--workers') + 1])
    : 2;
  const rounds = arg('--rounds') ?? 6;
  const calls = arg('--calls') ?? 2048;
  const inflight = arg('--inflight') ?? 64;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pool-'));
  const store = await SqliteStore.open({ file: path.join(dir, 'lanyard.db') });
  const ca = await CaManager.open({
    trustDomain: TRUST_DOMAIN,
    store,
    keyManager: new MemoryKeyManager(),
    signingWorkers: workers,
  });
  const context = encodeAgentContext(plannerChain(createPki(TRUST_DOMAIN))[0]!.context);
  const main = ownThreadId();
  const fields = { spiffeId: `spiffe://${TRUST_DOMAIN}/agent`, ttlSeconds: 300, agentContextDer: context };

  const one = async (way: Way, csr: Uint8Array): Promise<void> => {
    if (way === 'one trip') {
      await ca.signX509Svid({ ...fields, csr });
      return;
    }
    const checked = await ca.checkCsr(csr);
    await ca.signX509Svid({ ...fields, publicKey: checked.publicKey });
  };

  const round = async (way: Way): Promise<{ mainUs: number; otherUs: number; wallUs: number }> => {
    // Made before the clock starts: the clients' work, not the CA's.
    const csrs = Array.from(
      { length: calls },
      () => createCsr(generateSigningKeyPair('ec-p256').privateKey).der,
    );
    let next = 0;
    const before = threadCpuNs();
    const t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: inflight }, async () => {
        while (next < csrs.length) await one(way, csrs[next++]!);
      }),
    );
    const wallNs = Number(process.hrtime.bigint() - t0);
    const after = threadCpuNs();
    let mainNs = 0;
    let otherNs = 0;
    for (const [tid, ns] of Object.entries(after)) {
      const d = ns - (before[tid] ?? 0);
      if (tid === main) mainNs += d;
      else otherNs += d;
    }
    return { mainUs: mainNs / 1000 / calls, otherUs: otherNs / 1000 / calls, wallUs: wallNs / 1000 / calls };
  };

  console.log(
    `CA issuance path, ${workers} signing workers, ${calls} leaves a round, ${inflight} in flight, ${os.cpus().length} CPUs`,
  );
  console.log(
    `  load average at the start ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(', ')}`,
  );
  await round('two trips'); // warm-up of both paths' code, not printed
  await round('one trip');
  const sums: Record<Way, number[]> = { 'two trips': [], 'one trip': [] };
  for (let r = 0; r < rounds; r++) {
    const order: Way[] = r % 2 === 0 ? ['two trips', 'one trip'] : ['one trip', 'two trips'];
    for (const way of order) {
      const m = await round(way);
      sums[way].push(m.mainUs);
      console.log(
        `  round ${r + 1} ${way.padEnd(9)}  µs per leaf: calling thread ${m.mainUs.toFixed(0).padStart(5)}` +
          `  other threads ${m.otherUs.toFixed(0).padStart(5)}  wall ${m.wallUs.toFixed(0).padStart(5)}`,
      );
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(
    `  median calling thread µs per leaf: two trips ${median(sums['two trips']).toFixed(0)}, one trip ${median(sums['one trip']).toFixed(0)}`,
  );
  console.log(
    `  load average at the end ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(', ')}`,
  );
  await ca.close();
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
