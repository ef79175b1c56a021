/**
 * The snapshot worker reads the chunk after a full, gap-free one before it is asked for it. Only a chunk that can
 * never gain a row may be held so: a partial one read ahead and answered later would lack what committed
 * between the two, which a watcher that subscribed in between gets from neither the feed nor the read.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { unpackRevocations } from '../../../src/internal/revocation-page';
import { WorkerSnapshotReader } from '../../../src/server/sessions/revocation-snapshot';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store';
import { removeDir, tempDir } from '../../support/tmp';

describe('revocation snapshot worker: the chunk read ahead', () => {
  let dir: string;
  let store: SqliteStore;
  let reader: WorkerSnapshotReader | undefined;
  beforeEach(async () => {
    dir = tempDir('snapshot-ahead');
    store = await SqliteStore.open({ file: path.join(dir, 'lanyard.db') });
  });
  afterEach(async () => {
    reader?.close();
    await store.close();
    removeDir(dir);
  });

  const revoke = async (n: number, from: number): Promise<void> => {
    for (let i = from; i < from + n; i++) {
      await store.addRevocation(
        {
          kind: 'certificate',
          id: (0xa000 + i).toString(16),
          reason: 'r',
          expiresAt: new Date(Date.now() + 3_600_000),
        },
        new Date(),
      );
    }
  };
  const ids = (read: Awaited<ReturnType<WorkerSnapshotReader['read']>>): string[] =>
    read.pages.flatMap((p) => unpackRevocations(p.bytes).map((r) => r.id));

  it('a partial chunk is never held: what committed after the read ahead is in the answer', async function () {
    this.timeout(60_000);
    await revoke(6, 0);
    reader = new WorkerSnapshotReader(store.file, () => store.durableBarrier());
    const first = await reader.read(0, 4, 65_536);
    assert.equal(first.rows, 4);
    // Give the worker its turn to read the next chunk ahead (2 of 4 rows: partial); not a timing assertion.
    await new Promise((r) => setTimeout(r, 300));
    await revoke(1, 6);
    const second = await reader.read(4, 4, 65_536);
    assert.deepEqual(ids(second), ['a004', 'a005', 'a006']);
    assert.equal(second.rows, 3);
  });

  it('a full chunk read ahead answers its request with the same rows as a fresh read', async function () {
    this.timeout(60_000);
    await revoke(8, 0);
    reader = new WorkerSnapshotReader(store.file, () => store.durableBarrier());
    await reader.read(0, 4, 65_536);
    await new Promise((r) => setTimeout(r, 300));
    await revoke(1, 8);
    const second = await reader.read(4, 4, 65_536);
    assert.deepEqual(ids(second), ['a004', 'a005', 'a006', 'a007']);
    const third = await reader.read(8, 4, 65_536);
    assert.deepEqual(ids(third), ['a008']);
  });
});
