/**
 * Health follows the store once it has failed closed: a real server on loopback whose SQLite store's WAL fsync
 * (the store's `fsync` option around the real one) fails once refuses every later call, and health says so —
 * Check and Watch report NOT_SERVING for the server and every service that uses the store, on both listeners;
 * `lanyard server healthcheck` exits 1; the metrics gauge reads 1; the reason is logged once. A healthy store
 * under the same wrapper stays SERVING. (That the CA turning SERVING again cannot undo the store's NOT_SERVING:
 * test/server/store-health.test.ts.)
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXIT_OK, EXIT_REJECTED } from '../../../src/cli/exit-codes';
import { AdminCallError } from '../../../src/server/admin-client';
import { STORE_DEPENDENT_HEALTH_NAMES } from '../../../src/server/store-health';
import { SQLITE_FILE_NAME, SqliteStore } from '../../../src/store/sqlite/sqlite-store';
import { fsyncOnThreadpool, type FsyncHook } from '../../../src/store/sqlite/wal-fsync';
import { checkHealth, HealthClients, watchHealth, type HealthClient } from '../../support/health-client';
import { runCli } from '../../support/server-process';
import { startTestServer, type TestServer } from '../../support/test-server';

/** The real fsync, failing with EIO (after running) the next time once armed. */
function failingOnce(): { hook: FsyncHook; arm(): void; failed: () => number } {
  let armed = false;
  let failures = 0;
  return {
    hook: async (fd) => {
      await fsyncOnThreadpool(fd);
      if (!armed) return;
      armed = false;
      failures++;
      throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    },
    arm: () => {
      armed = true;
    },
    failed: () => failures,
  };
}

/** The admin socket serves no issuance to workloads: attestation and node agents are public only. */
const ON_ADMIN = STORE_DEPENDENT_HEALTH_NAMES.filter(
  (n) => n !== 'lanyard.v1.AttestationService' && n !== 'lanyard.v1.NodeService',
);
const LOG_LINE = 'store failed closed: health NOT_SERVING until the server restarts';
const GAUGES_LINE = 'store failed closed: the gauges read from it report NaN until the server restarts';
const STORE_GAUGES = [
  'lanyard_server_sessions_active',
  'lanyard_server_revocation_sequence',
  'lanyard_server_audit_chain_head_sequence',
];

describe('health follows the store when it fails closed', function () {
  this.timeout(120_000);
  let t: TestServer | undefined;
  const clients = new HealthClients();
  afterEach(async () => {
    clients.closeAll();
    if (t) {
      await t.stop();
      fs.rmSync(t.dir, { recursive: true, force: true });
    }
    t = undefined;
  });

  const start = async (hook: FsyncHook): Promise<TestServer> =>
    startTestServer({
      config: { metricsListenAddress: { host: '127.0.0.1', port: 0 } },
      start: {
        rotationTimer: false,
        openStore: (config) =>
          SqliteStore.open({ file: path.join(config.dataDir, SQLITE_FILE_NAME), fsync: hook }),
      },
    });
  const admin = (s: TestServer): HealthClient => clients.admin(s);
  const probe = (s: TestServer): HealthClient => clients.probe(s);
  const gauge = async (s: TestServer): Promise<string | undefined> => {
    const res = await fetch(`http://${s.running.metricsAddress}/metrics`);
    assert.equal(res.status, 200);
    return /^lanyard_server_store_failed_closed (\S+)$/m.exec(await res.text())?.[1];
  };
  const entry = (n: number) => ({
    entry: { spiffeId: `spiffe://lanyard.local/w/${n}`, selectors: [{ type: 'unix', value: `uid:${n}` }] },
  });

  it('a failed fsync: NOT_SERVING on Check and Watch, healthcheck exit 1, gauge 1, logged once', async () => {
    const fsync = failingOnce();
    t = await start(fsync.hook);
    const s = t;
    const a = admin(s);
    const overall = watchHealth(a, '');
    const attestation = watchHealth(probe(s), 'lanyard.v1.AttestationService');
    await overall.until('SERVING');
    await attestation.until('SERVING');

    fsync.arm();
    await assert.rejects(
      s.client.createEntry(entry(1)),
      (e: unknown) => e instanceof AdminCallError && e.lanyardCode === 'ERR_INTERNAL',
    );
    assert.equal(fsync.failed(), 1);
    // Poisoned for good: a later write fails although the next fsync would succeed.
    await assert.rejects(s.client.createEntry(entry(2)), AdminCallError);

    await overall.until('NOT_SERVING');
    await attestation.until('NOT_SERVING');
    const pr = probe(s);
    for (const n of ON_ADMIN) assert.equal(await checkHealth(a, n), 'NOT_SERVING', `admin ${n}`);
    for (const n of STORE_DEPENDENT_HEALTH_NAMES) {
      assert.equal(await checkHealth(pr, n), 'NOT_SERVING', `public ${n}`);
    }
    // The bundle is answered from memory: still served.
    assert.equal(await checkHealth(pr, 'lanyard.v1.BundleService'), 'SERVING');
    assert.equal(await gauge(s), '1');
    // The gauges read from the store: NaN (not their last value) on every scrape, and one warning in all.
    for (let i = 0; i < 3; i++) {
      const text = await (await fetch(`http://${s.running.metricsAddress}/metrics`)).text();
      for (const name of STORE_GAUGES) {
        assert.match(
          new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? '',
          /^nan$/i,
          `${name}, scrape ${i}`,
        );
      }
    }
    assert.equal(s.logs.filter((l) => l.includes('metric could not be read')).length, 0);
    assert.equal(s.logs.filter((l) => l.includes(GAUGES_LINE)).length, 1, 'one warning for the store gauges');

    const cli = await runCli(['server', 'healthcheck', '--data-dir', s.dir]);
    assert.equal(cli.code, EXIT_REJECTED, cli.stderr);
    assert.match(cli.stderr, /server is not healthy: NOT_SERVING/);

    // The CA can still issue and says so; the store's failure keeps the names out of service.
    assert.equal(s.running.ca.readiness().ready, true);
    assert.equal(await checkHealth(a, ''), 'NOT_SERVING');
    assert.deepEqual(overall.seen, ['SERVING', 'NOT_SERVING']);

    const logged = s.logs.filter((l) => l.includes(LOG_LINE));
    assert.equal(logged.length, 1, 'the reason is logged once');
    const line = JSON.parse(logged[0]!) as { reason?: string; cause?: string };
    assert.match(line.reason ?? '', /could not make its write-ahead log durable/);
    assert.equal(line.cause, 'EIO: i/o error, fsync');
  });

  it('a healthy store under the same wrapper stays SERVING: healthcheck exit 0, gauge 0', async () => {
    const fsync = failingOnce();
    t = await start(fsync.hook);
    const s = t;
    for (let i = 0; i < 8; i++) await s.client.createEntry(entry(i));
    assert.equal(fsync.failed(), 0);
    const a = admin(s);
    const pr = probe(s);
    for (const n of ON_ADMIN) assert.equal(await checkHealth(a, n), 'SERVING', `admin ${n}`);
    for (const n of STORE_DEPENDENT_HEALTH_NAMES) {
      assert.equal(await checkHealth(pr, n), 'SERVING', `public ${n}`);
    }
    assert.equal(await gauge(s), '0');
    const cli = await runCli(['server', 'healthcheck', '--data-dir', s.dir]);
    assert.equal(cli.code, EXIT_OK, cli.stderr);
    assert.ok(!s.logs.some((l) => l.includes(LOG_LINE)));
    const text = await (await fetch(`http://${s.running.metricsAddress}/metrics`)).text();
    for (const name of STORE_GAUGES) {
      assert.match(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? '', /^\d+$/, name);
    }
    assert.ok(!s.logs.some((l) => l.includes(GAUGES_LINE)));
  });
});
