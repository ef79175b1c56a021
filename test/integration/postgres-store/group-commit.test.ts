/**
 * Group commit on the PostgreSQL store: the suite every store passes (test/store/group-commit-conformance.ts), then
 * what only a database on the other end of a connection can do to a batch: the connection dies in the middle, the
 * COMMIT fails, and the notifications other servers hear must follow what committed.
 */
import * as assert from 'node:assert/strict';
import { ErrorCode, InvalidArgumentError, LanyardError } from '../../../src/errors';
import { PgStore } from '../../../src/store/postgres/pg-store';
import type { StoreOps } from '../../../src/store/store';
import { usePostgresCluster } from '../../support/postgres-cluster';
import { usePgDatabasePerTest } from '../../support/store-per-test';
import { newEntry } from '../../store/conformance';
import { runGroupCommitConformance } from '../../store/group-commit-conformance';
import { postgresHarness } from '../../store/harnesses';

const ID = 'spiffe://lanyard.local/w';

/** A promise the test resolves when it chooses, and one that says the call reached it. */
function gate(): { reached: Promise<void>; wait: () => Promise<void>; open: () => void } {
  let reach!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((r) => (reach = r));
  const opened = new Promise<void>((r) => (open = r));
  return {
    reached,
    wait: () => {
      reach();
      return opened;
    },
    open,
  };
}

/** Settles `p` into what a test can inspect without awaiting it: pending until it settles. */
function track<T>(p: Promise<T>): {
  state: () => 'pending' | 'resolved' | 'rejected';
  done: Promise<unknown>;
} {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending';
  const done = p.then(
    (v) => {
      state = 'resolved';
      return v;
    },
    (e: unknown) => {
      state = 'rejected';
      return e;
    },
  );
  return { state: () => state, done };
}

describe('PostgreSQL store', function () {
  const cluster = usePostgresCluster();

  runGroupCommitConformance('postgres', postgresHarness(cluster, 'group_commit'));

  describe('group commit against a failing database', () => {
    const place = usePgDatabasePerTest(cluster, 'group_commit_fail');
    const open = (serverId = 'a'): Promise<PgStore> => place.open({ poolSize: 3, serverId });

    /** The backend that holds the write lock (a running batch's connection). */
    async function lockHolder(): Promise<number> {
      const rows = await cluster().query(
        place.database(),
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
      );
      assert.equal(rows.length, 1, 'one connection holds the write lock, once');
      return Number(rows[0]!.pid);
    }

    async function storedIds(): Promise<string[]> {
      const rows = await cluster().query(
        place.database(),
        'SELECT spiffe_id FROM entries ORDER BY spiffe_id',
      );
      return rows.map((r) => String(r.spiffe_id));
    }

    /** Five calls in one batch; the third waits at the gate after its first write. */
    function pausedBatch(store: PgStore, g: ReturnType<typeof gate>) {
      const call = (i: number) => async (tx: StoreOps) => {
        await tx.createEntry(newEntry({ spiffeId: `${ID}/${i}` }));
        if (i === 2) {
          await g.wait();
          await tx.createEntry(newEntry({ spiffeId: `${ID}/${i}-after-gate` }));
        }
        return i;
      };
      return Array.from({ length: 5 }, (_, i) => track(store.sharedTransaction(call(i))));
    }

    it('holds the write lock once for the batch, and answers no call before its COMMIT', async () => {
      const store = await open();
      const g = gate();
      const calls = pausedBatch(store, g);
      await g.reached;
      await lockHolder();
      // Calls 0 and 1 have run and their savepoints are released, yet neither is answered: nothing committed.
      assert.deepEqual(
        calls.map((c) => c.state()),
        ['pending', 'pending', 'pending', 'pending', 'pending'],
      );
      assert.deepEqual(await storedIds(), [], 'another connection sees none of the batch before its COMMIT');
      g.open();
      assert.deepEqual(await Promise.all(calls.map((c) => c.done)), [0, 1, 2, 3, 4]);
      assert.equal((await storedIds()).length, 6);
      assert.deepEqual(store.groupCommitStats(), { batches: 1, calls: 5 });
    });

    it('a connection that dies mid-batch fails every call of the batch and commits none of them', async () => {
      const store = await open();
      const g = gate();
      const calls = pausedBatch(store, g);
      await g.reached;
      const pid = await lockHolder();
      await cluster().query(place.database(), 'SELECT pg_terminate_backend($1)', [pid]);
      g.open();
      const outcomes = await Promise.all(calls.map((c) => c.done));
      assert.deepEqual(
        calls.map((c) => c.state()),
        ['rejected', 'rejected', 'rejected', 'rejected', 'rejected'],
        'no call of a batch that never committed is answered as a success',
      );
      for (const [i, e] of outcomes.entries()) {
        if (i === 2) continue; // the call that was running gets the error its own statement met
        assert.equal((e as LanyardError).code, ErrorCode.INTERNAL);
        assert.match((e as Error).message, /did not commit/);
      }
      assert.deepEqual(await storedIds(), []);
      // The broken connection was dropped: the store goes on, and a client's retry commits.
      assert.deepEqual(
        await Promise.all(
          [0, 1].map((i) =>
            store.sharedTransaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/${i}` }))),
          ),
        ).then((es) => es.map((e) => e.spiffeId)),
        [`${ID}/0`, `${ID}/1`],
      );
    });

    it('a COMMIT that fails fails every call of the batch and commits none of them', async () => {
      const store = await open();
      // Checked at COMMIT, not before: a deferred constraint trigger refusing one SPIFFE ID.
      await cluster().query(
        place.database(),
        `CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.spiffe_id LIKE '%/refused-at-commit' THEN RAISE EXCEPTION 'refused at commit'; END IF;
           RETURN NULL;
         END $$`,
      );
      await cluster().query(
        place.database(),
        `CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON entries DEFERRABLE INITIALLY DEFERRED
         FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()`,
      );
      const calls = ['0', '1', 'refused-at-commit', '3'].map((suffix) =>
        track(store.sharedTransaction((tx) => tx.createEntry(newEntry({ spiffeId: `${ID}/${suffix}` })))),
      );
      const outcomes = await Promise.all(calls.map((c) => c.done));
      assert.deepEqual(
        calls.map((c) => c.state()),
        ['rejected', 'rejected', 'rejected', 'rejected'],
      );
      for (const e of outcomes) {
        assert.equal((e as LanyardError).code, ErrorCode.INTERNAL);
        assert.match((e as Error).message, /did not commit \(refused at commit\)/);
      }
      assert.equal(store.groupCommitStats().batches, 1);
      assert.deepEqual(await storedIds(), []);
    });

    it('other servers hear the revocations of the calls that committed, after the COMMIT, and never a rolled-back one', async () => {
      const writer = await open('a');
      const listener = await open('b');
      const heard: number[] = [];
      let onHeard: () => void = () => undefined;
      listener.changes.onRevoked((sequences) => {
        heard.push(...sequences);
        onHeard();
      });
      await listener.changes.ready();
      heard.length = 0; // the "re-read, something may have been missed" signal on connecting
      const expiresAt = new Date(Date.now() + 3_600_000);
      const revoke = (tx: StoreOps, id: string) =>
        tx.addRevocation({ kind: 'session', id, reason: 'test', expiresAt }, new Date());
      const g = gate();
      const calls = [
        track(writer.sharedTransaction(async (tx) => (await revoke(tx, 's-0')).sequence)),
        track(
          writer.sharedTransaction(async (tx) => {
            await revoke(tx, 's-1');
            throw new InvalidArgumentError('rolled back');
          }),
        ),
        track(
          writer.sharedTransaction(async (tx) => {
            const r = await revoke(tx, 's-2');
            await g.wait();
            return r.sequence;
          }),
        ),
      ];
      await g.reached;
      // The batch is open: PostgreSQL holds its notifications until the COMMIT.
      await listener.getRevocation('session', 's-0');
      assert.equal(heard.length, 0, `heard ${heard.join()} before the COMMIT`);
      const all = new Promise<void>((resolve) => {
        onHeard = () => {
          if (heard.length >= 2) resolve();
        };
      });
      g.open();
      const [s0, , s2] = await Promise.all(calls.map((c) => c.done));
      assert.equal(calls[1]!.state(), 'rejected');
      await all;
      assert.deepEqual(heard, [s0, s2]);
      // Then a later revocation: notifications arrive in commit order, so had the rolled-back one been sent it
      // would be here before this one.
      const later = await writer.sharedTransaction(async (tx) => (await revoke(tx, 's-3')).sequence);
      await new Promise<void>((resolve) => {
        onHeard = () => {
          if (heard.includes(later)) resolve();
        };
        onHeard();
      });
      assert.deepEqual(heard, [s0, s2, later]);
      assert.equal(await listener.getRevocation('session', 's-1'), undefined);
    });

    it('survives a connection killed while a transaction holds it between statements', async () => {
      // pg-pool stops listening for a connection's errors while it is checked out; the 'error' the broken
      // connection then emits was an uncaught exception that ended the process.
      const store = await open();
      const g = gate();
      const tx = track(
        store.transaction(async (t) => {
          await t.createEntry(newEntry({ spiffeId: `${ID}/in-transaction` }));
          await g.wait();
          // Idle on the connection while it is killed, then used.
          await new Promise((r) => setTimeout(r, 200));
          return t.getEntry('x');
        }),
      );
      await g.reached;
      await cluster().query(place.database(), 'SELECT pg_terminate_backend($1)', [await lockHolder()]);
      g.open();
      await tx.done;
      assert.equal(tx.state(), 'rejected');
      assert.deepEqual(await storedIds(), []);
      assert.equal((await store.createEntry(newEntry({ spiffeId: `${ID}/after` }))).spiffeId, `${ID}/after`);
    });
  });
});
