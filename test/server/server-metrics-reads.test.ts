/**
 * The scrape-time gauges read from the store (sessions, revocation sequence, audit head) when the store cannot
 * answer for a while (as PostgreSQL while it is unreachable): each reports NaN on every scrape, never its last
 * value, and its warning is logged once when it stops being readable, not once a scrape; when it can be read
 * again that is logged once and the next outage is warned about again. Real SQLite store and CA (the test kit's
 * DataDir); the outage is a fault injected in front of the real store's three reads, as the fsync hook injects
 * one in front of the real fsync elsewhere. (A store that failed closed: test/integration/server-lifecycle/
 * store-health.test.ts.)
 */
import * as assert from 'node:assert/strict';
import { ServerMetrics } from '../../src/server/metrics/server-metrics';
import { RevocationFeed } from '../../src/server/sessions/revocation-feed';
import type { Store } from '../../src/store/store';
import { DataDir } from '../support/ca';
import { removeDir, tempDir } from '../support/tmp';

const GAUGES = [
  'lanyard_server_sessions_active',
  'lanyard_server_revocation_sequence',
  'lanyard_server_audit_chain_head_sequence',
];
const FLAKY = new Set(['countLiveSessions', 'lastRevocationSequence', 'audit']);

describe('server metrics: store reads that fail for a while', () => {
  let data: DataDir;
  let metrics: ServerMetrics | undefined;
  beforeEach(() => {
    data = new DataDir(tempDir('metrics-reads'));
  });
  afterEach(async () => {
    metrics?.unbind();
    metrics = undefined;
    await data.stop();
    removeDir(data.dir);
  });

  it('NaN on every scrape while down, one warning per gauge per outage, one line when readable again', async () => {
    const { ca, store } = await data.start();
    let down = false;
    const outage = (): Promise<never> => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
    const flaky = new Proxy(store, {
      get(target, key, receiver) {
        const real: unknown = Reflect.get(target, key, receiver);
        if (!FLAKY.has(String(key))) return typeof real === 'function' ? real.bind(target) : real;
        if (key === 'audit') {
          return { ...store.audit, head: (chain: string) => (down ? outage() : store.audit.head(chain)) };
        }
        return (...args: unknown[]) =>
          down ? outage() : (real as (...a: unknown[]) => unknown).apply(target, args);
      },
    }) as Store;
    metrics = new ServerMetrics(data.clock.read, data.log.logger);
    metrics.bind({
      ca,
      store: flaky,
      auditChain: 'server',
      attestorTypes: [],
      revocations: new RevocationFeed(),
    });
    const scrape = async (): Promise<Record<string, string>> => {
      const text = await metrics!.registry.metrics();
      return Object.fromEntries(
        GAUGES.map((g) => [g, new RegExp(`^${g} (\\S+)$`, 'm').exec(text)?.[1] ?? '']),
      );
    };
    const lines = (msg: RegExp): { metric?: string }[] =>
      data.log.raw
        .map((l) => JSON.parse(l) as { msg?: string; metric?: string })
        .filter((l) => msg.test(l.msg ?? ''));
    const warned = (): number => lines(/metric could not be read/).length;

    for (const [g, v] of Object.entries(await scrape())) assert.match(v, /^\d+$/, g);
    assert.equal(warned(), 0);

    down = true;
    for (let i = 0; i < 3; i++) {
      for (const [g, v] of Object.entries(await scrape())) assert.match(v, /^nan$/i, `${g}, scrape ${i}`);
    }
    assert.equal(warned(), 3, 'one warning per gauge for the whole outage');

    down = false;
    await scrape();
    for (const [g, v] of Object.entries(await scrape())) assert.match(v, /^\d+$/, g);
    assert.equal(lines(/metric can be read again/).length, 3);

    down = true;
    await scrape();
    await scrape();
    assert.equal(warned(), 6, 'a new outage is warned about again, once');
  });
});
