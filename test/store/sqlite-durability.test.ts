/**
 * The SQLite store's durability with the WAL fsync off the server's thread: no call is answered before the fsync
 * that covers its commit, a failed fsync fails closed, WAL restarts keep every acknowledged row, close() waits.
 * Real SQLite on real files; the fsync is the real one, wrapped by the store's `fsync` option to hold or fail it.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { ErrorCode } from '../../src/errors';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { fsyncOnThreadpool, type FsyncHook } from '../../src/store/sqlite/wal-fsync';
import { FsyncGate, settled } from '../support/fsync-gate';
import { rejectsWithCode } from '../support/refusal';
import { removeDir, tempDir } from '../support/tmp';
import { newEntry } from './conformance';

const ID = 'spiffe://lanyard.local/durable';

/** Rows another connection sees: committed (written to the WAL), durable or not. */
function committedEntries(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`SELECT count(*) FROM entries WHERE spiffe_id LIKE ?`).pluck().get(`${ID}/%`) as number;
  } finally {
    db.close();
  }
}

describe('SqliteStore durability: the WAL fsync off the thread', () => {
  let dir: string;
  let file: string;
  const stores: SqliteStore[] = [];
  /** Released after each test, so a failed assertion cannot leave close() waiting for a held fsync. */
  const gates: FsyncGate[] = [];
  const newGate = (): FsyncGate => {
    const g = new FsyncGate();
    gates.push(g);
    return g;
  };
  const open = async (fsync?: FsyncHook): Promise<SqliteStore> => {
    const s = await SqliteStore.open({ file, fsync });
    stores.push(s);
    return s;
  };
  beforeEach(() => {
    dir = tempDir('durable');
    file = path.join(dir, 'lanyard.db');
  });
  afterEach(async () => {
    for (const g of gates.splice(0)) g.stopHolding();
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    removeDir(dir);
  });

  it('answers no call of a group commit before the fsync of its -wal file, and commits the next one meanwhile', async () => {
    const gate = newGate();
    const store = await open(gate.hook);
    const first = Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        store.sharedTransaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/a${i}` }))),
      ),
    );
    await gate.waitForStarts(1);
    // Committed (another connection reads the rows) but not durable: nobody is answered yet.
    assert.equal(committedEntries(file), 8);
    assert.equal(await settled(first), false, 'a call was answered before its fsync');
    const walIno = fs.statSync(`${file}-wal`).ino;
    assert.equal(fs.fstatSync(gate.started[0]!).ino, walIno, 'the fsync is of the -wal file');

    // The thread is free during that fsync: the next batch commits, and waits for an fsync of its own.
    const second = store.sharedTransaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/b` })));
    const plain = store.createEntry(newEntry({ spiffeId: `${ID}/c` }));
    const inTransaction = store.transaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/d` })));
    // A read may see rows that are not durable yet: it is answered only when they are.
    const read = store.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 100 });
    for (let i = 0; i < 400 && committedEntries(file) < 11; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(committedEntries(file), 11);
    for (const p of [second, plain, inTransaction, read]) assert.equal(await settled(p), false);

    gate.release();
    assert.equal((await first).length, 8);
    // The first fsync started before the later commits were written: they need the next one.
    await gate.waitForStarts(2);
    assert.equal(await settled(second), false, 'answered on an fsync that started before its commit');
    gate.release();
    await Promise.all([second, plain, inTransaction]);
    // The read ran before the shared batch of `b` (that batch starts on the next turn): it saw c and d.
    assert.equal((await read).entries.length, 10);
    assert.equal(store.walFsyncCount(), 2);
  });

  it('a failed fsync fails every call it covers and every later call; nothing is acknowledged', async () => {
    let fail = true;
    const store = await open(async (fd) => {
      await fsyncOnThreadpool(fd);
      if (fail) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    });
    const outcomes = await Promise.allSettled([
      ...Array.from({ length: 6 }, (_, i) =>
        store.sharedTransaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/${i}` }))),
      ),
      store.createEntry(newEntry({ spiffeId: `${ID}/plain` })),
    ]);
    for (const o of outcomes) {
      assert.equal(o.status, 'rejected', 'a call was acknowledged although its fsync failed');
      assert.equal((o.reason as { code: string }).code, ErrorCode.INTERNAL);
    }
    // A later fsync could report success after the kernel dropped the failed pages: the store stays poisoned.
    fail = false;
    await rejectsWithCode(
      store.sharedTransaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/later` }))),
      ErrorCode.INTERNAL,
    );
    await rejectsWithCode(
      store.transaction((tx) => tx.listEntries({}, { pageSize: 1 })),
      ErrorCode.INTERNAL,
    );
    await rejectsWithCode(store.listEntries({}, { pageSize: 1 }), ErrorCode.INTERNAL);
    await rejectsWithCode(store.audit.chains(), ErrorCode.INTERNAL);
    await store.close();
  });

  it('fails closed when the -wal file is removed under the open connection', async () => {
    const store = await open();
    await store.createEntry(newEntry({ spiffeId: `${ID}/before` }));
    // SQLite would go on writing to the unlinked inode, which no reopen reads: no commit can be durable.
    fs.rmSync(`${file}-wal`);
    await rejectsWithCode(store.createEntry(newEntry({ spiffeId: `${ID}/after` })), ErrorCode.INTERNAL);
    await rejectsWithCode(store.getEntry('anything'), ErrorCode.INTERNAL);
  });

  it('keeps every acknowledged row across WAL restarts and truncations under concurrent commits', async function () {
    this.timeout(120_000);
    // Each fsync waits a little, so restarts land while fsyncs of earlier commits are in flight.
    const store = await open(async (fd) => {
      await new Promise((r) => setTimeout(r, 2));
      await fsyncOnThreadpool(fd);
    });
    const checkpointer = new Database(file, { timeout: 0 });
    const salt = (): string => {
      const fd = fs.openSync(`${file}-wal`, 'r');
      try {
        const header = Buffer.alloc(32);
        return fs.readSync(fd, header, 0, 32, 0) === 32 ? header.subarray(16, 24).toString('hex') : '';
      } finally {
        fs.closeSync(fd);
      }
    };
    const salts = new Set<string>();
    let restarts = 0;
    let truncations = 0;
    let writing = true;
    const checkpoints = (async () => {
      for (let i = 0; writing; i++) {
        await new Promise((r) => setTimeout(r, 3));
        const mode = i % 2 === 0 ? 'RESTART' : 'TRUNCATE';
        const [result] = checkpointer.pragma(`wal_checkpoint(${mode})`) as { busy: number }[];
        if (result?.busy === 0) {
          if (mode === 'RESTART') restarts++;
          else truncations++;
        }
        salts.add(salt());
      }
    })();
    const acknowledged: string[] = [];
    const failed: unknown[] = [];
    const clients = Array.from({ length: 16 }, async (_, c) => {
      for (let i = 0; i < 25; i++) {
        const spiffeId = `${ID}/${c}/${i}`;
        try {
          await (i % 3 === 0
            ? store.createEntry(newEntry({ spiffeId }))
            : store.sharedTransaction((tx) => tx.createEntry(newEntry({ spiffeId }))));
          acknowledged.push(spiffeId);
        } catch (e) {
          failed.push(e);
        }
      }
    });
    await Promise.all(clients);
    writing = false;
    await checkpoints;
    checkpointer.close();
    assert.deepEqual(failed, []);
    assert.ok(restarts + truncations >= 4, `${restarts} restarts and ${truncations} truncations`);
    assert.ok(salts.size >= 3, `the WAL restarted ${salts.size - 1} times`);
    await store.close();

    const reopened = await open();
    const stored = new Set(
      (await reopened.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 1000 })).entries.map(
        (e) => e.spiffeId,
      ),
    );
    assert.equal(acknowledged.length, 400);
    for (const id of acknowledged) assert.ok(stored.has(id), `${id} was acknowledged but is gone`);
  });

  it('close() waits for the calls queued for a shared transaction and for their fsync', async () => {
    const gate = newGate();
    const store = await open(gate.hook);
    const calls = Array.from({ length: 10 }, (_, i) =>
      store.sharedTransaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/${i}` }))),
    );
    const closing = store.close();
    await rejectsWithCode(store.getEntry('x'), ErrorCode.STORE_CLOSED);
    await rejectsWithCode(
      store.sharedTransaction(() => Promise.resolve()),
      ErrorCode.STORE_CLOSED,
    );
    await gate.waitForStarts(1);
    assert.equal(await settled(closing), false, 'closed with an fsync pending');
    assert.equal(await settled(Promise.all(calls)), false);
    gate.release();
    // Every call queued before close() was answered: none failed with ERR_STORE_CLOSED.
    assert.equal((await Promise.all(calls)).length, 10);
    await closing;
    assert.equal(gate.holding, 0);
    const reopened = await open();
    assert.equal(
      (await reopened.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 100 })).entries.length,
      10,
    );
  });
});
