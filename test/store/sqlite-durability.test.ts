/**
 * The SQLite store's durability with the WAL fsync off the server's thread: no call is answered before the fsync
 * that covers its commit, a failed fsync fails closed, WAL restarts keep every acknowledged row, close() waits.
 * Real SQLite on real files; the fsync is the real one, wrapped by the store's `fsync` option to hold or fail it.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import Database from 'better-sqlite3';
import { ErrorCode } from '../../src/errors';
import { DurabilityScope, runInDurabilityScope } from '../../src/store/durability-scope';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { fsyncOnThreadpool, type FsyncHook } from '../../src/store/sqlite/wal-fsync';
import { FsyncGate, settled } from '../support/fsync-gate';
import { rejectsWithCode } from '../support/refusal';
import { useSqliteFilePerTest } from '../support/store-per-test';
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
  const place = useSqliteFilePerTest('durable');
  const file = (): string => place.file();
  /** Released after each test, before the stores close, so a failed assertion cannot leave close() waiting. */
  const gates: FsyncGate[] = [];
  place.beforeClose(() => {
    for (const g of gates.splice(0)) g.stopHolding();
  });
  const newGate = (): FsyncGate => {
    const g = new FsyncGate();
    gates.push(g);
    return g;
  };
  const open = (fsync?: FsyncHook): Promise<SqliteStore> => place.open({ fsync });

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
    assert.equal(committedEntries(file()), 8);
    assert.equal(await settled(first), false, 'a call was answered before its fsync');
    const walIno = fs.statSync(`${file()}-wal`).ino;
    assert.equal(fs.fstatSync(gate.started[0]!).ino, walIno, 'the fsync is of the -wal file');

    // The thread is free during that fsync: the next batch commits, and waits for an fsync of its own.
    const second = store.sharedTransaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/b` })));
    const plain = store.createEntry(newEntry({ spiffeId: `${ID}/c` }));
    const inTransaction = store.transaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/d` })));
    // A read may see rows that are not durable yet: it is answered only when they are.
    const read = store.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 100 });
    for (let i = 0; i < 400 && committedEntries(file()) < 11; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(committedEntries(file()), 11);
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
    fs.rmSync(`${file()}-wal`);
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
    const checkpointer = new Database(file(), { timeout: 0 });
    const salt = (): string => {
      const fd = fs.openSync(`${file()}-wal`, 'r');
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

describe('SqliteStore durability inside a per-call scope: reads note, the answer waits', () => {
  const place = useSqliteFilePerTest('durable-scope');
  const file = (): string => place.file();
  const gates: FsyncGate[] = [];
  place.beforeClose(() => {
    for (const g of gates.splice(0)) g.stopHolding();
  });
  const open = (fsync?: FsyncHook): Promise<SqliteStore> => place.open({ fsync });
  /** A store whose fsyncs are held from the next one on, with one entry already durable. */
  const heldStore = async (): Promise<{ store: SqliteStore; gate: FsyncGate; first: string }> => {
    const gate = new FsyncGate({ holding: false });
    gates.push(gate);
    const store = await open(gate.hook);
    const first = (await store.createEntry(newEntry({ spiffeId: `${ID}/durable` }))).id;
    gate.hold();
    return { store, gate, first };
  };
  /** Runs `fn` in a fresh scope; returns its result and the scope. */
  const inScope = <T>(fn: () => Promise<T>): { result: Promise<T>; scope: DurabilityScope } => {
    const scope = new DurabilityScope();
    return { result: runInDurabilityScope(scope, fn), scope };
  };

  it('a read in a scope returns at once; the scope settles only after the fsync of every commit it saw', async () => {
    const { store, gate, first } = await heldStore();
    // Commit A: its fsync starts and is held.
    const a = store.createEntry(newEntry({ spiffeId: `${ID}/a` }));
    await gate.waitForStarts(2);
    // Commit B, written during A's fsync: it needs the next one.
    const b = store.createEntry(newEntry({ spiffeId: `${ID}/b` }));
    for (let i = 0; i < 400 && committedEntries(file()) < 3; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(committedEntries(file()), 3);

    const { result, scope } = inScope(async () => {
      const listed = await store.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 10 });
      const got = await store.getEntry(first);
      return { listed: listed.entries.length, got: got.id };
    });
    assert.equal(await settled(result), true, 'a read in a scope waited for an fsync');
    assert.deepEqual(await result, { listed: 3, got: first });
    const answer = scope.settle();
    assert.equal(await settled(answer), false, 'settled before the commits it saw were durable');

    // A's fsync completes: A is durable, B (which the reads saw) is not yet.
    gate.release();
    await a;
    await gate.waitForStarts(3);
    assert.equal(await settled(answer), false, 'settled on an fsync that started before a commit it saw');
    gate.release();
    await answer;
    await b;
  });

  it('outside a scope every read still waits for the commits it could have seen', async () => {
    const { store, gate, first } = await heldStore();
    const a = store.createEntry(newEntry({ spiffeId: `${ID}/a` }));
    await gate.waitForStarts(2);
    const read = store.getEntry(first);
    // A failure is an answer too: "not found" waits like a row does.
    const missing = store.getEntry('no-such-entry').then(
      () => 'found',
      (e: { code: string }) => e.code,
    );
    assert.equal(await settled(read), false, 'a read outside a scope answered before the fsync');
    assert.equal(await settled(missing), false, 'a failed read answered before the fsync');
    gate.release();
    await Promise.all([a, read]);
    assert.equal(await missing, ErrorCode.NOT_FOUND);
  });

  it('a read-only call in a scope waits for a commit still in flight that it saw; a failed read is noted too', async () => {
    const { store, gate } = await heldStore();
    const a = store.createEntry(newEntry({ spiffeId: `${ID}/a` }));
    await gate.waitForStarts(2);
    const { result, scope } = inScope(() =>
      store.getEntry('no-such-entry').then(
        () => 'found',
        (e: { code: string }) => e.code,
      ),
    );
    assert.equal(await result, ErrorCode.NOT_FOUND);
    const answer = scope.settle();
    assert.equal(await settled(answer), false, 'a refusal resting on a commit in flight was let out');
    gate.release();
    await Promise.all([a, answer]);
  });

  it('a write in a scope still waits for its own commit; a scope with nothing noted settles at once', async () => {
    const { store, gate } = await heldStore();
    const { result, scope } = inScope(() => store.createEntry(newEntry({ spiffeId: `${ID}/w` })));
    await gate.waitForStarts(2);
    assert.equal(await settled(result), false, 'a write in a scope answered before its fsync');
    gate.release();
    await result;
    await scope.settle();
    assert.equal(await settled(new DurabilityScope().settle()), true);
  });

  it('once settling, a scope is sealed: a read finishing later waits for itself', async () => {
    const { store, gate, first } = await heldStore();
    const a = store.createEntry(newEntry({ spiffeId: `${ID}/a` }));
    await gate.waitForStarts(2);
    const scope = new DurabilityScope();
    const answer = scope.settle();
    assert.equal(await settled(answer), true, 'nothing was noted');
    // Detached work of a call already answered: nothing will wait for it but itself.
    const late = runInDurabilityScope(scope, () => store.getEntry(first));
    assert.equal(await settled(late), false, 'a read in a sealed scope did not wait');
    gate.release();
    await Promise.all([a, late]);
  });

  it('caller reads asked together keep their own waits: in a scope each notes, outside each waits', async () => {
    const { store, gate, first } = await heldStore();
    const a = store.createEntry(newEntry({ spiffeId: `${ID}/a` }));
    await gate.waitForStarts(2);
    const query = { serialHex: '01', sessionId: 'workload:x', entryId: first, maxAncestors: 64 };
    // Queued next to each other for the lock, in and out of scopes: one turn of it reads them all.
    const outside = [store.readCaller(query), store.readCaller({ ...query, entryId: 'no-such-entry' })];
    const { result, scope } = inScope(() => Promise.all([store.readCaller(query), store.readCaller(query)]));
    const sealed = new DurabilityScope();
    void sealed.settle();
    const late = runInDurabilityScope(sealed, () => store.readCaller(query));
    assert.equal(await settled(result), true, 'a caller read in a scope waited for an fsync');
    for (const r of outside)
      assert.equal(await settled(r), false, 'a caller read outside a scope did not wait');
    assert.equal(await settled(late), false, 'a caller read in a sealed scope did not wait');
    const answer = scope.settle();
    assert.equal(
      await settled(answer),
      false,
      'the scope settled before the commit its reads saw was durable',
    );
    gate.release();
    await Promise.all([a, answer, late, ...outside]);
    assert.equal((await outside[0]!).entry?.id, first);
    assert.equal((await outside[1]!).entry, undefined);
    assert.deepEqual(await result, [await outside[0]!, await outside[0]!]);
  });

  it('a failed fsync fails the scope of a call whose reads saw its commit', async () => {
    let failNext = false;
    const gate = new FsyncGate({ holding: false });
    gates.push(gate);
    const store = await open(async (fd) => {
      const failing = failNext;
      await gate.hook(fd);
      if (failing) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    });
    const first = (await store.createEntry(newEntry({ spiffeId: `${ID}/durable` }))).id;
    failNext = true;
    gate.hold();
    const a = store.createEntry(newEntry({ spiffeId: `${ID}/a` }));
    await gate.waitForStarts(2);
    const { result, scope } = inScope(() => store.getEntry(first));
    assert.equal((await result).id, first);
    const answer = scope.settle();
    gate.release();
    await rejectsWithCode(answer, ErrorCode.INTERNAL);
    await rejectsWithCode(a, ErrorCode.INTERNAL);
  });
});
