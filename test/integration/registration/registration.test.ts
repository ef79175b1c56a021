import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { status } from '@grpc/grpc-js';
import { ErrorCode } from '../../../src/errors';
import { SelectorMatch } from '../../../src/gen/lanyard/v1/registration';
import type { Entry } from '../../../src/gen/lanyard/v1/types';
import { hashJoinToken, JOIN_TOKEN_PREFIX } from '../../../src/internal/join-token-secret';
import { startTestServer, type TestServer } from '../../support/test-server';
import { rejectsWithStatus } from '../../support/grpc-refusal';

const TD = 'spiffe://lanyard.local';

const entry = (over: Partial<Entry> = {}): Partial<Entry> => ({
  spiffeId: `${TD}/agents/planner`,
  selectors: [{ type: 'k8s', value: 'ns:agents' }],
  ...over,
});

describe('RegistrationService over the admin socket', () => {
  let t: TestServer;
  beforeEach(async () => {
    t = await startTestServer();
  });
  afterEach(async () => {
    await t.stop();
    fs.rmSync(t.dir, { recursive: true, force: true });
  });

  it('creates an entry and reads it back with every field', async () => {
    const expiresAt = new Date(Date.now() + 86_400_000);
    const { entry: created } = await t.client.createEntry({
      entry: entry({
        parentId: `${TD}/node/a`,
        x509SvidTtlSeconds: 600,
        allowedScopes: ['tickets:read', 'tickets:write'],
        maxDelegationDepth: 2,
        allowedDelegates: [`${TD}/agents/tool-runner`],
        admin: true,
        dnsNames: ['planner.internal'],
        expiresAt,
        canAssertPrincipal: true,
      }),
    });
    assert.ok(created);
    assert.equal(created.revision, 1);
    assert.deepEqual(created.expiresAt, expiresAt);
    assert.ok(created.createdAt instanceof Date);
    const { entry: got } = await t.client.getEntry({ id: created.id });
    assert.deepEqual(got, created);
  });

  it('lists with filters and paginates through every entry exactly once', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { entry: e } = await t.client.createEntry({
        entry: entry({
          spiffeId: `${TD}/agents/a${i}`,
          selectors: [{ type: 'k8s', value: `pod-name:p${i}` }],
        }),
      });
      ids.push(e?.id ?? '');
    }
    await t.client.createEntry({ entry: entry({ spiffeId: `${TD}/tools/t` }) });

    const seen: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const page = await t.client.listEntries({
        filter: { spiffeIdPrefix: `${TD}/agents/` },
        pageSize: 2,
        pageToken,
      });
      seen.push(...page.entries.map((e) => e.id));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken);
    assert.deepEqual(seen, ids);
    assert.equal(pages, 3);

    const bySelector = await t.client.listEntries({
      filter: {
        bySelectors: {
          selectors: [
            { type: 'k8s', value: 'pod-name:p3' },
            { type: 'k8s', value: 'ns:elsewhere' },
          ],
          match: SelectorMatch.SELECTOR_MATCH_ANY,
        },
      },
    });
    assert.deepEqual(
      bySelector.entries.map((e) => e.spiffeId),
      [`${TD}/agents/a3`],
    );
  });

  it('updates at the current revision and refuses a stale one with ABORTED', async () => {
    const { entry: created } = await t.client.createEntry({ entry: entry({ allowedScopes: ['a'] }) });
    assert.ok(created);
    const { entry: updated } = await t.client.updateEntry({
      entry: { id: created.id, revision: 1, maxDelegationDepth: 3 },
      updateMask: ['max_delegation_depth'],
    });
    assert.equal(updated?.revision, 2);
    assert.equal(updated?.maxDelegationDepth, 3);
    // fields outside the mask are untouched
    assert.deepEqual(updated?.allowedScopes, ['a']);
    assert.deepEqual(updated?.selectors, created.selectors);

    const err = await rejectsWithStatus(
      t.client.updateEntry({ entry: { id: created.id, revision: 1, admin: true }, updateMask: ['admin'] }),
      status.ABORTED,
      'revision 2',
    );
    assert.equal(err.lanyardCode, ErrorCode.REVISION_CONFLICT);
    assert.equal((await t.client.getEntry({ id: created.id })).entry?.admin, false);
  });

  it('replaces every mutable field with the update mask "*", and refuses an empty mask', async () => {
    const { entry: created } = await t.client.createEntry({
      entry: entry({
        allowedScopes: ['a'],
        parentId: `${TD}/node/a`,
        dnsNames: ['x.internal'],
        admin: true,
        canAssertPrincipal: true,
      }),
    });
    assert.ok(created);
    const renamed = {
      id: created.id,
      revision: 1,
      spiffeId: `${TD}/agents/renamed`,
      selectors: created.selectors,
    };
    // Without a mask nothing is guessed: proto3 cannot tell an unset admin flag from false.
    await rejectsWithStatus(t.client.updateEntry({ entry: renamed }), status.INVALID_ARGUMENT, 'update_mask');
    await rejectsWithStatus(
      t.client.updateEntry({ entry: renamed, updateMask: ['*', 'admin'] }),
      status.INVALID_ARGUMENT,
      'only path',
    );
    assert.deepEqual((await t.client.getEntry({ id: created.id })).entry, created);
    const { entry: replaced } = await t.client.updateEntry({ entry: renamed, updateMask: ['*'] });
    assert.equal(replaced?.spiffeId, `${TD}/agents/renamed`);
    assert.equal(replaced?.parentId, '');
    assert.deepEqual(replaced?.allowedScopes, []);
    assert.deepEqual(replaced?.dnsNames, []);
    assert.equal(replaced?.admin, false);
    assert.equal(replaced?.canAssertPrincipal, false);
  });

  it('deletes, and a stale revision on delete is ABORTED', async () => {
    const { entry: created } = await t.client.createEntry({ entry: entry() });
    assert.ok(created);
    await rejectsWithStatus(t.client.deleteEntry({ id: created.id, revision: 9 }), status.ABORTED);
    await t.client.deleteEntry({ id: created.id, revision: 1 });
    const err = await rejectsWithStatus(t.client.getEntry({ id: created.id }), status.NOT_FOUND);
    assert.equal(err.lanyardCode, ErrorCode.NOT_FOUND);
    await rejectsWithStatus(t.client.deleteEntry({ id: created.id }), status.NOT_FOUND);
  });

  it('refuses a duplicate (same SPIFFE ID and selector set) with ALREADY_EXISTS', async () => {
    const { entry: first } = await t.client.createEntry({ entry: entry() });
    const err = await rejectsWithStatus(
      t.client.createEntry({ entry: entry() }),
      status.ALREADY_EXISTS,
      first?.id ?? '?',
    );
    assert.equal(err.lanyardCode, ErrorCode.ALREADY_EXISTS);
  });

  it('batch-creates all entries in one transaction, or none', async () => {
    const ok = await t.client.batchCreateEntry({
      entries: [entry({ spiffeId: `${TD}/b/1` }), entry({ spiffeId: `${TD}/b/2` })],
    });
    assert.equal(ok.entries.length, 2);

    await rejectsWithStatus(
      t.client.batchCreateEntry({
        entries: [
          entry({ spiffeId: `${TD}/c/1` }),
          entry({ spiffeId: `${TD}/c/2` }),
          entry({ spiffeId: `${TD}/b/1` }),
        ],
      }),
      status.ALREADY_EXISTS,
      'entries[2]',
    );
    await rejectsWithStatus(
      t.client.batchCreateEntry({ entries: [entry({ spiffeId: `${TD}/d/1` }), entry({ spiffeId: 'nope' })] }),
      status.INVALID_ARGUMENT,
      'entries[1].spiffe_id',
    );
    const all = await t.client.listEntries({});
    assert.deepEqual(
      all.entries.map((e) => e.spiffeId),
      [`${TD}/b/1`, `${TD}/b/2`],
    );
  });

  it('creates a join token: shown once, stored only as a hash, never logged', async () => {
    const { entry: bound } = await t.client.createEntry({ entry: entry({ spiffeId: `${TD}/agents/a` }) });
    const before = Date.now();
    const res = await t.client.createJoinToken({ spiffeId: `${TD}/agents/a`, ttlSeconds: 120 });
    assert.ok(res.token.startsWith(JOIN_TOKEN_PREFIX));
    assert.ok(res.token.length >= JOIN_TOKEN_PREFIX.length + 43);
    assert.match(res.tokenId, /^jt-[0-9a-f]{16}$/);
    assert.equal(res.spiffeId, `${TD}/agents/a`);
    assert.equal(res.entryId, bound?.id);
    const expires = res.expiresAt?.getTime() ?? 0;
    assert.ok(expires >= before + 120_000 && expires <= Date.now() + 120_000);

    // The store accepts it by hash, exactly once.
    const consumed = await t.running.store.consumeJoinToken(hashJoinToken(res.token), new Date());
    assert.equal(consumed.id, res.tokenId);
    assert.ok(!t.logs.join('').includes(res.token), 'the token must not appear in the logs');
    assert.ok(t.logs.join('').includes(res.tokenId), 'the token id is logged');
  });

  it('defaults a join token TTL to 600 seconds', async () => {
    await t.client.createEntry({ entry: entry({ spiffeId: `${TD}/agents/a` }) });
    const res = await t.client.createJoinToken({ spiffeId: `${TD}/agents/a` });
    const ttl = ((res.expiresAt?.getTime() ?? 0) - Date.now()) / 1000;
    assert.ok(ttl > 590 && ttl <= 600, String(ttl));
  });

  describe('each invalid input gets its own status and names the field', () => {
    const past = new Date(Date.now() - 1000);
    const cases: [string, () => Promise<unknown>, number, string][] = [
      ['missing entry', () => t.client.createEntry({}), status.INVALID_ARGUMENT, 'entry: required'],
      [
        'malformed SPIFFE ID',
        () => t.client.createEntry({ entry: entry({ spiffeId: 'http://x/y' }) }),
        status.INVALID_ARGUMENT,
        'entry.spiffe_id',
      ],
      [
        'other trust domain',
        () => t.client.createEntry({ entry: entry({ spiffeId: 'spiffe://other.org/a' }) }),
        status.INVALID_ARGUMENT,
        'trust domain lanyard.local',
      ],
      [
        'trust domain ID without path',
        () => t.client.createEntry({ entry: entry({ spiffeId: TD }) }),
        status.INVALID_ARGUMENT,
        'must have a path',
      ],
      [
        'reserved server path',
        () => t.client.createEntry({ entry: entry({ spiffeId: `${TD}/lanyard/server` }) }),
        status.INVALID_ARGUMENT,
        'reserved',
      ],
      [
        'no selectors under a node agent (only join-token-only entries may have none)',
        () => t.client.createEntry({ entry: entry({ selectors: [], parentId: `${TD}/node/1` }) }),
        status.INVALID_ARGUMENT,
        'entry.selectors: at least one',
      ],
      [
        'selector type with a colon',
        () => t.client.createEntry({ entry: entry({ selectors: [{ type: 'k8s:ns', value: 'x' }] }) }),
        status.INVALID_ARGUMENT,
        'entry.selectors[0].type',
      ],
      [
        'empty selector value',
        () => t.client.createEntry({ entry: entry({ selectors: [{ type: 'k8s', value: '' }] }) }),
        status.INVALID_ARGUMENT,
        'entry.selectors[0].value',
      ],
      [
        'duplicate selector',
        () =>
          t.client.createEntry({
            entry: entry({
              selectors: [
                { type: 'a', value: 'b' },
                { type: 'a', value: 'b' },
              ],
            }),
          }),
        status.INVALID_ARGUMENT,
        'entry.selectors[1]',
      ],
      [
        'negative TTL',
        () => t.client.createEntry({ entry: entry({ x509SvidTtlSeconds: -5 }) }),
        status.INVALID_ARGUMENT,
        'entry.x509_svid_ttl_seconds',
      ],
      [
        'TTL over 30 days',
        () => t.client.createEntry({ entry: entry({ x509SvidTtlSeconds: 31 * 86400 }) }),
        status.INVALID_ARGUMENT,
        'entry.x509_svid_ttl_seconds',
      ],
      [
        'scope with a space',
        () => t.client.createEntry({ entry: entry({ allowedScopes: ['read tickets'] }) }),
        status.INVALID_ARGUMENT,
        'entry.allowed_scopes[0]',
      ],
      [
        'delegation depth too deep',
        () => t.client.createEntry({ entry: entry({ maxDelegationDepth: 17 }) }),
        status.INVALID_ARGUMENT,
        'entry.max_delegation_depth',
      ],
      [
        'bad delegate',
        () => t.client.createEntry({ entry: entry({ allowedDelegates: ['not-an-id'] }) }),
        status.INVALID_ARGUMENT,
        'entry.allowed_delegates[0]',
      ],
      [
        'bad DNS name',
        () => t.client.createEntry({ entry: entry({ dnsNames: ['-bad-.example'] }) }),
        status.INVALID_ARGUMENT,
        'entry.dns_names[0]',
      ],
      [
        'expiry in the past',
        () => t.client.createEntry({ entry: entry({ expiresAt: past }) }),
        status.INVALID_ARGUMENT,
        'entry.expires_at',
      ],
      [
        'bad entry id',
        () => t.client.createEntry({ entry: entry({ id: 'has space' }) }),
        status.INVALID_ARGUMENT,
        'entry.id',
      ],
      ['get without id', () => t.client.getEntry({ id: '' }), status.INVALID_ARGUMENT, 'id: required'],
      ['get unknown id', () => t.client.getEntry({ id: 'unknown' }), status.NOT_FOUND, 'unknown'],
      [
        'negative page size',
        () => t.client.listEntries({ pageSize: -1 }),
        status.INVALID_ARGUMENT,
        'page_size',
      ],
      [
        'garbage page token',
        () => t.client.listEntries({ pageToken: '%%%' }),
        status.INVALID_ARGUMENT,
        'page_token',
      ],
      [
        'empty selector filter',
        () => t.client.listEntries({ filter: { bySelectors: { selectors: [] } } }),
        status.INVALID_ARGUMENT,
        'filter.by_selectors.selectors',
      ],
      [
        'update without revision',
        () => t.client.updateEntry({ entry: { id: 'x', admin: true }, updateMask: ['admin'] }),
        status.INVALID_ARGUMENT,
        'entry.revision',
      ],
      [
        'update with unknown mask path',
        () => t.client.updateEntry({ entry: { id: 'x', revision: 1 }, updateMask: ['created_at'] }),
        status.INVALID_ARGUMENT,
        'update_mask.paths[0]',
      ],
      [
        'update of an unknown entry',
        () => t.client.updateEntry({ entry: { id: 'x', revision: 1, admin: true }, updateMask: ['admin'] }),
        status.NOT_FOUND,
        'x',
      ],
      ['empty batch', () => t.client.batchCreateEntry({ entries: [] }), status.INVALID_ARGUMENT, 'entries'],
      [
        'join token for another trust domain',
        () => t.client.createJoinToken({ spiffeId: 'spiffe://other.org/a' }),
        status.INVALID_ARGUMENT,
        'spiffe_id',
      ],
      [
        'join token TTL too long',
        () => t.client.createJoinToken({ spiffeId: `${TD}/a`, ttlSeconds: 31 * 86400 }),
        status.INVALID_ARGUMENT,
        'ttl_seconds',
      ],
    ];
    for (const [name, call, code, fragment] of cases) {
      it(name, async () => {
        await rejectsWithStatus(call(), code, fragment);
      });
    }

    it('an oversized message is RESOURCE_EXHAUSTED', async () => {
      await t.stop();
      t = await startTestServer({ dir: t.dir, config: { maxMessageBytes: 4096 } });
      await rejectsWithStatus(
        t.client.createEntry({
          entry: entry({
            allowedScopes: Array.from({ length: 100 }, (_, i) => `scope-${i}-${'x'.repeat(40)}`),
          }),
        }),
        status.RESOURCE_EXHAUSTED,
      );
    });

    it('a refused call changes nothing', async () => {
      await rejectsWithStatus(
        t.client.createEntry({ entry: entry({ selectors: [{ type: 'k8s', value: '' }] }) }),
        status.INVALID_ARGUMENT,
      );
      assert.equal((await t.client.listEntries({})).entries.length, 0);
    });
  });
});
