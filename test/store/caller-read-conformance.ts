/**
 * Store.readCaller, held to one contract on every store: the records caller authentication judges (the serial's
 * revocation, the session and its ancestors with the revocations of the serials they hang on, the entry), exactly
 * as the single-record reads return them. Run on SQLite (./caller-read.test.ts) and PostgreSQL
 * (test/integration/postgres-store/caller-read.test.ts).
 */
import * as assert from 'node:assert/strict';
import type { Store } from '../../src/store/store';
import type { NewSession } from '../../src/store/types';
import { FakeClock } from '../support/clock';
import { newEntry, type MakeStoreHarness, type StoreHarness } from './conformance';

const TD = 'spiffe://lanyard.local';

export interface CallerReadStoreTraits {
  /**
   * Calls run in the order they were asked, awaited or not: SQLite's, whose one connection takes them in turn.
   * A PostgreSQL pool runs calls not awaited on several connections at once, so only an awaited write is
   * guaranteed to be seen by a later read there (which every case above checks).
   */
  ordersUnawaitedCalls?: boolean;
}

export function runCallerReadConformance(
  name: string,
  makeHarness: MakeStoreHarness,
  traits: CallerReadStoreTraits = {},
): void {
  describe(`Store.readCaller: ${name}`, () => {
    let harness: StoreHarness;
    let clock: FakeClock;
    let store: Store;

    beforeEach(async () => {
      harness = await makeHarness();
      clock = new FakeClock(new Date(Date.UTC(2030, 0, 1)));
      store = await harness.open({ clock: clock.read });
    });
    afterEach(async () => {
      await harness.destroy();
    });

    const session = (id: string, overrides: Partial<NewSession> = {}): NewSession => ({
      id,
      entryId: 'entry-1',
      spiffeId: `${TD}/agents/planner`,
      rootSessionId: 'root',
      principal: { id: 'alice', issuer: 'https://idp.example', provenance: 'verified' },
      intent: 'summarise tickets',
      scopes: ['tickets:read'],
      depth: 0,
      depthLimit: 5,
      expiresAt: new Date(clock.now.getTime() + 3600_000),
      openerSerial: `0a${id}`,
      ...overrides,
    });
    const revoke = (serial: string): Promise<unknown> =>
      store.addRevocation(
        {
          kind: 'certificate',
          id: serial,
          reason: 'test',
          expiresAt: new Date(clock.now.getTime() + 86_400_000),
        },
        clock.now,
      );
    /** root <- child <- grandchild, each delegated with the parent's SVID `0c<parent>`. */
    const storeChain = async (): Promise<void> => {
      await store.createSession(session('root'));
      await store.createSession(
        session('child', { parentSessionId: 'root', depth: 1, parentCertSerial: '0croot' }),
      );
      await store.createSession(
        session('grandchild', { parentSessionId: 'child', depth: 2, parentCertSerial: '0cchild' }),
      );
      await store.addSessionCertificate('child', 'c1', clock.now);
      await store.addSessionCertificate('child', 'c2', clock.now);
    };

    it("reads a workload SVID's records: its entry as getEntry returns it, no session, not revoked", async () => {
      const entry = await store.createEntry(
        newEntry({
          id: 'entry-1',
          selectors: [
            { type: 'unix', value: 'uid:1' },
            { type: 'k8s', value: 'a' },
          ],
        }),
      );
      const read = await store.readCaller({
        serialHex: '01ab',
        sessionId: 'workload:xyz',
        entryId: 'entry-1',
        maxAncestors: 64,
      });
      assert.equal(read.certificateRevoked, false);
      assert.deepEqual(read.sessions, []);
      assert.deepEqual([...read.revokedSessionSerials], []);
      assert.deepEqual(read.entry, entry);
      assert.deepEqual(read.entry, await store.getEntry('entry-1'));
    });

    it("reads an entry's selectors as getEntry does after they changed: the same set, in the same order", async () => {
      const created = await store.createEntry(
        newEntry({
          id: 'entry-1',
          selectors: [
            { type: 'unix', value: 'uid:1' },
            { type: 'k8s', value: 'ns:a' },
          ],
        }),
      );
      const query = { serialHex: '01', sessionId: 'workload:s', entryId: 'entry-1', maxAncestors: 64 };
      // Unsorted, with a duplicate, and values whose UTF-16 and UTF-8 orders differ (an astral character).
      const updated = await store.updateEntry(
        'entry-1',
        {
          selectors: [
            { type: 'k8s', value: 'ns:\u{1F600}' },
            { type: 'k8s', value: 'ns:\uFF21' },
            { type: 'docker', value: 'label:a' },
            { type: 'k8s', value: 'ns:\uFF21' },
          ],
        },
        created.revision,
      );
      const read = await store.readCaller(query);
      assert.deepEqual(read.entry, await store.getEntry('entry-1'));
      assert.deepEqual(read.entry?.selectors, updated.selectors);
      assert.deepEqual(
        read.entry?.selectors.map((s) => s.value),
        ['label:a', 'ns:\u{1F600}', 'ns:\uFF21'],
      );
    });

    it('reports a revoked serial, and an entry that was deleted as none', async () => {
      await store.createEntry(newEntry({ id: 'entry-1' }));
      await store.deleteEntry('entry-1');
      await revoke('01ab');
      const read = await store.readCaller({
        serialHex: '01ab',
        sessionId: 'workload:xyz',
        entryId: 'entry-1',
        maxAncestors: 64,
      });
      assert.equal(read.certificateRevoked, true);
      assert.equal(read.entry, undefined);
      // Another serial of the same prefix is not revoked: the lookup is exact.
      const other = await store.readCaller({ serialHex: '01a', entryId: 'entry-1', maxAncestors: 64 });
      assert.equal(other.certificateRevoked, false);
    });

    it('reads only the revocation for an SVID without an agent context', async () => {
      await store.createEntry(newEntry({ id: 'entry-1' }));
      await store.createSession(session('root'));
      await revoke('0aroot');
      const read = await store.readCaller({ serialHex: '0aroot', maxAncestors: 64 });
      assert.equal(read.certificateRevoked, true);
      assert.deepEqual(read.sessions, []);
      assert.equal(read.entry, undefined);
    });

    it('reads a session and its ancestors nearest first, as getSession returns each', async () => {
      await storeChain();
      const read = await store.readCaller({
        serialHex: '01',
        sessionId: 'grandchild',
        entryId: 'entry-1',
        maxAncestors: 64,
      });
      assert.deepEqual(read.sessions, [
        await store.getSession('grandchild'),
        await store.getSession('child'),
        await store.getSession('root'),
      ]);
      assert.deepEqual(read.sessions[1]!.certSerials, ['c1', 'c2']);
      assert.deepEqual([...read.revokedSessionSerials], []);
    });

    it('names exactly the revoked serials the chain hangs on, and sees an ended session as ended', async () => {
      await storeChain();
      await revoke('0aroot'); // root's opener
      await revoke('0cchild'); // grandchild's parent certificate
      await revoke('0aunrelated');
      await revoke('c1'); // a certificate of child's, not one the chain hangs on
      await store.endSessionTree('child', clock.now, 'done');
      const read = await store.readCaller({
        serialHex: '01',
        sessionId: 'grandchild',
        entryId: 'entry-1',
        maxAncestors: 64,
      });
      assert.deepEqual([...read.revokedSessionSerials].sort(), ['0aroot', '0cchild']);
      assert.deepEqual(
        read.sessions.map((s) => [s.id, s.endedAt !== undefined]),
        [
          ['grandchild', true],
          ['child', true],
          ['root', false],
        ],
      );
    });

    it('stops the ancestor walk after maxAncestors, and reads an unknown session as none', async () => {
      await storeChain();
      const bounded = await store.readCaller({ serialHex: '01', sessionId: 'grandchild', maxAncestors: 1 });
      assert.deepEqual(
        bounded.sessions.map((s) => s.id),
        ['grandchild', 'child'],
      );
      const unknown = await store.readCaller({ serialHex: '01', sessionId: 'nope', maxAncestors: 64 });
      assert.deepEqual(unknown.sessions, []);
    });
    it('reads asked together each answer their own query, as each alone does', async () => {
      await store.createEntry(newEntry({ id: 'entry-1' }));
      await store.createEntry(newEntry({ id: 'entry-2', spiffeId: `${TD}/agents/other` }));
      await storeChain();
      await revoke('0bad');
      await revoke('0croot');
      const queries = [
        { serialHex: '01', sessionId: 'workload:a', entryId: 'entry-1', maxAncestors: 64 },
        { serialHex: '0bad', sessionId: 'workload:b', entryId: 'entry-2', maxAncestors: 64 },
        { serialHex: '02', sessionId: 'workload:c', entryId: 'no-such-entry', maxAncestors: 64 },
        { serialHex: '03', sessionId: 'grandchild', entryId: 'entry-1', maxAncestors: 64 },
        { serialHex: '04', maxAncestors: 64 },
        { serialHex: '05', sessionId: 'child', entryId: 'entry-1', maxAncestors: 0 },
      ];
      const alone = [];
      for (const q of queries) alone.push(await store.readCaller(q));
      const together = await Promise.all(queries.map((q) => store.readCaller(q)));
      assert.deepEqual(together, alone);
      assert.deepEqual(
        together.map((r) => [r.certificateRevoked, r.entry?.id, r.sessions.length]),
        [
          [false, 'entry-1', 0],
          [true, 'entry-2', 0],
          [false, undefined, 0],
          [false, 'entry-1', 3],
          [false, undefined, 0],
          [false, 'entry-1', 1],
        ],
      );
    });

    if (traits.ordersUnawaitedCalls === true)
      it('a read sees the writes asked for before it, awaited or not, also with reads queued ahead of both', async () => {
        await store.createEntry(newEntry({ id: 'entry-1' }));
        const query = { serialHex: '0e', sessionId: 'workload:x', entryId: 'entry-1', maxAncestors: 64 };
        // A read queued first, then a revocation and a deletion not yet awaited, then the read that must see them.
        const ahead = store.readCaller(query);
        const revoked = revoke('0e');
        const deleted = store.deleteEntry('entry-1');
        const after = store.readCaller(query);
        const [first, second] = await Promise.all([ahead, after, revoked, deleted]);
        assert.equal(first.certificateRevoked, false);
        assert.equal(first.entry?.id, 'entry-1');
        assert.equal(second.certificateRevoked, true, 'the read ran before the revocation asked ahead of it');
        assert.equal(second.entry, undefined, 'the read ran before the deletion asked ahead of it');
      });
  });
}
