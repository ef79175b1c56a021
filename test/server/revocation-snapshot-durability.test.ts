/**
 * A new watcher's initial revocation state is read by a worker thread on its own SQLite connection, which sees a
 * commit as soon as it is written, before its WAL fsync. The reader must hand nothing over until what it read is
 * durable: a revocation a power loss takes back would leave the watcher holding a sequence the server reuses.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { WorkerSnapshotReader } from '../../src/server/sessions/revocation-snapshot';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { FsyncGate, settled } from '../support/fsync-gate';
import { removeDir, tempDir } from '../support/tmp';

describe('revocation snapshot worker: nothing handed over before it is durable', () => {
  let dir: string;
  let store: SqliteStore;
  let gate: FsyncGate;
  const readers: WorkerSnapshotReader[] = [];
  beforeEach(async () => {
    dir = tempDir('snapshot-durable');
    gate = new FsyncGate();
    store = await SqliteStore.open({ file: path.join(dir, 'lanyard.db'), fsync: gate.hook });
  });
  afterEach(async () => {
    for (const r of readers.splice(0)) r.close();
    gate.stopHolding();
    await store.close();
    removeDir(dir);
  });

  it('answers a read that saw a revocation only once the revocation is on disk', async function () {
    this.timeout(60_000);
    const revoked = store.addRevocation(
      { kind: 'session', id: 'sess-1', reason: 'ended', expiresAt: new Date(Date.now() + 3_600_000) },
      new Date(),
    );
    await gate.waitForStarts(1);
    // Without the barrier the worker's connection already returns the revocation whose fsync is held.
    const unguarded = new WorkerSnapshotReader(store.file, () => Promise.resolve());
    readers.push(unguarded);
    assert.equal((await unguarded.read(0, 100, 65_536)).rows, 1);

    let replied = false;
    const guarded = new WorkerSnapshotReader(store.file, () => {
      replied = true;
      return store.durableBarrier();
    });
    readers.push(guarded);
    const read = guarded.read(0, 100, 65_536);
    while (!replied) await new Promise((r) => setTimeout(r, 5));
    assert.equal(await settled(read), false, 'handed over a revocation that is not durable');
    assert.equal(await settled(revoked), false);
    gate.release();
    assert.equal((await read).rows, 1);
    assert.equal((await revoked).id, 'sess-1');
  });
});
