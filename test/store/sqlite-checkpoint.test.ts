/**
 * The SQLite store's WAL checkpoints on a worker thread's connection (wal-checkpointer.ts), not inside a COMMIT on
 * the server's thread: the database file itself receives the commits, every acknowledged row and record survives
 * with checkpoints running beside concurrent writers, a worker that dies hands checkpoints back to the server's
 * connection, and close() leaves no -wal behind. Real SQLite on real files, real worker threads.
 */
import * as assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { verifyAuditChain } from '../../src/audit/verify-chain';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import {
  BACKSTOP_AUTOCHECKPOINT_PAGES,
  CHECKPOINT_EVERY_COMMITS,
  INLINE_AUTOCHECKPOINT_PAGES,
} from '../../src/store/sqlite/wal-checkpointer';
import { CHAIN, sampleEvent } from '../audit/helpers';
import { useSqliteFilePerTest } from '../support/store-per-test';
import { newEntry } from './conformance';

const ID = 'spiffe://lanyard.local/checkpointed';

/** Entries in the database file alone, as a copy without its -wal: what checkpoints have backfilled. */
function entriesInDatabaseFile(file: string, dir: string): number {
  const copy = path.join(dir, 'copy.db');
  fs.copyFileSync(file, copy);
  const db = new Database(copy, { readonly: true });
  try {
    return db.prepare('SELECT count(*) FROM entries WHERE spiffe_id LIKE ?').pluck().get(`${ID}/%`) as number;
  } finally {
    db.close();
    fs.rmSync(copy);
  }
}

describe('SqliteStore: WAL checkpoints off the server thread', () => {
  const place = useSqliteFilePerTest('checkpoint');
  const open = (): Promise<SqliteStore> => place.open();

  it('checkpoints on the worker every few commits; its own connection only as a far backstop', async () => {
    const store = await open();
    assert.equal(store.diagnostics().walAutocheckpointPages, BACKSTOP_AUTOCHECKPOINT_PAGES);
    const n = 2 * CHECKPOINT_EVERY_COMMITS;
    // One commit each, a few pages: far below SQLite's own auto-checkpoint threshold of 1,000 pages.
    for (let i = 0; i < n; i++) await store.createEntry(newEntry({ spiffeId: `${ID}/${i}` }));
    await store.walCheckpoints().idle();
    const stats = store.walCheckpoints();
    assert.equal(stats.fallback, undefined);
    assert.ok(stats.checkpoints >= 1, `${stats.checkpoints} checkpoints`);
    // The first checkpoint was asked for after CHECKPOINT_EVERY_COMMITS commits: at least those are backfilled.
    const backfilled = entriesInDatabaseFile(place.file(), place.dir());
    assert.ok(backfilled >= CHECKPOINT_EVERY_COMMITS, `${backfilled} entries in the database file`);
  });

  it('keeps every acknowledged row and record, chained, with checkpoints beside 16 concurrent writers', async () => {
    const store = await open();
    const writers = 16;
    // Each round of the 16 is about one group commit: enough rounds for a few checkpoints.
    const perWriter = 3 * CHECKPOINT_EVERY_COMMITS;
    let acknowledged = 0;
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < perWriter; i++) {
          await store.sharedTransaction(async (tx) => {
            await tx.createEntry(newEntry({ spiffeId: `${ID}/${w}/${i}` }));
            await tx.audit.append(CHAIN, sampleEvent(w * perWriter + i), new Date());
          });
          acknowledged++;
        }
      }),
    );
    await store.walCheckpoints().idle();
    const { checkpoints } = store.walCheckpoints();
    assert.ok(checkpoints >= 1, `${checkpoints} checkpoints`);
    await store.close();
    const reopened = await open();
    const entries = await reopened.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 1000 });
    assert.equal(entries.entries.length, acknowledged);
    const { records } = await reopened.audit.readRecords(CHAIN, 0, 1000);
    assert.equal(records.length, acknowledged);
    const v = verifyAuditChain(CHAIN, records, [], undefined, { allowUnsignedTail: true });
    assert.equal(v.ok, true, v.break?.message);
  });

  it('a worker that dies hands checkpoints back to the server connection, which goes on committing', async () => {
    const store = await open();
    for (let i = 0; i < CHECKPOINT_EVERY_COMMITS; i++) {
      await store.createEntry(newEntry({ spiffeId: `${ID}/${i}` }));
    }
    await store.walCheckpoints().idle();
    await store.walCheckpoints().stopWorker();
    const { fallback } = store.walCheckpoints();
    assert.match(fallback ?? '', /checkpoint worker exited/);
    assert.equal(store.diagnostics().walAutocheckpointPages, INLINE_AUTOCHECKPOINT_PAGES);
    const before = store.walCheckpoints().checkpoints;
    for (let i = 0; i < 2 * CHECKPOINT_EVERY_COMMITS; i++) {
      await store.createEntry(newEntry({ spiffeId: `${ID}/after/${i}` }));
    }
    // No new worker: the connection checkpoints by itself again.
    assert.equal(store.walCheckpoints().checkpoints, before);
    const all = await store.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 1000 });
    assert.equal(all.entries.length, 3 * CHECKPOINT_EVERY_COMMITS);
  });

  it('closes the worker before its own connection, so the last one to close removes the -wal', async () => {
    const store = await open();
    for (let i = 0; i < CHECKPOINT_EVERY_COMMITS; i++) {
      await store.createEntry(newEntry({ spiffeId: `${ID}/${i}` }));
    }
    // A checkpoint was just asked for: close lets it end, then stops the worker.
    await store.close();
    assert.ok(store.walCheckpoints().checkpoints >= 1);
    assert.equal(fs.existsSync(`${place.file()}-wal`), false, 'the -wal is left behind');
    assert.equal(entriesInDatabaseFile(place.file(), place.dir()), CHECKPOINT_EVERY_COMMITS);
  });

  it('close() keeps a process alive until the worker stopped, when that is all the process has left to do', async () => {
    const child = fork(path.join(__dirname, 'fixtures', 'checkpoint-close.ts'), [place.file()], {
      execArgv: ['--require', require.resolve('tsx/cjs')],
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (c) => resolve(c));
    });
    assert.equal(code, 0);
    assert.match(out, /^closed [1-9]/);
    assert.equal(fs.existsSync(`${place.file()}-wal`), false);
  });
});
