/**
 * `lanyard entry show` by SPIFFE ID, the parent-ID column of `entry list`, `token create` for a SPIFFE ID no
 * entry has, selector-less (join-token-only) entries, `svid fetch` with a bundle that does not vouch for the
 * server, and durations without a unit, against a real server.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { EXIT_REJECTED, EXIT_USAGE } from '../../../src/cli/exit-codes';
import { createPki } from '../../support/pki';
import { attest, connectPublic, newKey } from '../../support/public-client';
import { runCli, type CliResult, cliOk } from '../../support/server-process';
import { startTestServer, type TestServer } from '../../support/test-server';

const TD = 'spiffe://lanyard.local';

const ok = cliOk;

describe('lanyard entry show by SPIFFE ID, entry list parents, token create refusals', function () {
  this.timeout(120_000);
  let t: TestServer;
  let conn: string[];
  before(async () => {
    t = await startTestServer();
    conn = ['--socket', t.config.adminSocketPath];
  });
  after(async () => {
    await t.stop();
    fs.rmSync(t.dir, { recursive: true, force: true });
  });

  it('shows the one entry with a SPIFFE ID, all of them when several share it, and refuses an unknown one', async () => {
    const { entry: one } = await t.client.createEntry({
      entry: { spiffeId: `${TD}/show/one`, selectors: [{ type: 'unix', value: 'uid:1' }] },
    });
    const byId = ok(await runCli(['entry', 'show', `${TD}/show/one`, ...conn])).stdout;
    assert.match(byId, new RegExp(`^ID:\\s+${one!.id}$`, 'm'));
    const json = JSON.parse(
      ok(await runCli(['entry', 'show', `${TD}/show/one`, ...conn, '--json'])).stdout,
    ) as {
      id: string;
    };
    assert.equal(json.id, one!.id);

    const { entry: twin } = await t.client.createEntry({
      entry: {
        spiffeId: `${TD}/show/one`,
        parentId: `${TD}/node/a`,
        selectors: [{ type: 'unix', value: 'uid:2' }],
      },
    });
    // A prefix of another ID is not that ID.
    await t.client.createEntry({
      entry: { spiffeId: `${TD}/show/one-more`, selectors: [{ type: 'unix', value: 'uid:3' }] },
    });
    const both = ok(await runCli(['entry', 'show', `${TD}/show/one`, ...conn])).stdout;
    assert.match(both, /^2 entries have spiffe:\/\/lanyard\.local\/show\/one$/m);
    assert.ok(both.includes(one!.id) && both.includes(twin!.id), both);
    assert.ok(!both.includes('one-more'), both);
    const bothJson = JSON.parse(
      ok(await runCli(['entry', 'show', `${TD}/show/one`, ...conn, '--json'])).stdout,
    ) as { entries: { id: string }[] };
    assert.deepEqual(bothJson.entries.map((e) => e.id).sort(), [one!.id, twin!.id].sort());

    const none = await runCli(['entry', 'show', `${TD}/show/nobody`, ...conn]);
    assert.equal(none.code, EXIT_REJECTED);
    assert.equal(none.stdout, '');
    assert.match(
      none.stderr,
      /ERR_NOT_FOUND: no registration entry has SPIFFE ID spiffe:\/\/lanyard\.local\/show\/nobody/,
    );
    const malformed = await runCli(['entry', 'show', 'spiffe://Bad Domain/x', ...conn]);
    assert.equal(malformed.code, EXIT_USAGE);
  });

  it('entry list has a parent-ID column, and --json a parentId field', async () => {
    await t.client.createEntry({
      entry: {
        spiffeId: `${TD}/list/child`,
        parentId: `${TD}/node/list`,
        selectors: [{ type: 'unix', value: 'uid:7' }],
      },
    });
    await t.client.createEntry({
      entry: { spiffeId: `${TD}/list/direct`, selectors: [{ type: 'unix', value: 'uid:8' }] },
    });
    const table = ok(await runCli(['entry', 'list', ...conn, '--spiffe-id-prefix', `${TD}/list/`])).stdout;
    assert.match(table, /^ID\s+SPIFFE ID\s+PARENT ID\s+SELECTORS\s+TTL\s+REV$/m);
    assert.match(
      table,
      /spiffe:\/\/lanyard\.local\/list\/child\s+spiffe:\/\/lanyard\.local\/node\/list\s+unix:uid:7/,
    );
    assert.match(table, /spiffe:\/\/lanyard\.local\/list\/direct\s+-\s+unix:uid:8/);
    const json = JSON.parse(
      ok(await runCli(['entry', 'list', ...conn, '--json', '--spiffe-id-prefix', `${TD}/list/`])).stdout,
    ) as { entries: { spiffeId: string; parentId: string | null }[] };
    const parents = Object.fromEntries(json.entries.map((e) => [e.spiffeId, e.parentId]));
    assert.deepEqual(parents, { [`${TD}/list/child`]: `${TD}/node/list`, [`${TD}/list/direct`]: null });
  });

  it('token create for a SPIFFE ID no entry has is refused with ERR_NOT_FOUND and prints no token', async () => {
    const r = await runCli(['token', 'create', ...conn, '--spiffe-id', `${TD}/agents/nobody`]);
    assert.equal(r.code, EXIT_REJECTED);
    assert.equal(r.stdout, '', 'no token printed');
    assert.match(
      r.stderr,
      /ERR_NOT_FOUND: .*no unexpired registration entry without a parent_id has spiffe:\/\/lanyard\.local\/agents\/nobody.*create the entry first/,
    );
  });

  it('entry create without --selector makes a join-token-only entry; under a --parent-id it is refused', async () => {
    const spiffeId = `${TD}/agents/token-only`;
    const created = JSON.parse(
      ok(await runCli(['entry', 'create', ...conn, '--json', '--spiffe-id', spiffeId])).stdout,
    ) as { id: string; selectors: unknown[]; parentId: string | null };
    assert.deepEqual(created.selectors, []);
    assert.equal(created.parentId, null);

    const token = ok(await runCli(['token', 'create', ...conn, '--spiffe-id', spiffeId])).stdout.trim();
    const pub = connectPublic(t.running.publicAddress, t.running.ca.bundle().toPem(), 'lanyard.local');
    try {
      const r = await attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(token),
        csr: newKey().csr,
      });
      assert.equal(r.svid?.spiffeId, spiffeId);
      assert.equal(r.svid?.entryId, created.id);
    } finally {
      pub.close();
    }

    // A node agent hands out entries by selector, so one under a parent must have selectors.
    const underParent = await runCli([
      'entry',
      'create',
      ...conn,
      '--spiffe-id',
      `${TD}/agents/orphan`,
      '--parent-id',
      `${TD}/node/a`,
    ]);
    assert.equal(underParent.code, EXIT_USAGE, underParent.stderr);
    assert.match(
      underParent.stderr,
      /entry\.selectors: at least one selector is required for an entry under a node agent/,
    );
    // Nor can a selector-less entry be moved under one afterwards; it stays as it was.
    const moved = await runCli(['entry', 'update', created.id, ...conn, '--parent-id', `${TD}/node/a`]);
    assert.equal(moved.code, EXIT_USAGE, moved.stderr);
    assert.match(moved.stderr, /at least one selector is required for an entry under a node agent/);
    const after = JSON.parse(ok(await runCli(['entry', 'show', created.id, ...conn, '--json'])).stdout) as {
      parentId: string | null;
      revision: number;
    };
    assert.equal(after.parentId, null);
    assert.equal(after.revision, 1);
  });

  it('svid fetch with a bundle that does not vouch for the server says so, and writes nothing', async () => {
    const { entry } = await t.client.createEntry({
      entry: { spiffeId: `${TD}/agents/fetcher`, selectors: [{ type: 'unix', value: 'uid:77' }] },
    });
    const { token } = await t.client.createJoinToken({ entryId: entry!.id });
    const dir = fs.mkdtempSync(path.join(t.dir, 'fetch-'));
    // Same trust domain, another root: exactly the "bundle from the wrong server" mistake.
    fs.writeFileSync(path.join(dir, 'other.pem'), createPki('lanyard.local').bundle.toPem());
    fs.writeFileSync(path.join(dir, 'token'), token);
    const out = path.join(dir, 'out');
    const fetchWith = (bundle: string, server = t.running.publicAddress): Promise<CliResult> =>
      runCli([
        'svid',
        'fetch',
        '--server',
        server,
        '--bundle',
        path.join(dir, bundle),
        '--join-token-file',
        path.join(dir, 'token'),
        '--out',
        out,
      ]);
    const r = await fetchWith('other.pem');
    assert.equal(r.code, EXIT_REJECTED);
    assert.match(
      r.stderr,
      new RegExp(
        `^lanyard: ERR_UNKNOWN_AUTHORITY: the server at ${t.running.publicAddress.replace(/\./g, '\\.')} presented a certificate the --bundle does not vouch for`,
      ),
    );
    assert.doesNotMatch(r.stderr, /UNAVAILABLE|Resolution note/);
    assert.ok(!fs.existsSync(out), 'nothing written');

    // Nobody listening is told apart from a distrusted server.
    const closed = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    fs.writeFileSync(path.join(dir, 'right.pem'), t.running.ca.bundle().toPem());
    const down = await fetchWith('right.pem', `127.0.0.1:${closed}`);
    assert.equal(down.code, EXIT_REJECTED);
    assert.match(
      down.stderr,
      new RegExp(`cannot reach the Lanyard server at 127\\.0\\.0\\.1:${closed}: ECONNREFUSED`),
    );

    // The token was not spent by the refused attempts: the right bundle still works.
    ok(await fetchWith('right.pem'));
    assert.ok(fs.existsSync(path.join(out, 'svid.pem')));
  });

  it('refuses a duration without a unit (exit 2) and creates nothing', async () => {
    const { entry } = await t.client.createEntry({
      entry: { spiffeId: `${TD}/agents/ttl`, selectors: [{ type: 'unix', value: 'uid:88' }] },
    });
    const bare = await runCli(['token', 'create', ...conn, '--entry-id', entry!.id, '--ttl', '10']);
    assert.equal(bare.code, EXIT_USAGE);
    assert.equal(bare.stdout, '');
    assert.match(bare.stderr, /--ttl: "10" has no unit: write 10s, 10m, 10h or 10d/);
    const entryTtl = await runCli([
      'entry',
      'create',
      ...conn,
      '--spiffe-id',
      `${TD}/agents/ttl2`,
      '--ttl',
      '600',
    ]);
    assert.equal(entryTtl.code, EXIT_USAGE);
    assert.match(entryTtl.stderr, /--ttl: "600" has no unit/);
    const listed = JSON.parse(
      ok(await runCli(['entry', 'list', ...conn, '--json', '--spiffe-id-prefix', `${TD}/agents/ttl2`]))
        .stdout,
    ) as { entries: unknown[] };
    assert.deepEqual(listed.entries, []);
    ok(await runCli(['token', 'create', ...conn, '--entry-id', entry!.id, '--ttl', '10s']));
  });
});
