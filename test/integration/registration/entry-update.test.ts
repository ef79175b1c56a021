/**
 * An entry update changes only the fields it names, through the API (update_mask) and the CLI (flags), for
 * every mutable field; its audit record holds each changed field before and after; and every remote admin
 * call is logged and recorded with its caller. The reproduction: `lanyard entry update <id> --ttl 20m` once
 * made the entry admin, and its workload then listed every entry over mTLS.
 */
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type { AuditRecord } from '../../../src/audit/record';
import { EXIT_OK } from '../../../src/cli/exit-codes';
import { ListEntriesRequest, RegistrationServiceClient } from '../../../src/gen/lanyard/v1/registration';
import type { Entry } from '../../../src/gen/lanyard/v1/types';
import { ERROR_CODE_METADATA_KEY } from '../../../src/internal/grpc-call';
import { startTestServer, type TestServer } from '../../support/test-server';
import { publicCredentials, PUBLIC_CHANNEL_OPTIONS } from '../../support/public-client';
import { runCli } from '../../support/server-process';
import { id, register, TD, type Agent } from '../../support/sessions';
import { rejectsWithStatus } from '../../support/grpc-refusal';

const DAY = 86_400_000;
const EXPIRES = new Date(Math.floor((Date.now() + 10 * DAY) / 1000) * 1000);
const LATER = new Date(EXPIRES.getTime() + DAY);

/** The mutable fields, as UpdateEntry names them. */
const FIELDS = [
  'spiffe_id',
  'parent_id',
  'selectors',
  'x509_svid_ttl_seconds',
  'allowed_scopes',
  'max_delegation_depth',
  'allowed_delegates',
  'admin',
  'dns_names',
  'expires_at',
  'can_assert_principal',
] as const;
type Field = (typeof FIELDS)[number];

function valueOf(e: Entry, f: Field): unknown {
  switch (f) {
    case 'spiffe_id':
      return e.spiffeId;
    case 'parent_id':
      return e.parentId;
    case 'selectors':
      return e.selectors;
    case 'x509_svid_ttl_seconds':
      return e.x509SvidTtlSeconds;
    case 'allowed_scopes':
      return e.allowedScopes;
    case 'max_delegation_depth':
      return e.maxDelegationDepth;
    case 'allowed_delegates':
      return e.allowedDelegates;
    case 'admin':
      return e.admin;
    case 'dns_names':
      return e.dnsNames;
    case 'expires_at':
      return e.expiresAt?.toISOString();
    case 'can_assert_principal':
      return e.canAssertPrincipal;
  }
}

/** Every mutable field set, none to its proto default (so a field reset by mistake shows). */
const base = (n: number, over: Partial<Entry> = {}): Partial<Entry> => ({
  spiffeId: id(`agents/u${n}`),
  selectors: [{ type: 'unix', value: `uid:${1000 + n}` }],
  x509SvidTtlSeconds: 600,
  allowedScopes: ['a:read'],
  maxDelegationDepth: 1,
  allowedDelegates: [id('agents/d1')],
  dnsNames: ['base.internal'],
  expiresAt: EXPIRES,
  ...over,
});

/** Different from `base` in every field: what an update request carries for the fields it does NOT name. */
const POISON: Partial<Entry> = {
  spiffeId: id('agents/poison'),
  parentId: id('node/poison'),
  selectors: [{ type: 'unix', value: 'uid:6666' }],
  x509SvidTtlSeconds: 6666,
  allowedScopes: ['poison:all'],
  maxDelegationDepth: 9,
  allowedDelegates: [id('agents/poison')],
  admin: true,
  dnsNames: ['poison.internal'],
  expiresAt: new Date(EXPIRES.getTime() + 5 * DAY),
  canAssertPrincipal: true,
};

interface Case {
  name: string;
  field: Field;
  /** Fields of the entry before the update, beyond `base`. */
  before?: Partial<Entry>;
  /** The API request's value for the field. */
  api: Partial<Entry>;
  /** The CLI flags that make the same change. */
  cli: string[];
  expect: unknown;
  /** The audit record's before and after (canonical JSON). */
  audit: [string, string];
}

const CASES = (n: number): Case[] => [
  {
    name: 'spiffe_id',
    field: 'spiffe_id',
    api: { spiffeId: id(`agents/renamed-${n}`) },
    cli: ['--spiffe-id', id(`agents/renamed-${n}`)],
    expect: id(`agents/renamed-${n}`),
    audit: [JSON.stringify(id(`agents/u${n}`)), JSON.stringify(id(`agents/renamed-${n}`))],
  },
  {
    name: 'parent_id set',
    field: 'parent_id',
    api: { parentId: id('node/n1') },
    cli: ['--parent-id', id('node/n1')],
    expect: id('node/n1'),
    audit: ['null', JSON.stringify(id('node/n1'))],
  },
  {
    name: 'parent_id cleared',
    field: 'parent_id',
    before: { parentId: id('node/n1') },
    api: { parentId: '' },
    cli: ['--clear', 'parent_id'],
    expect: '',
    audit: [JSON.stringify(id('node/n1')), 'null'],
  },
  {
    name: 'selectors',
    field: 'selectors',
    api: { selectors: [{ type: 'unix', value: `uid:${2000 + n}` }] },
    cli: ['--selector', `unix:uid:${2000 + n}`],
    expect: [{ type: 'unix', value: `uid:${2000 + n}` }],
    audit: [`[{"type":"unix","value":"uid:${1000 + n}"}]`, `[{"type":"unix","value":"uid:${2000 + n}"}]`],
  },
  {
    name: 'x509_svid_ttl_seconds (the reproduction: --ttl 20m)',
    field: 'x509_svid_ttl_seconds',
    api: { x509SvidTtlSeconds: 1200 },
    cli: ['--ttl', '20m'],
    expect: 1200,
    audit: ['600', '1200'],
  },
  {
    name: 'allowed_scopes',
    field: 'allowed_scopes',
    api: { allowedScopes: ['b:write', 'c:run'] },
    cli: ['--scope', 'b:write', '--scope', 'c:run'],
    expect: ['b:write', 'c:run'],
    audit: ['["a:read"]', '["b:write","c:run"]'],
  },
  {
    name: 'allowed_scopes cleared',
    field: 'allowed_scopes',
    api: { allowedScopes: [] },
    cli: ['--clear', 'allowed_scopes'],
    expect: [],
    audit: ['["a:read"]', '[]'],
  },
  {
    name: 'max_delegation_depth',
    field: 'max_delegation_depth',
    api: { maxDelegationDepth: 3 },
    cli: ['--max-delegation-depth', '3'],
    expect: 3,
    audit: ['1', '3'],
  },
  {
    name: 'allowed_delegates',
    field: 'allowed_delegates',
    api: { allowedDelegates: [id('agents/d2')] },
    cli: ['--delegate', id('agents/d2')],
    expect: [id('agents/d2')],
    audit: [JSON.stringify([id('agents/d1')]), JSON.stringify([id('agents/d2')])],
  },
  {
    name: 'admin granted',
    field: 'admin',
    api: { admin: true },
    cli: ['--admin'],
    expect: true,
    audit: ['false', 'true'],
  },
  {
    name: 'admin revoked',
    field: 'admin',
    before: { admin: true },
    api: { admin: false },
    cli: ['--no-admin'],
    expect: false,
    audit: ['true', 'false'],
  },
  {
    name: 'dns_names',
    field: 'dns_names',
    api: { dnsNames: ['x.internal', 'y.internal'] },
    cli: ['--dns-name', 'x.internal', '--dns-name', 'y.internal'],
    expect: ['x.internal', 'y.internal'],
    audit: ['["base.internal"]', '["x.internal","y.internal"]'],
  },
  {
    name: 'expires_at',
    field: 'expires_at',
    api: { expiresAt: LATER },
    cli: ['--expires-at', LATER.toISOString()],
    expect: LATER.toISOString(),
    audit: [JSON.stringify(EXPIRES.toISOString()), JSON.stringify(LATER.toISOString())],
  },
  {
    name: 'expires_at cleared',
    field: 'expires_at',
    api: {},
    cli: ['--clear', 'expires_at'],
    expect: undefined,
    audit: [JSON.stringify(EXPIRES.toISOString()), 'null'],
  },
  {
    name: 'can_assert_principal granted',
    field: 'can_assert_principal',
    api: { canAssertPrincipal: true },
    cli: ['--can-assert-principal'],
    expect: true,
    audit: ['false', 'true'],
  },
  {
    name: 'can_assert_principal revoked',
    field: 'can_assert_principal',
    before: { canAssertPrincipal: true },
    api: { canAssertPrincipal: false },
    cli: ['--no-can-assert-principal'],
    expect: false,
    audit: ['true', 'false'],
  },
];

/** Each case with its own entry number, so every case's entry (and its SPIFFE ID) is unique. */
const numbered = (offset: number): (Case & { n: number })[] =>
  CASES(0).map((_, i) => ({ ...CASES(offset + i)[i]!, n: offset + i }));

describe('entry update: only the named fields change (API and CLI), every change audited', function () {
  this.timeout(180_000);
  let t: TestServer;
  let next = 500;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.stop());

  const trail = async (): Promise<AuditRecord[]> =>
    (await t.running.store.audit.readRecords(t.running.audit.chain, 0, 100_000)).records;
  const lastUpdateOf = async (entryId: string): Promise<AuditRecord | undefined> =>
    (await trail()).filter((r) => r.event === 'entry.update' && r.agentId === entryId).at(-1);

  const create = async (c: Case & { n: number }): Promise<Entry> => {
    const { entry } = await t.client.createEntry({ entry: base(c.n, c.before) });
    assert.ok(entry);
    return entry;
  };

  /** The field changed as asked, every other field is as before, and the record names exactly that change. */
  const check = async (c: Case, before: Entry, after: Entry): Promise<void> => {
    assert.deepEqual(valueOf(after, c.field), c.expect, `${c.name}: the field itself`);
    for (const f of FIELDS.filter((x) => x !== c.field)) {
      assert.deepEqual(valueOf(after, f), valueOf(before, f), `${c.name}: ${f} must not change`);
    }
    assert.equal(after.revision, before.revision + 1);
    const record = await lastUpdateOf(before.id);
    assert.ok(record, `${c.name}: no entry.update record`);
    assert.equal(record.decision, 'allow');
    assert.equal(record.actor, 'admin-socket');
    assert.deepEqual(record.changes, [{ field: c.field, before: c.audit[0], after: c.audit[1] }]);
  };

  for (const c of numbered(0)) {
    it(`API: ${c.name} (the request carries other values for every other field)`, async () => {
      const before = await create(c);
      const { entry: after } = await t.client.updateEntry({
        entry: {
          ...POISON,
          ...(c.field === 'expires_at' && { expiresAt: undefined }),
          ...c.api,
          id: before.id,
          revision: 1,
        },
        updateMask: [c.field],
      });
      assert.ok(after);
      await check(c, before, after);
    });
  }

  for (const c of numbered(100)) {
    it(`CLI: ${c.cli.join(' ')}`, async () => {
      const before = await create(c);
      const r = await runCli([
        'entry',
        'update',
        before.id,
        '--socket',
        t.config.adminSocketPath,
        '--json',
        ...c.cli,
      ]);
      assert.equal(r.code, EXIT_OK, r.stderr);
      const { entry: after } = await t.client.getEntry({ id: before.id });
      assert.ok(after);
      await check(c, before, after);
    });
  }

  it('an update that names several fields records each of them', async () => {
    const { entry: before } = await t.client.createEntry({ entry: base(next++) });
    assert.ok(before);
    await t.client.updateEntry({
      entry: { ...POISON, id: before.id, revision: 1, admin: true, maxDelegationDepth: 4 },
      updateMask: ['admin', 'max_delegation_depth'],
    });
    const record = await lastUpdateOf(before.id);
    assert.deepEqual(record?.changes, [
      { field: 'max_delegation_depth', before: '1', after: '4' },
      { field: 'admin', before: 'false', after: 'true' },
    ]);
  });

  it('a refused update changes nothing and is recorded as refused', async () => {
    const { entry: before } = await t.client.createEntry({ entry: base(next++) });
    assert.ok(before);
    await rejectsWithStatus(
      t.client.updateEntry({ entry: { ...POISON, id: before.id, revision: 1 } }),
      grpc.status.INVALID_ARGUMENT,
      'update_mask',
    );
    assert.deepEqual((await t.client.getEntry({ id: before.id })).entry, before);
    const record = await lastUpdateOf(before.id);
    assert.equal(record?.decision, 'deny');
    assert.equal(record?.reason, 'ERR_INVALID_ARGUMENT');
    assert.equal(record?.changes, undefined);
  });

  describe('remote admin calls: refused unless admin, each logged and recorded with its caller', () => {
    let workload: Agent;
    let entryId: string;
    const listEntries = (who: Agent): Promise<unknown> => {
      const c = new RegistrationServiceClient(
        t.running.publicAddress,
        publicCredentials(t.running.ca.bundle().toPem(), TD, who),
        PUBLIC_CHANNEL_OPTIONS,
      );
      return new Promise((resolve, reject) =>
        c.listEntries(ListEntriesRequest.fromPartial({}), (e, r) => {
          c.close();
          if (e) reject(e);
          else resolve(r);
        }),
      ).finally(() => c.close());
    };
    const adminLogs = (): Record<string, unknown>[] =>
      t.logs
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => typeof l.msg === 'string' && l.msg.startsWith('admin call'));

    before(async () => {
      workload = await register(t, 'ops-bot');
      entryId = (await t.client.listEntries({ filter: { spiffeIdPrefix: id('ops-bot') } })).entries[0]!.id;
    });

    it('the reproduction: `entry update --ttl 20m` leaves the entry non-admin, and ListEntries is refused', async () => {
      const r = await runCli([
        'entry',
        'update',
        entryId,
        '--socket',
        t.config.adminSocketPath,
        '--ttl',
        '20m',
      ]);
      assert.equal(r.code, EXIT_OK, r.stderr);
      const { entry } = await t.client.getEntry({ id: entryId });
      assert.equal(entry?.x509SvidTtlSeconds, 1200);
      assert.equal(entry?.admin, false);
      assert.equal(entry?.canAssertPrincipal, false);

      const err = (await listEntries(workload).then(
        () => assert.fail('a non-admin workload listed the entries'),
        (e: unknown) => e,
      )) as grpc.ServiceError;
      assert.equal(err.code, grpc.status.PERMISSION_DENIED);
      assert.equal(err.metadata.get(ERROR_CODE_METADATA_KEY)[0], 'ERR_UNAUTHORIZED');

      const refused = adminLogs().filter(
        (l) => l.caller === workload.spiffeId && l.method === '/lanyard.v1.RegistrationService/ListEntries',
      );
      assert.equal(refused.length, 1, 'one log line for the refused call');
      assert.equal(refused[0]!.decision, 'deny');
      assert.equal(refused[0]!.errorCode, 'ERR_UNAUTHORIZED');
      assert.equal(refused[0]!.listener, 'public');
      assert.match(String(refused[0]!.serial), /^[0-9a-f]+$/);
      const record = (await trail()).filter((x) => x.event === 'admin.read').at(-1);
      assert.equal(record?.decision, 'deny');
      assert.equal(record?.actor, workload.spiffeId);
      assert.equal(record?.serial, refused[0]!.serial);
      assert.equal(record?.reason, 'ERR_UNAUTHORIZED');
      assert.equal(record?.action, '/lanyard.v1.RegistrationService/ListEntries');
    });

    it('once made admin, the same SVID lists entries, and the allowed call is logged and recorded too', async () => {
      const before = adminLogs().length;
      const r = await runCli(['entry', 'update', entryId, '--socket', t.config.adminSocketPath, '--admin']);
      assert.equal(r.code, EXIT_OK, r.stderr);
      await listEntries(workload);
      const allowed = adminLogs()
        .slice(before)
        .filter((l) => l.caller === workload.spiffeId);
      assert.deepEqual(
        allowed.map((l) => [l.method, l.decision]),
        [['/lanyard.v1.RegistrationService/ListEntries', 'allow']],
      );
      const record = (await trail()).filter((x) => x.event === 'admin.read').at(-1);
      assert.equal(record?.decision, 'allow');
      assert.equal(record?.actor, workload.spiffeId);
      assert.equal(record?.serial, allowed[0]!.serial);
    });

    it('an admin call on the local admin socket is logged and recorded as the admin socket', async () => {
      const before = adminLogs().length;
      await t.client.getEntry({ id: entryId });
      const lines = adminLogs().slice(before);
      assert.deepEqual(
        lines.map((l) => [l.caller, l.listener, l.method, l.decision]),
        [['admin-socket', 'admin', '/lanyard.v1.RegistrationService/GetEntry', 'allow']],
      );
      const record = (await trail()).filter((x) => x.event === 'admin.read').at(-1);
      assert.equal(record?.actor, 'admin-socket');
      assert.equal(record?.action, '/lanyard.v1.RegistrationService/GetEntry');
      // A state-changing admin call has its own record, with the caller, and its own log line.
      const updated = await runCli([
        'entry',
        'update',
        entryId,
        '--socket',
        t.config.adminSocketPath,
        '--no-admin',
      ]);
      assert.equal(updated.code, EXIT_OK, updated.stderr);
      assert.ok(
        adminLogs().some(
          (l) => l.method === '/lanyard.v1.RegistrationService/UpdateEntry' && l.caller === 'admin-socket',
        ),
      );
      assert.deepEqual((await lastUpdateOf(entryId))?.changes, [
        { field: 'admin', before: 'true', after: 'false' },
      ]);
    });
  });
});
