/**
 * What group commit (`Store.sharedTransaction`) must do on every store that has it, written once for SQLite and
 * PostgreSQL: `runGroupCommitConformance('postgres', makeHarness)`.
 */
import * as assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { AuditEvent } from '../../src/audit/record';
import { verifyAuditChain } from '../../src/audit/verify-chain';
import { ErrorCode, InvalidArgumentError, LanyardError } from '../../src/errors';
import { hashJoinToken } from '../../src/internal/join-token-secret';
import { sharedTransaction, type GroupCommitStats, type Store, type StoreOps } from '../../src/store/store';
import { CHAIN, sampleEvent } from '../audit/helpers';
import { rejectsWithCode } from '../support/refusal';
import { newEntry, type MakeStoreHarness, type StoreHarness } from './conformance';

const ID = 'spiffe://lanyard.local/w';

type GroupCommitStore = Store & Required<Pick<Store, 'sharedTransaction' | 'groupCommitStats'>>;

function withGroupCommit(store: Store): GroupCommitStore {
  assert.ok(store.sharedTransaction !== undefined, `the ${store.kind} store has no sharedTransaction`);
  assert.ok(store.groupCommitStats !== undefined, `the ${store.kind} store has no groupCommitStats`);
  return store as GroupCommitStore;
}

const isInternal = (e: unknown): boolean => e instanceof LanyardError && e.code === ErrorCode.INTERNAL;

export function runGroupCommitConformance(name: string, makeHarness: MakeStoreHarness): void {
  describe(`group commit (sharedTransaction): ${name}`, () => {
    let harness: StoreHarness;
    let store: GroupCommitStore;
    beforeEach(async () => {
      harness = await makeHarness();
      store = withGroupCommit(await harness.open());
    });
    afterEach(async () => {
      await harness.destroy();
    });

    it('commits the calls queued together in one transaction, each durable when it resolves', async () => {
      const n = 40;
      // Another connection (another server, or this one restarted) must see a call's writes the moment it resolves.
      const other = await harness.open();
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          store
            .sharedTransaction(async (tx) => {
              const entry = await tx.createEntry(newEntry({ spiffeId: `${ID}/${i}` }));
              return {
                entryId: entry.id,
                seq: (await tx.audit.append(CHAIN, sampleEvent(i), new Date())).seq,
              };
            })
            .then(async (r) => {
              assert.equal((await other.getEntry(r.entryId)).spiffeId, `${ID}/${i}`);
              return r.seq;
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
      const { records } = await other.audit.readRecords(CHAIN, 0, 1000);
      assert.equal(records.length, n);
      const v = verifyAuditChain(CHAIN, records, [], undefined, { allowUnsignedTail: true });
      assert.equal(v.ok, true, v.break?.message);
      const entries = await other.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 1000 });
      assert.equal(entries.entries.length, n);
    });

    it('a call that fails leaves nothing behind, and the others in its transaction still commit', async () => {
      const before = store.groupCommitStats();
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
      assert.equal(store.groupCommitStats().batches - before.batches, 1, 'the six calls shared one batch');
      assert.deepEqual(
        outcomes.map((o) => o.status),
        ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'rejected'],
      );
      // Each caller gets its own error, and only its own.
      outcomes.forEach((o, i) => {
        if (o.status === 'rejected') assert.equal((o.reason as Error).message, `call ${i} refused`);
      });
      const { records } = await store.audit.readRecords(CHAIN, 0, 100);
      assert.deepEqual(
        records.map((r) => r.subject),
        ['call-0', 'call-2', 'call-4'],
      );
      assert.equal(verifyAuditChain(CHAIN, records, [], undefined, { allowUnsignedTail: true }).ok, true);
      const entries = await store.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 100 });
      assert.deepEqual(entries.entries.map((e) => e.spiffeId).sort(), [`${ID}/0`, `${ID}/2`, `${ID}/4`]);
    });

    it('a failure a call catches undoes only that write; the rest of the call commits', async () => {
      await store.createEntry(newEntry({ spiffeId: `${ID}/taken` }));
      const [caught, plain] = await Promise.all([
        store.sharedTransaction(async (tx) => {
          await tx.createEntry(newEntry({ spiffeId: `${ID}/a` }));
          const dup = await tx.createEntry(newEntry({ spiffeId: `${ID}/taken` })).catch((e: unknown) => e);
          await tx.createEntry(newEntry({ spiffeId: `${ID}/b` }));
          return dup;
        }),
        store.sharedTransaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/c` }))),
      ]);
      assert.equal((caught as LanyardError).code, ErrorCode.ALREADY_EXISTS);
      assert.equal(plain.spiffeId, `${ID}/c`);
      const entries = await store.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 100 });
      assert.deepEqual(
        entries.entries.map((e) => e.spiffeId),
        [`${ID}/a`, `${ID}/b`, `${ID}/c`, `${ID}/taken`],
      );
    });

    it('work a failed call left running on its handle is undone with it, not committed by the next call', async () => {
      const outcomes = await Promise.allSettled([
        store.sharedTransaction((tx) => {
          // Started and not awaited: it must land in this call's savepoint (and be rolled back) or be refused.
          void tx.createEntry(newEntry({ spiffeId: `${ID}/stray` })).catch(() => undefined);
          return Promise.reject(new InvalidArgumentError('refused'));
        }),
        store.sharedTransaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/kept` }))),
      ]);
      assert.deepEqual(
        outcomes.map((o) => o.status),
        ['rejected', 'fulfilled'],
      );
      const entries = await store.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 100 });
      assert.deepEqual(
        entries.entries.map((e) => e.spiffeId),
        [`${ID}/kept`],
      );
    });

    it("runs each call in its own caller's async context, not in the context of the batch's first call", async () => {
      // The audit wrapper lends each call its recorder through AsyncLocalStorage: a call run in another call's
      // context would record its SVID under that caller's name (and its own wrapper would record it again).
      const caller = new AsyncLocalStorage<number>();
      const seen = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          caller.run(i, () =>
            store.sharedTransaction(async (tx) => {
              // Still its own context after the call's first store round trip.
              await tx.getBundle('lanyard.local');
              return caller.getStore();
            }),
          ),
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
          isInternal,
        ),
      );
    });

    it('lets exactly one of concurrent shared calls spend a token, across two connections', async () => {
      const other = withGroupCommit(await harness.open());
      const expiresAt = new Date(Date.now() + 60_000);
      for (const t of ['t1', 't2']) {
        await store.createJoinToken({
          id: `jt-${t}`,
          tokenHash: hashJoinToken(t),
          entryId: 'e-1',
          spiffeId: `${ID}/a`,
          expiresAt,
        });
      }
      const spend =
        (secret: string, i: number) =>
        async (tx: StoreOps): Promise<number> => {
          await tx.consumeJoinToken(hashJoinToken(secret), new Date());
          return (await tx.audit.append(CHAIN, { ...sampleEvent(i), subject: secret }, new Date())).seq;
        };
      const outcomes = await Promise.allSettled(
        Array.from({ length: 16 }, (_, i) =>
          (i % 2 === 0 ? store : other).sharedTransaction(spend(i % 4 < 2 ? 't1' : 't2', i)),
        ),
      );
      assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 2, 'one winner per token');
      for (const o of outcomes) {
        if (o.status === 'rejected') assert.equal((o.reason as LanyardError).code, ErrorCode.TOKEN_SPENT);
      }
      const { records } = await store.audit.readRecords(CHAIN, 0, 100);
      assert.deepEqual(records.map((r) => r.subject).sort(), ['t1', 't2']);
      assert.equal(verifyAuditChain(CHAIN, records, [], undefined, { allowUnsignedTail: true }).ok, true);
    });

    it('refuses a call from inside its own transaction, and calls after close', async () => {
      await assert.rejects(
        store.sharedTransaction(() => store.sharedTransaction(() => Promise.resolve(1))),
        isInternal,
      );
      await store.close();
      await rejectsWithCode(
        store.sharedTransaction(() => Promise.resolve(1)),
        ErrorCode.STORE_CLOSED,
      );
    });

    it('close() with calls queued: each one either committed before it resolved or failed and left nothing', async () => {
      const queued = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) =>
          store.sharedTransaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/${i}` }))),
        ).concat([store.close().then(() => undefined as never)]),
      );
      const reopened = await harness.open();
      const stored = new Set(
        (await reopened.listEntries({ spiffeIdPrefix: `${ID}/` }, { pageSize: 100 })).entries.map(
          (e) => e.spiffeId,
        ),
      );
      queued.slice(0, 5).forEach((o, i) => {
        if (o.status === 'fulfilled')
          assert.ok(stored.has(`${ID}/${i}`), `call ${i} resolved but is not stored`);
        else {
          assert.equal((o.reason as LanyardError).code, ErrorCode.STORE_CLOSED);
          assert.ok(!stored.has(`${ID}/${i}`), `call ${i} failed but is stored`);
        }
      });
    });

    it('chains every record of a batch in commit order, on each chain, with no record of a failed call', async () => {
      // The batch carries each chain's head from call to call (one head read per batch): a call rolled back
      // must take the heads its records made with it, on every chain it wrote, and an append that failed
      // (refused before its INSERT) must move no head at all.
      const second = `${CHAIN}/second`;
      const before = store.groupCommitStats();
      const outcomes = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          store.sharedTransaction(async (tx) => {
            await tx.audit.append(CHAIN, { ...sampleEvent(i), subject: `call-${i}-a` }, new Date());
            if (i === 3) {
              const bad = { ...sampleEvent(i), event: 'no.such.event' } as unknown as AuditEvent;
              await rejectsWithCode(tx.audit.append(CHAIN, bad, new Date()), ErrorCode.AUDIT_RECORD_INVALID);
            }
            await tx.audit.append(second, { ...sampleEvent(i), subject: `call-${i}` }, new Date());
            const last = await tx.audit.append(
              CHAIN,
              { ...sampleEvent(i), subject: `call-${i}-b` },
              new Date(),
            );
            if (i === 2 || i === 5) throw new InvalidArgumentError(`call ${i} refused`);
            return last;
          }),
        ),
      );
      assert.equal(store.groupCommitStats().batches - before.batches, 1, 'the eight calls shared one batch');
      const kept = [0, 1, 3, 4, 6, 7];
      assert.deepEqual(
        outcomes.map((o) => o.status),
        outcomes.map((_, i) => (kept.includes(i) ? 'fulfilled' : 'rejected')),
      );
      const { records } = await store.audit.readRecords(CHAIN, 0, 100);
      assert.deepEqual(
        records.map((r) => r.subject),
        kept.flatMap((i) => [`call-${i}-a`, `call-${i}-b`]),
      );
      assert.deepEqual(
        records.map((r) => r.seq),
        records.map((_, i) => i + 1),
      );
      assert.equal(verifyAuditChain(CHAIN, records, [], undefined, { allowUnsignedTail: true }).ok, true);
      // What each call was told is what was stored.
      for (const o of outcomes) {
        if (o.status !== 'fulfilled') continue;
        assert.deepEqual(records[o.value.seq - 1], o.value);
      }
      const other = (await store.audit.readRecords(second, 0, 100)).records;
      assert.deepEqual(
        other.map((r) => r.subject),
        kept.map((i) => `call-${i}`),
      );
      assert.equal(verifyAuditChain(second, other, [], undefined, { allowUnsignedTail: true }).ok, true);
    });

    it('reads each head again in every batch: records another writer added in between are chained on', async () => {
      // Between two batches another server (PostgreSQL) or another process on the same SQLite file may have
      // appended: a head carried over from the previous batch would fork the chain.
      const other = await harness.open();
      const batch = (from: number): Promise<unknown> =>
        Promise.all(
          [from, from + 1].map((i) =>
            store.sharedTransaction((tx) =>
              tx.audit.append(CHAIN, { ...sampleEvent(i), subject: `batch-${i}` }, new Date()),
            ),
          ),
        );
      await batch(0);
      await other.audit.append(CHAIN, { ...sampleEvent(2), subject: 'other' }, new Date());
      await batch(3);
      const { records } = await other.audit.readRecords(CHAIN, 0, 100);
      assert.deepEqual(
        records.map((r) => `${r.seq} ${r.subject}`),
        ['1 batch-0', '2 batch-1', '3 other', '4 batch-3', '5 batch-4'],
      );
      assert.equal(verifyAuditChain(CHAIN, records, [], undefined, { allowUnsignedTail: true }).ok, true);
    });

    it('a transaction handle kept past its call is refused', async () => {
      let kept: StoreOps | undefined;
      await store.sharedTransaction((tx) => {
        kept = tx;
        return Promise.resolve();
      });
      await rejectsWithCode(kept!.getEntry('x'), ErrorCode.INTERNAL);
    });

    it('sharedTransaction() falls back to a transaction of its own on a store without group commit', async () => {
      const plain: Store = Object.assign(Object.create(store) as Store, { sharedTransaction: undefined });
      assert.equal(await sharedTransaction(plain, () => Promise.resolve(7)), 7);
      const stats: GroupCommitStats = store.groupCommitStats();
      assert.equal(stats.calls, 0);
    });
  });
}
