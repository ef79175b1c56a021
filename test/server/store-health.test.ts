/**
 * The store-health monitor on a real SQLite store (real files, the real fsync behind the store's `fsync`
 * option), and the board that combines it with the CA's health: a store that failed closed (an fsync failed,
 * the -wal replaced) is reported once with its reason, one that works never is; the CA recovering cannot
 * bring back the names the store took out of service.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/internal/logging';
import { CA_DEPENDENT_HEALTH_NAMES } from '../../src/server/ca-health';
import { HealthBoard, type HealthStatus } from '../../src/server/health-board';
import {
  STORE_DEPENDENT_HEALTH_NAMES,
  storeFailure,
  watchStoreHealth,
  type StoreHealthMonitor,
} from '../../src/server/store-health';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { fsyncOnThreadpool, type FsyncHook } from '../../src/store/sqlite/wal-fsync';
import { removeDir, tempDir } from '../support/tmp';
import { newEntry } from '../store/conformance';

function capture(): { lines: () => Record<string, unknown>[]; logger: ReturnType<typeof createLogger> } {
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw.push(chunk.toString());
      cb();
    },
  });
  return {
    lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>),
    logger: createLogger({ level: 'info', destination }),
  };
}

const entry = (n: number) => newEntry({ spiffeId: `spiffe://lanyard.local/health/${n}` });

describe('store health', () => {
  let dir: string;
  let store: SqliteStore | undefined;
  let monitor: StoreHealthMonitor | undefined;
  beforeEach(() => {
    dir = tempDir('store-health');
  });
  afterEach(async () => {
    monitor?.stop();
    monitor = undefined;
    await store?.close();
    store = undefined;
    removeDir(dir);
  });

  const open = async (fsync?: FsyncHook): Promise<SqliteStore> => {
    store = await SqliteStore.open({ file: path.join(dir, 'lanyard.db'), ...(fsync && { fsync }) });
    return store;
  };

  it('a failed fsync: reported once, with its reason and cause', async () => {
    let fail = false;
    const s = await open(async (fd) => {
      await fsyncOnThreadpool(fd);
      if (fail) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    });
    const log = capture();
    const changes: boolean[] = [];
    monitor = watchStoreHealth({ store: s, logger: log.logger, onChange: (ok) => changes.push(ok) });
    await s.createEntry(entry(1));
    monitor.check();
    assert.deepEqual(changes, [], 'a working store is not reported');
    assert.equal(storeFailure(s), undefined);

    fail = true;
    await assert.rejects(s.createEntry(entry(2)), { code: 'ERR_INTERNAL' });
    monitor.check();
    monitor.check();
    assert.deepEqual(changes, [false]);
    assert.ok(storeFailure(s) !== undefined);
    const errors = log.lines().filter((l) => l.level === 'error');
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]!.reason), /could not make its write-ahead log durable/);
    assert.equal(errors[0]!.cause, 'EIO: i/o error, fsync');
  });

  it('told by the store: NOT_SERVING before the failing call hears of its rejection', async () => {
    let fail = false;
    const s = await open(async (fd) => {
      await fsyncOnThreadpool(fd);
      if (fail) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    });
    const board = new HealthBoard(() => {});
    monitor = watchStoreHealth({
      store: s,
      logger: capture().logger,
      onChange: (ok) => board.set('store', STORE_DEPENDENT_HEALTH_NAMES, ok),
    });
    await s.createEntry(entry(1));
    assert.equal(board.status(''), 'SERVING');

    fail = true;
    // No check() anywhere: what the caller sees when its call is refused is what the store already told health.
    const seen = await s.createEntry(entry(2)).then(
      () => 'resolved',
      () => board.status(''),
    );
    assert.equal(seen, 'NOT_SERVING');
    for (const n of STORE_DEPENDENT_HEALTH_NAMES) assert.equal(board.status(n), 'NOT_SERVING', n);
  });

  it('a listener that throws does not keep the failing calls waiting', async () => {
    let fail = false;
    const s = await open(async (fd) => {
      await fsyncOnThreadpool(fd);
      if (fail) throw new Error('EIO: i/o error, fsync');
    });
    const heard: string[] = [];
    s.onFailedClosed(() => {
      heard.push('first');
      throw new Error('a broken listener');
    });
    s.onFailedClosed((failure) => heard.push(failure.message));
    fail = true;
    await assert.rejects(s.createEntry(entry(1)), { code: 'ERR_INTERNAL' });
    assert.equal(heard.length, 2);
    assert.match(heard[1]!, /could not make its write-ahead log durable/);
    // Already failed: a late listener hears of it at once, and only once.
    let late = 0;
    s.onFailedClosed(() => late++);
    assert.equal(late, 1);
  });

  it('a -wal replaced under the open store: reported, and found at start by a new monitor', async () => {
    const s = await open();
    await s.createEntry(entry(1));
    const wal = path.join(dir, 'lanyard.db-wal');
    fs.copyFileSync(wal, `${wal}.copy`);
    fs.renameSync(`${wal}.copy`, wal);
    await assert.rejects(s.createEntry(entry(2)), { code: 'ERR_INTERNAL' });
    const log = capture();
    const changes: boolean[] = [];
    monitor = watchStoreHealth({ store: s, logger: log.logger, onChange: (ok) => changes.push(ok) });
    assert.deepEqual(changes, [false]);
    assert.match(String(log.lines()[0]?.cause), /lanyard\.db-wal was replaced while the database is open/);
  });

  it('the board: the CA serving again keeps what the store took out; each change passed on once', () => {
    const applied: [string[], HealthStatus][] = [];
    const board = new HealthBoard((names, status) => applied.push([[...names], status]));
    board.set('ca', CA_DEPENDENT_HEALTH_NAMES, false);
    assert.deepEqual(applied, [[[...CA_DEPENDENT_HEALTH_NAMES], 'NOT_SERVING']]);
    board.set('store', STORE_DEPENDENT_HEALTH_NAMES, false);
    // Only the names the CA did not already hold.
    assert.deepEqual(applied[1], [
      STORE_DEPENDENT_HEALTH_NAMES.filter((n) => !CA_DEPENDENT_HEALTH_NAMES.includes(n)),
      'NOT_SERVING',
    ]);
    board.set('ca', CA_DEPENDENT_HEALTH_NAMES, true);
    assert.equal(applied.length, 2, 'nothing turns SERVING while the store holds it');
    for (const n of STORE_DEPENDENT_HEALTH_NAMES) assert.equal(board.status(n), 'NOT_SERVING', n);
    assert.equal(board.status('lanyard.v1.BundleService'), 'SERVING');

    const caOnly = new HealthBoard((names, status) => applied.push([[...names], status]));
    caOnly.set('ca', CA_DEPENDENT_HEALTH_NAMES, false);
    caOnly.set('ca', CA_DEPENDENT_HEALTH_NAMES, false);
    caOnly.set('ca', CA_DEPENDENT_HEALTH_NAMES, true);
    assert.deepEqual(applied.slice(2), [
      [[...CA_DEPENDENT_HEALTH_NAMES], 'NOT_SERVING'],
      [[...CA_DEPENDENT_HEALTH_NAMES], 'SERVING'],
    ]);
  });
});
