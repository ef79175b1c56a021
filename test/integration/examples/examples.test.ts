/**
 * The runnable examples/ as a user runs them: each a separate Node process importing only the public entry
 * points (`lanyard`, `lanyard/client`, ...) of the built package, against a real server on loopback with
 * entries and join tokens registered as an operator would. Asserts on what each prints.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureBuilt, REPO_ROOT } from '../../support/built-package';
import { runProcess, type CliResult } from '../../server/server-process';
import { startTestServer, type TestServer } from '../../server/helpers';

describe('examples/ against a real server', function () {
  this.timeout(300_000);
  let server: TestServer;
  let bundleFile: string;
  let td: string;
  const id = (p: string): string => `spiffe://${td}/${p}`;

  before(async () => {
    ensureBuilt();
    server = await startTestServer();
    td = server.config.trustDomain;
    bundleFile = path.join(server.dir, 'bundle.pem');
    fs.writeFileSync(bundleFile, server.running.ca.bundle().toPem());
  });
  after(() => server?.stop());

  /** An entry (join-token attestation) and a single-use token for it, as `entry create` and `token create` make. */
  async function token(name: string, fields: Record<string, unknown> = {}): Promise<string> {
    const { entry } = await server.client.createEntry({
      entry: { spiffeId: id(name), selectors: [{ type: 'unix', value: `name:${name}` }], ...fields },
    });
    return (await server.client.createJoinToken({ entryId: entry!.id })).token;
  }

  function run(example: string, tokens: Record<string, string>): Promise<CliResult> {
    return runProcess(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'examples', example)], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        LANYARD_SERVER: server.running.publicAddress,
        LANYARD_TRUST_DOMAIN: td,
        LANYARD_BUNDLE: bundleFile,
        ...Object.fromEntries(Object.entries(tokens).map(([k, v]) => [`LANYARD_TOKEN_${k}`, v])),
      },
    });
  }

  it('express-service: serves the reader with orders:read, refuses the agent without it (403)', async () => {
    const r = await run('express-service.ts', {
      SERVICE: await token('services/orders'),
      READER: await token('agents/reader', { allowedScopes: ['orders:read'] }),
      OTHER: await token('agents/other'),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^orders service ${id('services/orders')} on https://127\\.0\\.0\\.1:\\d+$`, 'm'),
    );
    const reader = new RegExp(`^as ${id('agents/reader')}: 200 (.*)$`, 'm').exec(r.stdout);
    assert.ok(reader, r.stdout);
    assert.deepEqual(JSON.parse(reader[1]!), {
      order: '42',
      servedTo: id('agents/reader'),
      scopes: ['orders:read'],
    });
    const other = new RegExp(`^as ${id('agents/other')}: 403 (.*)$`, 'm').exec(r.stdout);
    assert.ok(other, r.stdout);
    assert.equal((JSON.parse(other[1]!) as { error: { code: string } }).error.code, 'ERR_UNAUTHORIZED');
  });

  it('grpc-hop: the service sees the planner and its scopes; the planner gets the answer', async () => {
    const r = await run('grpc-hop.ts', {
      SERVICE: await token('services/search'),
      CALLER: await token('agents/planner', { allowedScopes: ['search:query'] }),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^service: ${id('agents/planner')} asked "open tickets" \\(scopes search:query\\)$`, 'm'),
    );
    assert.match(
      r.stdout,
      new RegExp(`^planner: ${id('services/search')} answered \\["result for open tickets"\\]$`, 'm'),
    );
  });

  it('delegation-handoff: the service verifies planner -> tool-runner from the delegated SVID', async () => {
    const r = await run('delegation-handoff.ts', {
      PLANNER: await token('agents/lead', {
        allowedScopes: ['tickets:read', 'tickets:write'],
        allowedDelegates: [id('agents/tool-runner')],
        maxDelegationDepth: 1,
      }),
      TOOL_RUNNER: await token('agents/tool-runner', { allowedScopes: ['tickets:read'] }),
      SERVICE: await token('services/tickets'),
    });
    assert.equal(r.code, 0, r.stderr);
    const session = /^planner: session (\S+), scopes tickets:read$/m.exec(r.stdout);
    assert.ok(session, r.stdout);
    assert.match(
      r.stdout,
      new RegExp(`^tool-runner: delegated SVID from ${id('agents/lead')} \\(session ${session[1]}\\)$`, 'm'),
    );
    assert.match(
      r.stdout,
      new RegExp(
        `^service: GET /tickets/open for ${id('agents/lead')} -> ${id('agents/lead')} -> ${id('agents/tool-runner')} \\(root session ${session[1]}\\)$`,
        'm',
      ),
    );
    assert.match(
      r.stdout,
      new RegExp(
        `^tool-runner: service answered 200 \\{"open":3,"actingFor":"${id('agents/lead')}"\\}$`,
        'm',
      ),
    );
  });
});
