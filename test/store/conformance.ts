/**
 * The behaviour every Store must have, written once so the SQLite store and a later PostgreSQL store are
 * held to the same contract: `runStoreConformance('postgres', makePostgresHarness)`.
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ErrorCode, isLanyardError, RevisionConflictError } from '../../src/errors';
import { hashJoinToken } from '../../src/internal/join-token-secret';
import type { AuditCheckpoint } from '../../src/audit/checkpoint';
import type { Store } from '../../src/store/store';
import { FakeClock } from '../support/clock';
import { rejectsWithCode } from '../support/refusal';
import type {
  CaAuthorityRecord,
  Entry,
  NewEntry,
  NewGrant,
  NewSession,
  Selector,
} from '../../src/store/types';

/** One database that can be opened several times: each open() is a new connection to the same data. */
export interface StoreHarness {
  open(options?: { clock?: () => Date }): Promise<Store>;
  /** Closes what open() returned and deletes the data. */
  destroy(): Promise<void>;
}

export type MakeStoreHarness = () => Promise<StoreHarness>;

const TD = 'spiffe://lanyard.local';

export function newEntry(overrides: Partial<NewEntry> = {}): NewEntry {
  return {
    spiffeId: `${TD}/agents/planner`,
    selectors: [{ type: 'k8s', value: 'ns:agents' }],
    x509SvidTtlSeconds: 0,
    allowedScopes: [],
    maxDelegationDepth: 0,
    allowedDelegates: [],
    admin: false,
    dnsNames: [],
    canAssertPrincipal: false,
    ...overrides,
  };
}

export function runStoreConformance(name: string, makeHarness: MakeStoreHarness): void {
  describe(`Store conformance: ${name}`, () => {
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

    describe('entries', () => {
      it('creates an entry with a generated id, revision 1 and timestamps, and reads it back', async () => {
        const created = await store.createEntry(newEntry({ allowedScopes: ['tickets:read'], admin: true }));
        assert.match(created.id, /^[0-9a-f-]{36}$/);
        assert.equal(created.revision, 1);
        assert.deepEqual(created.createdAt, clock.now);
        assert.deepEqual(created.updatedAt, clock.now);
        assert.deepEqual(await store.getEntry(created.id), created);
      });

      it('keeps every field, including optional ones, exactly', async () => {
        const input = newEntry({
          id: 'entry-1',
          parentId: `${TD}/node/a`,
          selectors: [
            { type: 'unix', value: 'uid:1000' },
            { type: 'k8s', value: 'sa:planner' },
          ],
          x509SvidTtlSeconds: 600,
          allowedScopes: ['a:read', 'b:write'],
          maxDelegationDepth: 3,
          allowedDelegates: [`${TD}/agents/tool-runner`],
          admin: true,
          dnsNames: ['planner.internal'],
          expiresAt: new Date(Date.UTC(2031, 5, 1)),
          canAssertPrincipal: true,
        });
        const created = await store.createEntry(input);
        const { id: _id, ...fields } = input;
        assert.deepEqual(created, {
          ...fields,
          id: 'entry-1',
          // canonical order: by type, then value
          selectors: [
            { type: 'k8s', value: 'sa:planner' },
            { type: 'unix', value: 'uid:1000' },
          ],
          createdAt: clock.now,
          updatedAt: clock.now,
          revision: 1,
        });
        assert.deepEqual(await store.getEntry('entry-1'), created);
      });

      it('refuses a second entry with the same id', async () => {
        await store.createEntry(newEntry({ id: 'dup' }));
        await rejectsWithCode(
          store.createEntry(newEntry({ id: 'dup', spiffeId: `${TD}/other` })),
          ErrorCode.ALREADY_EXISTS,
        );
      });

      it('refuses the same SPIFFE ID with the same selector set, in any order', async () => {
        const selectors: Selector[] = [
          { type: 'k8s', value: 'ns:a' },
          { type: 'k8s', value: 'sa:b' },
        ];
        const first = await store.createEntry(newEntry({ selectors }));
        const err = await rejectsWithCode(
          store.createEntry(newEntry({ selectors: [...selectors].reverse() })),
          ErrorCode.ALREADY_EXISTS,
        );
        assert.match(err.message, new RegExp(first.id));
      });

      it('allows the same SPIFFE ID with other selectors or another parent', async () => {
        await store.createEntry(newEntry());
        await store.createEntry(newEntry({ selectors: [{ type: 'k8s', value: 'ns:other' }] }));
        await store.createEntry(newEntry({ parentId: `${TD}/node/a` }));
        const page = await store.listEntries({}, { pageSize: 10 });
        assert.equal(page.entries.length, 3);
      });

      it('reports a missing entry as NOT_FOUND', async () => {
        await rejectsWithCode(store.getEntry('nope'), ErrorCode.NOT_FOUND);
        await rejectsWithCode(store.updateEntry('nope', { admin: true }, 1), ErrorCode.NOT_FOUND);
        await rejectsWithCode(store.deleteEntry('nope'), ErrorCode.NOT_FOUND);
      });

      it('updates at the current revision: revision + 1, updatedAt moves, createdAt stays', async () => {
        const created = await store.createEntry(newEntry());
        clock.advance(1000);
        const updated = await store.updateEntry(created.id, { allowedScopes: ['x:y'], admin: true }, 1);
        assert.equal(updated.revision, 2);
        assert.deepEqual(updated.allowedScopes, ['x:y']);
        assert.equal(updated.admin, true);
        assert.deepEqual(updated.createdAt, created.createdAt);
        assert.deepEqual(updated.updatedAt, clock.now);
        assert.deepEqual(updated.selectors, created.selectors);
        assert.deepEqual(await store.getEntry(created.id), updated);
      });

      it('refuses an update at a stale revision and changes nothing', async () => {
        const created = await store.createEntry(newEntry());
        await store.updateEntry(created.id, { admin: true }, 1);
        const err = await rejectsWithCode(
          store.updateEntry(created.id, { maxDelegationDepth: 5 }, 1),
          ErrorCode.REVISION_CONFLICT,
        );
        assert.ok(err instanceof RevisionConflictError);
        assert.equal(err.currentRevision, 2);
        const now = await store.getEntry(created.id);
        assert.equal(now.maxDelegationDepth, 0);
        assert.equal(now.revision, 2);
      });

      it('replaces selectors on update and finds the entry by its new selectors only', async () => {
        const created = await store.createEntry(newEntry());
        const next = [{ type: 'unix', value: 'uid:1' }];
        await store.updateEntry(created.id, { selectors: next }, 1);
        const byNew = await store.listEntries(
          { selectors: { selectors: next, match: 'exact' } },
          { pageSize: 10 },
        );
        assert.deepEqual(
          byNew.entries.map((e) => e.id),
          [created.id],
        );
        const byOld = await store.listEntries(
          { selectors: { selectors: created.selectors, match: 'any' } },
          { pageSize: 10 },
        );
        assert.equal(byOld.entries.length, 0);
      });

      it('refuses an update that would duplicate another entry, and changes nothing', async () => {
        const a = await store.createEntry(newEntry());
        const b = await store.createEntry(newEntry({ selectors: [{ type: 'k8s', value: 'ns:b' }] }));
        await rejectsWithCode(
          store.updateEntry(b.id, { selectors: a.selectors }, 1),
          ErrorCode.ALREADY_EXISTS,
        );
        assert.deepEqual(await store.getEntry(b.id), b);
      });

      it('clears optional fields with null and leaves absent keys alone', async () => {
        const created = await store.createEntry(
          newEntry({ parentId: `${TD}/node/a`, expiresAt: new Date(Date.UTC(2031, 0, 1)) }),
        );
        const updated = await store.updateEntry(created.id, { parentId: null, expiresAt: null }, 1);
        assert.equal(updated.parentId, undefined);
        assert.equal(updated.expiresAt, undefined);
        assert.equal('parentId' in updated, false);
        assert.deepEqual(await store.getEntry(created.id), updated);
      });

      it('deletes, optionally only at a given revision', async () => {
        const a = await store.createEntry(newEntry());
        await rejectsWithCode(store.deleteEntry(a.id, 7), ErrorCode.REVISION_CONFLICT);
        await store.getEntry(a.id);
        await store.deleteEntry(a.id, 1);
        await rejectsWithCode(store.getEntry(a.id), ErrorCode.NOT_FOUND);
        const b = await store.createEntry(newEntry());
        await store.deleteEntry(b.id);
        await rejectsWithCode(store.getEntry(b.id), ErrorCode.NOT_FOUND);
      });

      it('returns copies: changing a returned entry does not change the stored one', async () => {
        const input = newEntry({ allowedScopes: ['a'] });
        const created = await store.createEntry(input);
        input.allowedScopes.push('b');
        created.allowedScopes.push('c');
        assert.deepEqual((await store.getEntry(created.id)).allowedScopes, ['a']);
      });
    });

    describe('listing entries', () => {
      const k8s = (value: string): Selector => ({ type: 'k8s', value });
      let e1: Entry, e2: Entry, e3: Entry, e4: Entry;

      beforeEach(async () => {
        e1 = await store.createEntry(newEntry({ spiffeId: `${TD}/agents/a`, selectors: [k8s('ns:x')] }));
        e2 = await store.createEntry(
          newEntry({ spiffeId: `${TD}/agents/b`, selectors: [k8s('ns:x'), k8s('sa:b')] }),
        );
        e3 = await store.createEntry(
          newEntry({ spiffeId: `${TD}/tools/c`, selectors: [k8s('ns:y')], parentId: `${TD}/node/1` }),
        );
        e4 = await store.createEntry(
          newEntry({
            spiffeId: `${TD}/agents_d`,
            selectors: [k8s('sa:b')],
            expiresAt: new Date(clock.now.getTime() + 1000),
          }),
        );
      });

      const ids = (entries: Entry[]): string[] => entries.map((e) => e.id);
      const list = async (filter: Parameters<Store['listEntries']>[0]): Promise<string[]> =>
        ids((await store.listEntries(filter, { pageSize: 100 })).entries);

      it('lists everything ordered by SPIFFE ID', async () => {
        assert.deepEqual(await list({}), ids([e1, e2, e4, e3]));
      });

      it('filters by SPIFFE ID prefix, treating % and _ literally', async () => {
        assert.deepEqual(await list({ spiffeIdPrefix: `${TD}/agents/` }), ids([e1, e2]));
        assert.deepEqual(await list({ spiffeIdPrefix: `${TD}/agents_` }), ids([e4]));
        assert.deepEqual(await list({ spiffeIdPrefix: `${TD}/agents%` }), []);
      });

      it('filters by parent ID', async () => {
        assert.deepEqual(await list({ parentId: `${TD}/node/1` }), ids([e3]));
      });

      it('filters by exact SPIFFE ID, not by IDs it prefixes', async () => {
        const twin = await store.createEntry(
          newEntry({ spiffeId: `${TD}/agents/a`, selectors: [k8s('ns:other')], parentId: `${TD}/node/1` }),
        );
        await store.createEntry(newEntry({ spiffeId: `${TD}/agents/a/sub`, selectors: [k8s('ns:x')] }));
        await store.createEntry(newEntry({ spiffeId: `${TD}/agents/ab`, selectors: [k8s('ns:x')] }));
        const [first, second] = [e1, twin].sort((a, b) => (a.id < b.id ? -1 : 1));
        assert.deepEqual(await list({ spiffeId: `${TD}/agents/a` }), ids([first!, second!]));
        assert.deepEqual(await list({ spiffeId: `${TD}/agents/a`, parentId: '' }), ids([e1]));
        assert.deepEqual(await list({ spiffeId: `${TD}/agents` }), []);
      });

      it('bounds a prefix exactly, also next to the last code points of the range', async () => {
        // The store reads the prefix as a range [prefix, successor): the neighbours of both ends must be judged
        // by the prefix, whatever their code points (ASCII, beyond the BMP, the largest ones).
        const made: Record<string, Entry> = {};
        for (const suffix of ['', '~', '\u007f', '\u00e9', '\uffff', '\u{10000}', '\u{10ffff}', 'a', 'b']) {
          const e = await store.createEntry(
            newEntry({ spiffeId: `${TD}/p/x${suffix}`, selectors: [k8s(`s:${suffix}`)] }),
          );
          made[suffix] = e;
        }
        const y = await store.createEntry(newEntry({ spiffeId: `${TD}/p/y`, selectors: [k8s('s:y')] }));
        const w = await store.createEntry(
          newEntry({ spiffeId: `${TD}/p/w\u{10ffff}`, selectors: [k8s('s:w')] }),
        );
        const inX = Object.values(made).map((e) => e.id);
        assert.deepEqual((await list({ spiffeIdPrefix: `${TD}/p/x` })).sort(), [...inX].sort());
        assert.deepEqual(await list({ spiffeIdPrefix: `${TD}/p/x\u{10ffff}` }), [made['\u{10ffff}']!.id]);
        assert.deepEqual(await list({ spiffeIdPrefix: `${TD}/p/x~` }), [made['~']!.id]);
        assert.deepEqual(await list({ spiffeIdPrefix: `${TD}/p/w` }), [w.id]);
        assert.deepEqual(await list({ spiffeIdPrefix: `${TD}/p/y` }), [y.id]);
        // Paged through the range: every entry once, in order.
        const seen: string[] = [];
        let pageToken = '';
        do {
          const page = await store.listEntries({ spiffeIdPrefix: `${TD}/p/x` }, { pageSize: 2, pageToken });
          seen.push(...ids(page.entries));
          pageToken = page.nextPageToken;
        } while (pageToken !== '');
        assert.deepEqual(seen, await list({ spiffeIdPrefix: `${TD}/p/x` }));
      });

      it("lists a parent's entries in order across pages", async () => {
        const under: Entry[] = [e3];
        for (let i = 0; i < 5; i++) {
          under.push(
            await store.createEntry(
              newEntry({
                spiffeId: `${TD}/n/${4 - i}`,
                selectors: [k8s(`p:${i}`)],
                parentId: `${TD}/node/1`,
              }),
            ),
          );
        }
        await store.createEntry(
          newEntry({ spiffeId: `${TD}/n/9`, selectors: [k8s('p:9')], parentId: `${TD}/node/2` }),
        );
        const expected = ids(
          under.sort((a, b) => (a.spiffeId < b.spiffeId ? -1 : a.spiffeId > b.spiffeId ? 1 : 0)),
        );
        const seen: string[] = [];
        let pageToken = '';
        do {
          const page = await store.listEntries({ parentId: `${TD}/node/1` }, { pageSize: 2, pageToken });
          seen.push(...ids(page.entries));
          pageToken = page.nextPageToken;
        } while (pageToken !== '');
        assert.deepEqual(seen, expected);
      });

      it('returns each listed entry with exactly its own selectors, in canonical order, on every page', async () => {
        const many = [k8s('z:1'), { type: 'unix', value: 'uid:1' }, k8s('a:1'), k8s('m:1')];
        const big = await store.createEntry(newEntry({ spiffeId: `${TD}/agents/big`, selectors: many }));
        const byId = new Map<string, Entry>();
        let pageToken = '';
        do {
          const page = await store.listEntries({}, { pageSize: 2, pageToken });
          for (const e of page.entries) byId.set(e.id, e);
          pageToken = page.nextPageToken;
        } while (pageToken !== '');
        for (const e of [e1, e2, e3, e4, big]) {
          assert.deepEqual(byId.get(e.id)?.selectors, (await store.getEntry(e.id)).selectors);
        }
        assert.deepEqual(byId.get(big.id)?.selectors, [
          k8s('a:1'),
          k8s('m:1'),
          k8s('z:1'),
          { type: 'unix', value: 'uid:1' },
        ]);
      });

      it('matches an empty selector filter as the set semantics say: superset of all, subset and any of none', async () => {
        const none = (match: 'subset' | 'superset' | 'any' | 'exact') => ({
          selectors: { selectors: [], match },
        });
        assert.deepEqual(await list(none('superset')), await list({}));
        assert.deepEqual(await list(none('subset')), []);
        assert.deepEqual(await list(none('any')), []);
        assert.deepEqual(await list(none('exact')), []);
      });

      it('matches subset candidates through a selector many entries share', async () => {
        // Ten entries share ns:shared; only those whose every selector was attested match.
        const made: Entry[] = [];
        for (let i = 0; i < 10; i++) {
          made.push(
            await store.createEntry(
              newEntry({ spiffeId: `${TD}/s/${i}`, selectors: [k8s('ns:shared'), k8s(`pod:${i}`)] }),
            ),
          );
        }
        const only = await store.createEntry(
          newEntry({ spiffeId: `${TD}/s/only`, selectors: [k8s('ns:shared')] }),
        );
        assert.deepEqual(
          await list({ selectors: { selectors: [k8s('ns:shared'), k8s('pod:3')], match: 'subset' } }),
          ids([made[3]!, only]),
        );
      });

      it('filters out expired entries when asked', async () => {
        clock.advance(2000);
        assert.deepEqual(await list({ notExpiredAt: clock.now }), ids([e1, e2, e3]));
      });

      it('matches selectors exactly, as subset, as superset and by any', async () => {
        const sel = (match: 'exact' | 'subset' | 'superset' | 'any', ...s: Selector[]) => ({
          selectors: { selectors: s, match },
        });
        assert.deepEqual(await list(sel('exact', k8s('ns:x'))), ids([e1]));
        assert.deepEqual(await list(sel('exact', k8s('sa:b'), k8s('ns:x'))), ids([e2]));
        // subset: the entries a workload attested with exactly these selectors matches
        assert.deepEqual(await list(sel('subset', k8s('ns:x'), k8s('sa:b'))), ids([e1, e2, e4]));
        assert.deepEqual(await list(sel('subset', k8s('ns:x'))), ids([e1]));
        assert.deepEqual(await list(sel('superset', k8s('ns:x'))), ids([e1, e2]));
        assert.deepEqual(await list(sel('superset', k8s('ns:x'), k8s('sa:b'))), ids([e2]));
        assert.deepEqual(await list(sel('any', k8s('sa:b'), k8s('ns:y'))), ids([e2, e4, e3]));
        assert.deepEqual(await list(sel('any', k8s('nothing'))), []);
      });

      it('never matches an entry without selectors (join-token only), whatever the filter', async () => {
        const bare = await store.createEntry(newEntry({ spiffeId: `${TD}/agents/bare`, selectors: [] }));
        assert.deepEqual((await store.getEntry(bare.id)).selectors, []);
        for (const match of ['exact', 'subset', 'superset', 'any'] as const) {
          for (const s of [[k8s('ns:x')], [k8s('ns:x'), k8s('sa:b'), k8s('ns:y')]]) {
            const found = await list({ selectors: { selectors: s, match } });
            assert.ok(
              !found.includes(bare.id),
              `${match} ${JSON.stringify(s)} matched the selector-less entry`,
            );
          }
        }
        assert.ok((await list({})).includes(bare.id), 'listed without a selector filter');
      });

      it('combines filters with AND', async () => {
        assert.deepEqual(
          await list({
            spiffeIdPrefix: `${TD}/agents/`,
            selectors: { selectors: [k8s('sa:b')], match: 'superset' },
          }),
          ids([e2]),
        );
      });

      it('paginates: every entry exactly once, in order, and an empty token on the last page', async () => {
        for (let i = 0; i < 7; i++) {
          await store.createEntry(newEntry({ spiffeId: `${TD}/agents/a`, selectors: [k8s(`pod:${i}`)] }));
        }
        const all = await list({});
        const seen: string[] = [];
        let token = '';
        let pages = 0;
        do {
          const page = await store.listEntries({}, { pageSize: 3, pageToken: token });
          assert.ok(page.entries.length <= 3);
          seen.push(...ids(page.entries));
          token = page.nextPageToken;
          pages++;
        } while (token !== '');
        assert.deepEqual(seen, all);
        assert.equal(pages, Math.ceil(all.length / 3));
      });

      it('continues correctly when entries change between pages', async () => {
        const first = await store.listEntries({}, { pageSize: 2 });
        await store.deleteEntry(e1.id);
        await store.createEntry(newEntry({ spiffeId: `${TD}/zzz` }));
        const rest = await store.listEntries({}, { pageSize: 100, pageToken: first.nextPageToken });
        assert.deepEqual(ids(first.entries), ids([e1, e2]));
        assert.deepEqual(ids(rest.entries).slice(0, 2), ids([e4, e3]));
      });

      it('refuses a malformed page token and a non-positive page size', async () => {
        await rejectsWithCode(
          store.listEntries({}, { pageSize: 10, pageToken: 'garbage!' }),
          ErrorCode.INVALID_ARGUMENT,
        );
        await rejectsWithCode(store.listEntries({}, { pageSize: 0 }), ErrorCode.INVALID_ARGUMENT);
      });
    });

    describe('join tokens', () => {
      const expiresIn = (ms: number): Date => new Date(clock.now.getTime() + ms);
      const newToken = (secret: string, ms = 60_000) => ({
        id: `jt-${secret}`,
        tokenHash: hashJoinToken(secret),
        entryId: 'e-1',
        spiffeId: `${TD}/agents/a`,
        expiresAt: expiresIn(ms),
      });

      it('consumes a token once: the second use is ERR_TOKEN_SPENT', async () => {
        const created = await store.createJoinToken(newToken('s1'));
        assert.equal(created.spentAt, undefined);
        const used = await store.consumeJoinToken(hashJoinToken('s1'), clock.now);
        assert.equal(used.spiffeId, `${TD}/agents/a`);
        assert.equal(used.entryId, 'e-1', 'the token names the entry it was created for');
        assert.deepEqual(used.spentAt, clock.now);
        await rejectsWithCode(store.consumeJoinToken(hashJoinToken('s1'), clock.now), ErrorCode.TOKEN_SPENT);
      });

      it('refuses an unknown token and an expired one', async () => {
        await rejectsWithCode(
          store.consumeJoinToken(hashJoinToken('never'), clock.now),
          ErrorCode.TOKEN_INVALID,
        );
        await store.createJoinToken(newToken('s2', 1000));
        clock.advance(1000);
        await rejectsWithCode(
          store.consumeJoinToken(hashJoinToken('s2'), clock.now),
          ErrorCode.TOKEN_EXPIRED,
        );
      });

      it('never puts the token in an error message', async () => {
        const secret = randomBytes(16).toString('hex');
        const err = await rejectsWithCode(
          store.consumeJoinToken(hashJoinToken(secret), clock.now),
          ErrorCode.TOKEN_INVALID,
        );
        assert.ok(!err.message.includes(secret));
      });

      it('lets exactly one of many concurrent consumers win', async () => {
        await store.createJoinToken(newToken('race'));
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, () => store.consumeJoinToken(hashJoinToken('race'), clock.now)),
        );
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      });

      it('lets exactly one consumer win across separate connections', async () => {
        await store.createJoinToken(newToken('race2'));
        const other = await harness.open({ clock: clock.read });
        const results = await Promise.allSettled([
          store.consumeJoinToken(hashJoinToken('race2'), clock.now),
          other.consumeJoinToken(hashJoinToken('race2'), clock.now),
          store.consumeJoinToken(hashJoinToken('race2'), clock.now),
          other.consumeJoinToken(hashJoinToken('race2'), clock.now),
        ]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
        for (const r of results) {
          if (r.status === 'rejected')
            assert.equal((r.reason as { code: string }).code, ErrorCode.TOKEN_SPENT);
        }
      });

      it('refuses a second token with the same hash', async () => {
        await store.createJoinToken(newToken('same'));
        await rejectsWithCode(
          store.createJoinToken({ ...newToken('same'), id: 'another-id' }),
          ErrorCode.ALREADY_EXISTS,
        );
      });

      it('prunes only tokens that expired before the given instant', async () => {
        await store.createJoinToken(newToken('short', 1000));
        await store.createJoinToken(newToken('long', 100_000));
        clock.advance(5000);
        assert.equal(await store.pruneJoinTokens(clock.now), 1);
        await rejectsWithCode(
          store.consumeJoinToken(hashJoinToken('short'), clock.now),
          ErrorCode.TOKEN_INVALID,
        );
        await store.consumeJoinToken(hashJoinToken('long'), clock.now);
      });
    });

    describe('CA state', () => {
      const authority = (id: string, status: CaAuthorityRecord['status']): CaAuthorityRecord => ({
        id,
        status,
        certDer: randomBytes(64),
        upstreamChainDer: [randomBytes(32)],
        keyRef: `disk:${id}`,
        notBefore: clock.now,
        notAfter: new Date(clock.now.getTime() + 86_400_000),
        createdAt: clock.now,
      });

      it('puts, replaces, lists, gets and deletes CA authorities', async () => {
        const a = authority('a', 'active');
        await store.putCaAuthority(a);
        clock.advance(1);
        const b = authority('b', 'prepared');
        await store.putCaAuthority(b);
        assert.deepEqual(await store.listCaAuthorities(), [a, b]);
        const retired = { ...a, status: 'retired' as const };
        await store.putCaAuthority(retired);
        const activated = { ...b, status: 'active' as const, activatedAt: clock.now };
        await store.putCaAuthority(activated);
        assert.deepEqual(await store.getCaAuthority('b'), activated);
        await store.deleteCaAuthority('a');
        assert.deepEqual(await store.listCaAuthorities(), [activated]);
        await rejectsWithCode(store.getCaAuthority('a'), ErrorCode.NOT_FOUND);
        await rejectsWithCode(store.deleteCaAuthority('a'), ErrorCode.NOT_FOUND);
      });

      it('refuses a second active authority', async () => {
        await store.putCaAuthority(authority('a', 'active'));
        await rejectsWithCode(store.putCaAuthority(authority('b', 'active')), ErrorCode.ALREADY_EXISTS);
        assert.equal((await store.listCaAuthorities()).length, 1);
      });

      it('increments the bundle sequence on every change', async () => {
        assert.equal(await store.getBundle('lanyard.local'), undefined);
        const roots = [randomBytes(40)];
        const first = await store.setBundle('lanyard.local', {
          x509AuthoritiesDer: roots,
          refreshHintSeconds: 300,
        });
        assert.equal(first.sequence, 1);
        const second = await store.setBundle('lanyard.local', {
          x509AuthoritiesDer: [...roots, randomBytes(40)],
          refreshHintSeconds: 300,
        });
        assert.equal(second.sequence, 2);
        assert.deepEqual(await store.getBundle('lanyard.local'), second);
        assert.equal(await store.getBundle('other.td'), undefined);
      });
    });

    describe('transactions', () => {
      it('commits every write of the callback together', async () => {
        const ids = await store.transaction(async (tx) => {
          const a = await tx.createEntry(newEntry({ spiffeId: `${TD}/a` }));
          const b = await tx.createEntry(newEntry({ spiffeId: `${TD}/b` }));
          return [a.id, b.id];
        });
        for (const id of ids) await store.getEntry(id);
      });

      it('leaves nothing behind when the callback throws', async () => {
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.createEntry(newEntry({ id: 'tx-a', spiffeId: `${TD}/a` }));
            await tx.createJoinToken({
              id: 'tx-token',
              tokenHash: hashJoinToken('tx'),
              entryId: 'e-1',
              spiffeId: `${TD}/a`,
              expiresAt: new Date(clock.now.getTime() + 60_000),
            });
            await tx.setBundle('lanyard.local', {
              x509AuthoritiesDer: [randomBytes(8)],
              refreshHintSeconds: 1,
            });
            throw new Error('boom');
          }),
          /boom/,
        );
        await rejectsWithCode(store.getEntry('tx-a'), ErrorCode.NOT_FOUND);
        await rejectsWithCode(
          store.consumeJoinToken(hashJoinToken('tx'), clock.now),
          ErrorCode.TOKEN_INVALID,
        );
        assert.equal(await store.getBundle('lanyard.local'), undefined);
      });

      it('rolls back a batch when its last write fails on a constraint', async () => {
        await store.createEntry(newEntry({ id: 'existing', spiffeId: `${TD}/x` }));
        await rejectsWithCode(
          store.transaction(async (tx) => {
            await tx.createEntry(newEntry({ id: 'batch-1', spiffeId: `${TD}/b1` }));
            await tx.createEntry(newEntry({ id: 'existing', spiffeId: `${TD}/b2` }));
          }),
          ErrorCode.ALREADY_EXISTS,
        );
        await rejectsWithCode(store.getEntry('batch-1'), ErrorCode.NOT_FOUND);
      });

      it('keeps a caught failure inside the transaction from undoing earlier writes', async () => {
        await store.createEntry(newEntry({ id: 'existing', spiffeId: `${TD}/x` }));
        await store.transaction(async (tx) => {
          await tx.createEntry(newEntry({ id: 'kept', spiffeId: `${TD}/k` }));
          await rejectsWithCode(tx.createEntry(newEntry({ id: 'existing' })), ErrorCode.ALREADY_EXISTS);
        });
        await store.getEntry('kept');
      });

      it('refuses to be called from inside its own transaction instead of hanging', async () => {
        await assert.rejects(
          store.transaction(async () => {
            const inner = store.getEntry('x');
            assert.ok(inner instanceof Promise, 'rejects rather than throwing synchronously');
            await inner;
          }),
          (e: unknown) => isLanyardError(e) && e.code === ErrorCode.INTERNAL,
        );
      });

      it('refuses the transaction handle after the transaction ended', async () => {
        const leaked = await store.transaction(async (tx) => tx);
        await rejectsWithCode(leaked.getEntry('x'), ErrorCode.INTERNAL);
      });

      it('isolates: calls from outside wait for the transaction and see only committed state', async () => {
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        let entered!: () => void;
        const inside = new Promise<void>((r) => (entered = r));
        const tx = store.transaction(async (t) => {
          await t.createEntry(newEntry({ id: 'slow', spiffeId: `${TD}/slow` }));
          entered();
          await gate;
          throw new Error('abort');
        });
        await inside;
        const outside = store.getEntry('slow');
        release();
        await assert.rejects(tx, /abort/);
        await rejectsWithCode(outside, ErrorCode.NOT_FOUND);
      });
    });

    describe('sessions, grants, revocations', () => {
      const session = (id: string, overrides: Partial<NewSession> = {}): NewSession => ({
        id,
        entryId: 'entry-1',
        spiffeId: `${TD}/agents/planner`,
        rootSessionId: overrides.parentSessionId === undefined ? id : 'root',
        principal: { id: 'alice', issuer: 'https://idp.example', provenance: 'verified' },
        intent: 'summarise tickets',
        scopes: ['tickets:read'],
        depth: 0,
        depthLimit: 2,
        expiresAt: new Date(clock.now.getTime() + 3600_000),
        ...overrides,
      });
      const grant = (id: string, overrides: Partial<NewGrant> = {}): NewGrant => ({
        id,
        parentSessionId: 'root',
        childSpiffeId: `${TD}/agents/tool-runner`,
        scopes: ['tickets:read'],
        notAfter: new Date(clock.now.getTime() + 1800_000),
        redeemBy: new Date(clock.now.getTime() + 60_000),
        bindingDer: randomBytes(40),
        signature: randomBytes(64),
        parentCertDer: randomBytes(300),
        ...overrides,
      });

      it('creates a root session and reads it back with its certificate serials in issuance order', async () => {
        const created = await store.createSession(session('root'));
        assert.deepEqual(created.createdAt, clock.now);
        assert.equal(created.parentSessionId, undefined);
        assert.equal(created.endedAt, undefined);
        assert.deepEqual(created.certSerials, []);
        await store.addSessionCertificate('root', 'b1', clock.now);
        await store.addSessionCertificate('root', 'a2', clock.now);
        await store.addSessionCertificate('root', 'b1', clock.now);
        const read = await store.getSession('root');
        assert.deepEqual(read.certSerials, ['b1', 'a2']);
        assert.deepEqual(read.principal, {
          id: 'alice',
          issuer: 'https://idp.example',
          provenance: 'verified',
        });
        await rejectsWithCode(store.createSession(session('root')), ErrorCode.ALREADY_EXISTS);
        await rejectsWithCode(store.getSession('nope'), ErrorCode.NOT_FOUND);
        await rejectsWithCode(store.addSessionCertificate('nope', '1', clock.now), ErrorCode.NOT_FOUND);
      });

      it('refuses a delegated session whose parent does not exist', async () => {
        await rejectsWithCode(
          store.createSession(session('child', { parentSessionId: 'missing', depth: 1 })),
          ErrorCode.ALREADY_EXISTS,
        );
      });

      it('ends a session tree transitively, once, with one revocation per session and growing sequences', async () => {
        await store.createSession(session('root'));
        await store.createSession(session('a', { parentSessionId: 'root', depth: 1 }));
        await store.createSession(session('a1', { parentSessionId: 'a', depth: 2 }));
        await store.createSession(session('b', { parentSessionId: 'root', depth: 1 }));
        await store.createSession(session('other'));
        const { ended, revocations } = await store.endSessionTree('a', clock.now, 'task done');
        assert.deepEqual(
          ended.map((s) => s.id),
          ['a', 'a1'],
        );
        assert.ok(
          ended.every((s) => s.endedAt?.getTime() === clock.now.getTime() && s.endReason === 'task done'),
        );
        assert.deepEqual(
          revocations.map((r) => [r.kind, r.id, r.sequence]),
          [
            ['session', 'a', 1],
            ['session', 'a1', 2],
          ],
        );
        assert.equal((await store.getSession('b')).endedAt, undefined);
        clock.advance(1000);
        const all = await store.endSessionTree('root', clock.now, 'user logged out');
        assert.deepEqual(
          all.ended.map((s) => s.id),
          ['root', 'b'],
        );
        assert.equal((await store.getSession('a')).endReason, 'task done');
        assert.deepEqual(
          (await store.listRevocations(0)).map((r) => r.id),
          ['a', 'a1', 'root', 'b'],
        );
        assert.deepEqual(
          (await store.listRevocations(2)).map((r) => r.id),
          ['root', 'b'],
        );
        assert.equal((await store.getSession('other')).endedAt, undefined);
        await rejectsWithCode(store.endSessionTree('nope', clock.now, ''), ErrorCode.NOT_FOUND);
      });

      it('stores a grant single use: a second redemption is a replay, an unknown grant is not found', async () => {
        await store.createSession(session('root'));
        const g = await store.createGrant(grant('g1'));
        assert.equal(g.redeemedAt, undefined);
        await rejectsWithCode(store.createGrant(grant('g1')), ErrorCode.ALREADY_EXISTS);
        await rejectsWithCode(
          store.createGrant(grant('g2', { parentSessionId: 'nope' })),
          ErrorCode.ALREADY_EXISTS,
        );
        const redeemed = await store.markGrantRedeemed('g1', clock.now, 'child-session');
        assert.deepEqual(redeemed.redeemedAt, clock.now);
        assert.equal(redeemed.redeemedSessionId, 'child-session');
        assert.deepEqual(redeemed.bindingDer, g.bindingDer);
        await rejectsWithCode(store.markGrantRedeemed('g1', clock.now, 'again'), ErrorCode.GRANT_REPLAYED);
        await rejectsWithCode(store.markGrantRedeemed('nope', clock.now, 'x'), ErrorCode.GRANT_NOT_FOUND);
        await rejectsWithCode(store.getGrant('nope'), ErrorCode.GRANT_NOT_FOUND);
      });

      it("keeps a grant's depth bound through redemption: 0 is a bound, absent is none", async () => {
        await store.createSession(session('root'));
        await store.createGrant(grant('leaf', { maxDepth: 0 }));
        await store.createGrant(grant('two', { maxDepth: 2 }));
        await store.createGrant(grant('free'));
        assert.equal((await store.getGrant('leaf')).maxDepth, 0);
        assert.equal((await store.getGrant('two')).maxDepth, 2);
        assert.equal('maxDepth' in (await store.getGrant('free')), false);
        const redeemed = await store.markGrantRedeemed('leaf', clock.now, 'child-session');
        assert.equal(redeemed.maxDepth, 0);
        // The column refuses what no CreateGrant may store: nothing of the row is written.
        await assert.rejects(store.createGrant(grant('negative', { maxDepth: -1 })));
        await rejectsWithCode(store.getGrant('negative'), ErrorCode.GRANT_NOT_FOUND);
      });

      it('records revocations idempotently; pruning keeps the sequence growing', async () => {
        const first = await store.addRevocation(
          { kind: 'certificate', id: 'abc', reason: 'key leaked', expiresAt: clock.now },
          clock.now,
        );
        assert.equal(first.sequence, 1);
        const again = await store.addRevocation(
          { kind: 'certificate', id: 'abc', reason: 'twice', expiresAt: clock.now },
          clock.now,
        );
        assert.deepEqual(again, first);
        assert.deepEqual(await store.getRevocation('certificate', 'abc'), first);
        assert.equal(await store.getRevocation('session', 'abc'), undefined);
        assert.equal(await store.lastRevocationSequence(), 1);
        clock.advance(1000);
        assert.equal(await store.pruneRevocations(clock.now), 1);
        assert.deepEqual(await store.listRevocations(0), []);
        assert.equal(await store.lastRevocationSequence(), 1);
        const next = await store.addRevocation(
          { kind: 'certificate', id: 'def', reason: '', expiresAt: clock.now },
          clock.now,
        );
        assert.equal(next.sequence, 2);
      });

      it('prunes only expired revocations; the sequence never goes back, also after reopening', async () => {
        const at = (ms: number): Date => new Date(clock.now.getTime() + ms);
        await store.addRevocation(
          { kind: 'certificate', id: 'a1', reason: '', expiresAt: at(1000) },
          clock.now,
        );
        await store.addRevocation(
          { kind: 'certificate', id: 'b2', reason: '', expiresAt: at(5000) },
          clock.now,
        );
        await store.createSession(session('s', { expiresAt: at(9000) }));
        await store.endSessionTree('s', clock.now, 'done');
        clock.advance(2000);
        assert.equal(await store.pruneRevocations(clock.now), 1);
        assert.deepEqual(
          (await store.listRevocations(0)).map((r) => [r.sequence, r.id]),
          [
            [2, 'b2'],
            [3, 's'],
          ],
        );
        // Nothing at or before the instant's own expiry is dropped: "before" is strict.
        assert.equal(await store.pruneRevocations(at(3000)), 0);
        clock.advance(10_000);
        assert.equal(await store.pruneRevocations(clock.now), 2);
        assert.deepEqual(await store.listRevocations(0), []);
        assert.equal(await store.lastRevocationSequence(), 3);
        await store.close();
        store = await harness.open({ clock: clock.read });
        assert.equal(await store.lastRevocationSequence(), 3);
        const next = await store.addRevocation(
          { kind: 'certificate', id: 'a1', reason: 'again', expiresAt: at(1000) },
          clock.now,
        );
        assert.equal(next.sequence, 4);
      });

      it('lists the serials a CRL needs: revoked certificates and the certificates of ended sessions', async () => {
        const at = (ms: number): Date => new Date(clock.now.getTime() + ms);
        const t0 = clock.now;
        await store.createSession(session('root', { expiresAt: at(9000) }));
        await store.createSession(
          session('child', { parentSessionId: 'root', depth: 1, expiresAt: at(9000) }),
        );
        await store.createSession(session('live'));
        await store.addSessionCertificate('root', 'a1', at(2000));
        await store.addSessionCertificate('root', 'a2', at(8000));
        await store.addSessionCertificate('child', 'c1', at(8000));
        await store.addSessionCertificate('live', 'ff', at(8000));
        await store.addRevocation({ kind: 'certificate', id: 'c1', reason: '', expiresAt: at(5000) }, t0);
        await store.addRevocation({ kind: 'certificate', id: 'dd', reason: '', expiresAt: at(5000) }, t0);
        assert.deepEqual(
          (await store.listRevokedSerials(clock.now)).map((r) => r.serialHex),
          ['c1', 'dd'],
        );
        clock.advance(1000);
        await store.endSessionTree('root', clock.now, 'done');
        const listed = await store.listRevokedSerials(clock.now);
        assert.deepEqual(
          listed.map((r) => [r.serialHex, r.revokedAt.getTime() - t0.getTime()]),
          [
            ['a1', 1000],
            ['a2', 1000],
            ['c1', 0],
            ['dd', 0],
          ],
        );
        // An expired certificate leaves the list even while its session's revocation is kept.
        clock.advance(2000);
        assert.deepEqual(
          (await store.listRevokedSerials(clock.now)).map((r) => r.serialHex),
          ['a2', 'c1', 'dd'],
        );
        clock.advance(3000);
        assert.deepEqual(
          (await store.listRevokedSerials(clock.now)).map((r) => r.serialHex),
          ['a2', 'c1'],
        );
      });

      it('stores the reason of a cascade once: the descendants name the first revocation as their cause', async () => {
        await store.createSession(session('root'));
        await store.createSession(session('a', { parentSessionId: 'root', depth: 1 }));
        await store.createSession(session('a1', { parentSessionId: 'a', depth: 2 }));
        const { revocations } = await store.endSessionTree('root', clock.now, 'r'.repeat(256));
        assert.deepEqual(
          revocations.map((r) => [r.id, r.reason.length, r.causeSequence]),
          [
            ['root', 256, undefined],
            ['a', 0, revocations[0]!.sequence],
            ['a1', 0, revocations[0]!.sequence],
          ],
        );
        assert.deepEqual(await store.listRevocations(0), revocations);
        assert.deepEqual(await store.getRevocation('session', 'a1'), revocations[2]);
      });

      it('lists revocations in pages by sequence', async () => {
        for (const id of ['c1', 'c2', 'c3', 'c4', 'c5']) {
          await store.addRevocation(
            { kind: 'certificate', id, reason: '', expiresAt: new Date(clock.now.getTime() + 5000) },
            clock.now,
          );
        }
        assert.deepEqual(
          (await store.listRevocations(0, 2)).map((r) => r.sequence),
          [1, 2],
        );
        assert.deepEqual(
          (await store.listRevocations(2, 2)).map((r) => r.sequence),
          [3, 4],
        );
        assert.deepEqual(
          (await store.listRevocations(4, 2)).map((r) => r.sequence),
          [5],
        );
        assert.deepEqual(await store.listRevocations(5, 2), []);
      });

      it('lists sessions newest first, by agent, by chain and live only, within the limit', async () => {
        await store.createSession(session('root'));
        clock.advance(1000);
        await store.createSession(
          session('child', { parentSessionId: 'root', spiffeId: `${TD}/agents/tool-runner`, depth: 1 }),
        );
        await store.addSessionCertificate('child', 'c0ffee', new Date(clock.now.getTime() + 60_000));
        clock.advance(1000);
        await store.createSession(session('short', { expiresAt: new Date(clock.now.getTime() + 500) }));
        clock.advance(1000);
        await store.createSession(session('ended'));
        await store.endSessionTree('ended', clock.now, 'done');
        const ids = (list: { id: string }[]): string[] => list.map((x) => x.id);
        assert.deepEqual(ids(await store.listSessions({ limit: 10 })), ['ended', 'short', 'child', 'root']);
        assert.deepEqual(ids(await store.listSessions({ limit: 2 })), ['ended', 'short']);
        assert.deepEqual(ids(await store.listSessions({ liveAt: clock.now, limit: 10 })), ['child', 'root']);
        assert.deepEqual(ids(await store.listSessions({ rootSessionId: 'root', limit: 10 })), [
          'child',
          'root',
        ]);
        const byAgent = await store.listSessions({ spiffeId: `${TD}/agents/tool-runner`, limit: 10 });
        assert.deepEqual(ids(byAgent), ['child']);
        assert.deepEqual(byAgent[0]!.certSerials, ['c0ffee']);
        assert.equal(byAgent[0]!.parentSessionId, 'root');
        assert.deepEqual(await store.listSessions({ spiffeId: 'spiffe://nobody', limit: 10 }), []);
        // A listed session is the record getSession reads: dates as Dates, scopes as a list.
        for (const listed of await store.listSessions({ limit: 10 })) {
          assert.deepEqual(listed, await store.getSession(listed.id));
        }
      });

      it("counts an agent's live sessions and the ones that ended since a time", async () => {
        const later = (ms: number): Date => new Date(clock.now.getTime() + ms);
        await store.createSession(session('s1'));
        await store.createSession(session('s2'));
        await store.createSession(session('short', { expiresAt: later(1000) }));
        await store.createSession(session('other', { entryId: 'entry-2' }));
        const since = clock.now;
        assert.deepEqual(await store.countAgentSessions('entry-1', clock.now, since), {
          live: 3,
          endedInWindow: 0,
        });
        clock.advance(2000);
        await store.endSessionTree('s1', clock.now, '');
        assert.deepEqual(await store.countAgentSessions('entry-1', clock.now, since), {
          live: 1,
          endedInWindow: 1,
        });
        assert.deepEqual(await store.countAgentSessions('entry-1', clock.now, later(1)), {
          live: 1,
          endedInWindow: 0,
        });
        assert.deepEqual(await store.countAgentSessions('entry-2', clock.now, since), {
          live: 1,
          endedInWindow: 0,
        });
      });

      it('counts the live sessions of every agent: neither ended nor expired', async () => {
        const later = (ms: number): Date => new Date(clock.now.getTime() + ms);
        assert.equal(await store.countLiveSessions(clock.now), 0);
        await store.createSession(session('s1'));
        await store.createSession(session('short', { expiresAt: later(1000) }));
        await store.createSession(session('other', { entryId: 'entry-2' }));
        assert.equal(await store.countLiveSessions(clock.now), 3);
        await store.endSessionTree('s1', clock.now, '');
        assert.equal(await store.countLiveSessions(clock.now), 2);
        clock.advance(2000);
        assert.equal(await store.countLiveSessions(clock.now), 1);
      });

      it('lists what revocations after a sequence add to a CRL, and through which sequence', async () => {
        const at = (ms: number): Date => new Date(clock.now.getTime() + ms);
        await store.createSession(session('root', { expiresAt: at(9000) }));
        await store.addSessionCertificate('root', 'a1', at(2000));
        await store.addSessionCertificate('root', 'a2', at(8000));
        const first = await store.addRevocation(
          { kind: 'certificate', id: 'c1', reason: '', expiresAt: at(5000) },
          clock.now,
        );
        const d1 = await store.listRevokedSerialsAfter(0, clock.now);
        assert.deepEqual(
          d1.serials.map((r) => r.serialHex),
          ['c1'],
        );
        assert.equal(d1.throughSequence, first.sequence);
        await store.endSessionTree('root', clock.now, 'done');
        const d2 = await store.listRevokedSerialsAfter(d1.throughSequence, clock.now);
        assert.deepEqual(d2.serials.map((r) => r.serialHex).sort(), ['a1', 'a2']);
        assert.equal(d2.throughSequence, first.sequence + 1);
        clock.advance(3000);
        // Expired certificates are left out; nothing new: the same sequence.
        assert.deepEqual(
          (await store.listRevokedSerialsAfter(0, clock.now)).serials.map((r) => r.serialHex).sort(),
          ['a2', 'c1'],
        );
        const d3 = await store.listRevokedSerialsAfter(d2.throughSequence, clock.now);
        assert.deepEqual(d3, { serials: [], throughSequence: d2.throughSequence });
      });

      it('prunes grants only once they can no longer be redeemed', async () => {
        await store.createSession(session('root'));
        await store.createGrant(grant('spent'));
        await store.markGrantRedeemed('spent', clock.now, 'c');
        await store.createGrant(grant('late', { redeemBy: new Date(clock.now.getTime() + 120_000) }));
        clock.advance(61_000);
        assert.equal(await store.pruneGrants(clock.now), 1);
        await rejectsWithCode(store.getGrant('spent'), ErrorCode.GRANT_NOT_FOUND);
        assert.equal((await store.getGrant('late')).redeemedAt, undefined);
      });

      it('keeps sessions, grants and revocations across close and reopen', async () => {
        await store.createSession(session('root'));
        await store.addSessionCertificate('root', '1f', clock.now);
        await store.createGrant(grant('g1'));
        await store.markGrantRedeemed('g1', clock.now, 'c');
        await store.createGrant(grant('g2'));
        await store.endSessionTree('root', clock.now, 'done');
        const before = await store.getSession('root');
        await store.close();
        const reopened = await harness.open({ clock: clock.read });
        assert.deepEqual(await reopened.getSession('root'), before);
        await rejectsWithCode(reopened.markGrantRedeemed('g1', clock.now, 'x'), ErrorCode.GRANT_REPLAYED);
        assert.equal((await reopened.getGrant('g2')).redeemedAt, undefined);
        assert.deepEqual(
          (await reopened.listRevocations(0)).map((r) => r.id),
          ['root'],
        );
      });

      it('rolls back a session and its grant together when the transaction fails', async () => {
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.createSession(session('root'));
            await tx.createGrant(grant('g1'));
            await tx.addRevocation(
              { kind: 'session', id: 'root', reason: '', expiresAt: clock.now },
              clock.now,
            );
            throw new Error('boom');
          }),
          /boom/,
        );
        await rejectsWithCode(store.getSession('root'), ErrorCode.NOT_FOUND);
        await rejectsWithCode(store.getGrant('g1'), ErrorCode.GRANT_NOT_FOUND);
        assert.deepEqual(await store.listRevocations(0), []);
      });
    });

    describe('federation', () => {
      const rel = {
        trustDomain: 'partner.test',
        bundleEndpointUrl: 'https://partner.test/',
        profile: 'https_web' as const,
      };
      const doc = (sequence?: number) => ({
        bundleJson: JSON.stringify({
          ...(sequence !== undefined && { spiffe_sequence: sequence }),
          keys: [],
        }),
        ...(sequence !== undefined && { sequence }),
        fetched: true,
      });

      it('creates, reads, lists, updates (revision checked) and deletes relationships', async () => {
        const created = await store.createFederationRelationship(rel, { ...doc(3), fetched: false });
        assert.equal(created.revision, 1);
        await rejectsWithCode(store.createFederationRelationship(rel), ErrorCode.ALREADY_EXISTS);
        assert.equal((await store.getFederatedBundle('partner.test'))?.sequence, 3);
        const updated = await store.updateFederationRelationship(
          'partner.test',
          { profile: 'https_spiffe', endpointSpiffeId: 'spiffe://partner.test/srv' },
          1,
        );
        assert.equal(updated.revision, 2);
        assert.equal(updated.endpointSpiffeId, 'spiffe://partner.test/srv');
        await rejectsWithCode(
          store.updateFederationRelationship('partner.test', { bundleEndpointUrl: 'https://x.test/' }, 1),
          ErrorCode.REVISION_CONFLICT,
        );
        assert.deepEqual(
          (await store.listFederationRelationships()).map((r) => r.trustDomain),
          ['partner.test'],
        );
        await store.deleteFederationRelationship('partner.test', 2);
        await rejectsWithCode(store.getFederationRelationship('partner.test'), ErrorCode.NOT_FOUND);
        assert.equal(await store.getFederatedBundle('partner.test'), undefined, 'the bundle goes with it');
      });

      it('refuses a lower sequence and keeps the stored bundle; records failures beside it', async () => {
        await store.createFederationRelationship(rel);
        await rejectsWithCode(
          store.putFederatedBundle('partner.test2', doc(1), clock.now),
          ErrorCode.NOT_FOUND,
        );
        await store.putFederatedBundle('partner.test', doc(5), clock.now);
        await store.putFederatedBundle('partner.test', doc(5), clock.now);
        await rejectsWithCode(
          store.putFederatedBundle('partner.test', doc(4), clock.now),
          ErrorCode.BUNDLE_SEQUENCE_REGRESSED,
        );
        await rejectsWithCode(
          store.putFederatedBundle('partner.test', doc(undefined), clock.now),
          ErrorCode.BUNDLE_SEQUENCE_REGRESSED,
        );
        await store.recordFederatedFetchFailure(
          'partner.test',
          'ERR_FEDERATION_FETCH_FAILED: down',
          clock.now,
        );
        const kept = await store.getFederatedBundle('partner.test');
        assert.equal(kept?.sequence, 5);
        assert.equal(kept?.lastError, 'ERR_FEDERATION_FETCH_FAILED: down');
        await store.putFederatedBundle('partner.test', doc(6), clock.now);
        assert.equal((await store.getFederatedBundle('partner.test'))?.lastError, '');
      });

      it('stores federatesWith sorted and refuses to delete a relationship an entry names', async () => {
        await store.createFederationRelationship(rel);
        const e = await store.createEntry(newEntry({ federatesWith: ['z.test', 'partner.test'] }));
        assert.deepEqual((await store.getEntry(e.id)).federatesWith, ['partner.test', 'z.test']);
        await rejectsWithCode(
          store.deleteFederationRelationship('partner.test'),
          ErrorCode.FEDERATION_RELATIONSHIP_IN_USE,
        );
        await store.updateEntry(e.id, { federatesWith: [] }, 1);
        assert.equal((await store.getEntry(e.id)).federatesWith, undefined);
        await store.deleteFederationRelationship('partner.test');
      });
    });

    describe("servers' audit key histories", () => {
      it('keeps one history per server, replaced by the next, and lists them all', async () => {
        assert.deepEqual(await store.audit.serverKeyHistories(), []);
        await store.audit.putServerKeyHistory('server-b', '[{"keyId":"b1"}]', clock.now);
        await store.audit.putServerKeyHistory('server-a', '[{"keyId":"a1"}]', clock.now);
        await store.audit.putServerKeyHistory('server-b', '[{"keyId":"b1"},{"keyId":"b2"}]', clock.now);
        assert.deepEqual(await store.audit.serverKeyHistories(), [
          { serverId: 'server-a', introductionsJson: '[{"keyId":"a1"}]' },
          { serverId: 'server-b', introductionsJson: '[{"keyId":"b1"},{"keyId":"b2"}]' },
        ]);
      });
    });

    describe('audit checkpoints in pages', () => {
      it('reads every checkpoint of a chain once, in seq and time order, page after page', async () => {
        const chain = 'spiffe://example.org/lanyard/server';
        const at = (s: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
        const cp = (seq: number, s: number): AuditCheckpoint => ({
          chain,
          seq,
          headHash: seq.toString(16).padStart(64, '0'),
          time: at(s),
          keyId: 'k1',
          signature: 'sig',
        });
        // Stored out of order, with two checkpoints of one head (signed at different times) and another chain.
        const stored = [cp(5, 9), cp(1, 1), cp(5, 3), cp(9, 10), cp(3, 2), cp(0, 0), cp(7, 7)];
        for (const c of stored) await store.audit.addCheckpoint(c);
        await store.audit.addCheckpoint({ ...cp(4, 4), chain: 'spiffe://example.org/other' });
        const all = await store.audit.checkpoints(chain);
        assert.deepEqual(
          all.map((c) => [c.seq, c.time]),
          [cp(0, 0), cp(1, 1), cp(3, 2), cp(5, 3), cp(5, 9), cp(7, 7), cp(9, 10)].map((c) => [c.seq, c.time]),
        );
        for (const size of [1, 2, 3, 100]) {
          const paged: AuditCheckpoint[] = [];
          let page = await store.audit.readCheckpoints(chain, undefined, size);
          while (page.length > 0) {
            assert.ok(page.length <= size);
            paged.push(...page);
            page = await store.audit.readCheckpoints(chain, page[page.length - 1], size);
          }
          assert.deepEqual(paged, all, `pages of ${size}`);
        }
        assert.deepEqual(await store.audit.readCheckpoints('spiffe://example.org/none', undefined, 10), []);
        assert.deepEqual(await store.audit.latestCheckpoint(chain), all[all.length - 1]);
        assert.equal(await store.audit.latestCheckpoint('spiffe://example.org/none'), undefined);
      });
    });

    describe('persistence', () => {
      it('keeps entries, spent tokens, CA state and bundle across close and reopen', async () => {
        const entry = await store.createEntry(newEntry({ allowedScopes: ['a'] }));
        await store.updateEntry(entry.id, { maxDelegationDepth: 2 }, 1);
        await store.createJoinToken({
          id: 'jt',
          tokenHash: hashJoinToken('persist'),
          entryId: 'e-1',
          spiffeId: `${TD}/agents/a`,
          expiresAt: new Date(clock.now.getTime() + 60_000),
        });
        await store.consumeJoinToken(hashJoinToken('persist'), clock.now);
        const ca: CaAuthorityRecord = {
          id: 'ca1',
          status: 'active',
          certDer: randomBytes(50),
          upstreamChainDer: [],
          keyRef: 'k',
          notBefore: clock.now,
          notAfter: clock.now,
          createdAt: clock.now,
        };
        await store.putCaAuthority(ca);
        const bundle = await store.setBundle('lanyard.local', {
          x509AuthoritiesDer: [randomBytes(30)],
          refreshHintSeconds: 60,
        });
        const before = await store.getEntry(entry.id);
        await store.close();

        const reopened = await harness.open({ clock: clock.read });
        assert.deepEqual(await reopened.getEntry(entry.id), before);
        await rejectsWithCode(
          reopened.consumeJoinToken(hashJoinToken('persist'), clock.now),
          ErrorCode.TOKEN_SPENT,
        );
        assert.deepEqual(await reopened.listCaAuthorities(), [ca]);
        assert.deepEqual(await reopened.getBundle('lanyard.local'), bundle);
        const next = await reopened.setBundle('lanyard.local', {
          x509AuthoritiesDer: [],
          refreshHintSeconds: 60,
        });
        assert.equal(next.sequence, bundle.sequence + 1);
      });

      it('refuses calls after close, and close twice is fine', async () => {
        await store.close();
        await store.close();
        await rejectsWithCode(store.getEntry('x'), ErrorCode.STORE_CLOSED);
        await rejectsWithCode(
          store.transaction(async () => undefined),
          ErrorCode.STORE_CLOSED,
        );
      });
    });
  });
}
