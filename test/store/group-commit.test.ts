import * as assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ErrorCode, InvalidArgumentError, LanyardError } from '../../src/errors';
import { verifyAuditChain } from '../../src/audit/verify-chain';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { sharedTransaction, type Store } from '../../src/store/store';
import { CHAIN, sampleEvent } from '../audit/helpers';
import { rejectsWithCode } from '../support/refusal';
import { newEntry } from './conformance';

const ID = 'spiffe://lanyard.local/w';

describe('SqliteStore group commit (sharedTransaction)', () => {
  let dir: string;
  let file: string;
  let store: SqliteStore;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-group-'));
    file = path.join(dir, 'lanyard.db');
    store = await SqliteStore.open({ file });
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('commits the calls queued together in one transaction, each durable when it resolves', async () => {
    const n = 40;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        store.sharedTransaction(async (tx) => {
          await tx.createEntry(newEntry({ spiffeId: `${ID}/${i}` }));
          return (await tx.audit.append(CHAIN, sampleEvent(i), new Date())).seq;
        }),
      ),
    );
    const stats = store.groupCommitStats();
    assert.equal(stats.calls, n);
    assert.ok(stats.batches < n, `${stats.batches} commits for ${n} calls`);
    assert.deepEqual(
      [...results].sort((a, b) => a - b),
      Array.from({ length: n }, (_, i) => i + 1),
    );
    // Another connection (a restarted server) sees every acknowledged write, and the chain links up.
    const other = await SqliteStore.open({ file });
    try {
      const { records } = await other.audit.readRecords(CHAIN, 0, 1000);
      assert.equal(records.length, n);
      const v = verifyAuditChain(CHAIN, records, [], undefined, { allowUnsignedTail: true });
      assert.equal(v.ok, true, v.break?.message);
      const entries = await other.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 1000 });
      assert.equal(entries.entries.length, n);
    } finally {
      await other.close();
    }
  });

  it('a call that fails leaves nothing behind, and the others in its transaction still commit', async () => {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        store.sharedTransaction(async (tx) => {
          await tx.audit.append(CHAIN, { ...sampleEvent(i), subject: `call-${i}` }, new Date());
          await tx.createEntry(newEntry({ spiffeId: `${ID}/${i}` }));
          if (i % 2 === 1) throw new InvalidArgumentError(`call ${i} refused`);
          return i;
        }),
      ),
    );
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'rejected'],
    );
    const { records } = await store.audit.readRecords(CHAIN, 0, 100);
    assert.deepEqual(
      records.map((r) => r.subject),
      ['call-0', 'call-2', 'call-4'],
    );
    assert.equal(verifyAuditChain(CHAIN, records, [], undefined, { allowUnsignedTail: true }).ok, true);
    const entries = await store.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 100 });
    assert.deepEqual(entries.entries.map((e) => e.spiffeId).sort(), [`${ID}/0`, `${ID}/2`, `${ID}/4`]);
  });

  it("runs each call in its own caller's async context, not in the context of the batch's first call", async () => {
    // The audit wrapper lends each call its recorder through AsyncLocalStorage: a call run in another call's
    // context would record its SVID under that caller's name (and its own wrapper would record it again).
    const caller = new AsyncLocalStorage<number>();
    const seen = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        caller.run(i, () => store.sharedTransaction(() => Promise.resolve(caller.getStore()))),
      ),
    );
    assert.deepEqual(
      seen,
      Array.from({ length: 12 }, (_, i) => i),
    );
    assert.ok(store.groupCommitStats().batches < 12, 'the calls shared commits');
    // Inside its context the call is still known to be in a transaction: the store refuses re-entry.
    await caller.run(99, () =>
      assert.rejects(
        store.sharedTransaction(() => store.getEntry('x')),
        (e: unknown) => e instanceof LanyardError && e.code === ErrorCode.INTERNAL,
      ),
    );
  });

  it('refuses a call from inside its own transaction, and calls after close', async () => {
    await assert.rejects(
      store.sharedTransaction(() => store.sharedTransaction(() => Promise.resolve(1))),
      (e: unknown) => e instanceof LanyardError && e.code === ErrorCode.INTERNAL,
    );
    await store.close();
    await rejectsWithCode(
      store.sharedTransaction(() => Promise.resolve(1)),
      ErrorCode.STORE_CLOSED,
    );
  });

  it('a transaction handle kept past its call is refused', async () => {
    let kept: Parameters<Parameters<Store['transaction']>[0]>[0] | undefined;
    await store.sharedTransaction((tx) => {
      kept = tx;
      return Promise.resolve();
    });
    await rejectsWithCode(kept!.getEntry('x'), ErrorCode.INTERNAL);
  });

  it('sharedTransaction() falls back to a transaction of its own on a store without group commit', async () => {
    const plain: Store = Object.assign(Object.create(store) as SqliteStore, { sharedTransaction: undefined });
    assert.equal(await sharedTransaction(plain, () => Promise.resolve(7)), 7);
    assert.equal(store.groupCommitStats().calls, 0);
  });
});
