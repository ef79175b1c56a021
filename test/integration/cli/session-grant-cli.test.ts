/**
 * `lanyard session start|show|list|end`, `lanyard grant key|create|redeem` and the delegation tree of
 * `svid inspect`, as a script drives them against a real server: identities are directories (svid.pem,
 * svid_key.pem 0600, bundle.pem), every command has --json, and refusals exit 1 with their stable code (bad
 * input exits 2).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSvidFiles } from '../../../src/ca/dev-ca';
import { EXIT_REJECTED, EXIT_USAGE } from '../../../src/cli/exit-codes';
import { X509Bundle } from '../../../src/bundle';
import { TrustDomain } from '../../../src/spiffe';
import { toX509Svid } from '../../../src/svid/x509-svid';
import { register, id } from '../../support/sessions';
import { cliOk, runCli, type CliResult } from '../../support/server-process';
import { startTestServer, type TestServer } from '../../support/test-server';
import { tempDir } from '../../support/tmp';

function refused(r: CliResult, exit: number, code: RegExp): void {
  assert.equal(r.code, exit, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.match(r.stderr, code);
}

describe('lanyard session and grant commands', function () {
  this.timeout(300_000);
  let t: TestServer;
  let dir: string;
  let server: string;
  let admin: string[];
  let sessionId: string;

  /** An attested workload's SVID written as an identity directory. */
  async function identity(name: string, fields: Record<string, unknown>): Promise<string> {
    const agent = await register(t, name, fields);
    const out = path.join(dir, `${name}-wl`);
    writeSvidFiles(
      out,
      toX509Svid(agent.chain, agent.key),
      X509Bundle.fromPem(TrustDomain.parse('lanyard.local'), t.running.ca.bundle().toPem()),
    );
    return out;
  }

  let planner: string;
  let tool: string;

  before(async () => {
    t = await startTestServer();
    dir = tempDir('session-cli');
    server = t.running.publicAddress;
    admin = ['--socket', t.config.adminSocketPath];
    planner = await identity('planner', {
      allowedScopes: ['docs:read', 'tools:run'],
      allowedDelegates: [id('tool-runner')],
      maxDelegationDepth: 2,
      canAssertPrincipal: true,
    });
    tool = await identity('tool-runner', { allowedScopes: ['docs:read'], maxDelegationDepth: 1 });
  });
  after(async () => {
    await t.stop();
  });

  /** `lanyard grant key` into dir/name: the key's SHA-256 (the grant id) and its file. */
  async function grantKey(name: string): Promise<{ keySha256: string; file: string }> {
    const out = path.join(dir, name);
    return JSON.parse(cliOk(await runCli(['grant', 'key', '--out', out, '--json'])).stdout) as {
      keySha256: string;
      file: string;
    };
  }

  /** `lanyard grant create` by the planner's session (dir/session) for tool-runner's key. */
  function grantCreate(keySha256: string, scope: string, ...extra: string[]): Promise<CliResult> {
    return runCli([
      'grant',
      'create',
      '--server',
      server,
      '--identity',
      path.join(dir, 'session'),
      '--child',
      id('tool-runner'),
      '--child-key',
      keySha256,
      '--scope',
      scope,
      ...extra,
    ]);
  }

  /** `lanyard grant redeem` as tool-runner, writing the delegated SVID to `out`. */
  function grantRedeem(keyFile: string, out: string, ...extra: string[]): Promise<CliResult> {
    return runCli([
      'grant',
      'redeem',
      '--server',
      server,
      '--identity',
      tool,
      '--key',
      keyFile,
      '--out',
      out,
      ...extra,
    ]);
  }

  it('session start writes the session SVID (key 0600) for the principal; show and list find it', async () => {
    const out = path.join(dir, 'session');
    const r = cliOk(
      await runCli([
        'session',
        'start',
        '--server',
        server,
        '--identity',
        planner,
        '--out',
        out,
        '--principal',
        'alice',
        '--intent',
        'summarise docs',
        '--scope',
        'docs:read',
        'tools:run',
        'admin:all',
        '--ttl',
        '10m',
        '--json',
      ]),
    );
    const started = JSON.parse(r.stdout) as {
      sessionId: string;
      spiffeId: string;
      scopes: string[];
      sessionExpiresAt: string;
      files: { key: string };
    };
    sessionId = started.sessionId;
    assert.match(sessionId, /^s-[0-9a-f]+$/);
    assert.equal(started.spiffeId, id('planner'));
    assert.deepEqual(
      started.scopes,
      ['docs:read', 'tools:run'],
      'a scope the entry does not allow is dropped',
    );
    assert.ok(Date.parse(started.sessionExpiresAt) > Date.now() + 500_000, 'the session lasts the --ttl');
    assert.equal(fs.statSync(started.files.key).mode & 0o777, 0o600);

    const [show, list, text] = await Promise.all([
      runCli(['session', 'show', sessionId, ...admin, '--json']),
      runCli(['session', 'list', '--agent', id('planner'), '--live', ...admin, '--json']),
      runCli(['session', 'list', ...admin]),
    ]);
    const shown = JSON.parse(cliOk(show).stdout) as {
      state: string;
      principal: { id: string; provenance: string };
      intent: string;
      certSerials: string[];
    };
    assert.equal(shown.state, 'live');
    assert.equal(shown.principal.id, 'alice');
    assert.equal(shown.intent, 'summarise docs');
    assert.equal(shown.certSerials.length, 1);
    const listed = JSON.parse(cliOk(list).stdout) as { id: string }[];
    assert.deepEqual(
      listed.map((s) => s.id),
      [sessionId],
    );
    assert.match(
      cliOk(text).stdout,
      new RegExp(`^SESSION\\s+STATE.*\\n${sessionId}\\s+live\\s+${id('planner')}`, 'm'),
    );
  });

  it('grant key, grant create, grant redeem: the delegated SVID, whose chain svid inspect draws as a tree', async () => {
    const key = await grantKey('tool-key');
    assert.equal(fs.statSync(key.file).mode & 0o777, 0o600);
    const created = JSON.parse(cliOk(await grantCreate(key.keySha256, 'docs:read', '--json')).stdout) as {
      grantId: string;
    };
    assert.equal(created.grantId, key.keySha256);
    const out = path.join(dir, 'delegated');
    const redeemed = JSON.parse(cliOk(await grantRedeem(key.file, out, '--json')).stdout) as {
      sessionId: string;
      rootSessionId: string;
      chain: string[];
      scopes: string[];
    };
    assert.equal(redeemed.rootSessionId, sessionId);
    assert.deepEqual(redeemed.chain, [id('planner'), id('tool-runner')]);
    assert.deepEqual(redeemed.scopes, ['docs:read']);

    const [inspect, chainList, replay] = await Promise.all([
      runCli(['svid', 'inspect', path.join(out, 'svid.pem')]),
      runCli(['session', 'list', '--root', sessionId, ...admin, '--json']),
      // The same grant again: spent.
      grantRedeem(key.file, path.join(dir, 'again')),
    ]);
    const tree = cliOk(inspect).stdout;
    assert.match(
      tree,
      /Delegation tree \(1 hop before this certificate\):\n\s+alice \(principal, asserted-by:/,
    );
    assert.match(tree, new RegExp(`\\n {4}└─ ${id('planner')} .*session ${sessionId}\\n`));
    assert.match(
      tree,
      new RegExp(`\\n {7}└─ ${id('tool-runner')} .*session ${redeemed.sessionId} \\(this certificate\\)`),
    );
    assert.deepEqual(
      (JSON.parse(cliOk(chainList).stdout) as { id: string }[]).map((s) => s.id).sort(),
      [sessionId, redeemed.sessionId].sort(),
    );
    refused(replay, EXIT_REJECTED, /ERR_GRANT_REPLAYED/);
    assert.equal(fs.existsSync(path.join(dir, 'again')), false, 'nothing written for a refused redemption');
  });

  it('refuses: scope escalation, an expired grant, bad input (exit 2), an unknown session', async () => {
    const key = await grantKey('late-key');
    const create = (scope: string, ...extra: string[]): Promise<CliResult> =>
      grantCreate(key.keySha256, scope, ...extra);
    const [escalation, badKey, noIdentity, unknown] = await Promise.all([
      create('admin:all'),
      runCli([
        'grant',
        'create',
        '--server',
        server,
        '--identity',
        planner,
        '--child',
        id('x'),
        '--child-key',
        'zz',
        '--scope',
        'a',
      ]),
      runCli([
        'session',
        'start',
        '--server',
        server,
        '--identity',
        path.join(dir, 'nope'),
        '--out',
        path.join(dir, 'n'),
      ]),
      runCli(['session', 'show', 's-00000000000000000000000000000000', ...admin]),
    ]);
    refused(escalation, EXIT_REJECTED, /ERR_SCOPE_ESCALATION/);
    refused(badKey, EXIT_USAGE, /--child-key/);
    refused(noIdentity, EXIT_USAGE, /--identity .*no such directory/);
    refused(unknown, EXIT_REJECTED, /ERR_NOT_FOUND/);

    // Long enough to reach the server under load, short enough to wait out.
    cliOk(await create('docs:read', '--redeem-within', '5s'));
    await new Promise((r) => setTimeout(r, 6000));
    const late = await grantRedeem(key.file, path.join(dir, 'late'));
    refused(late, EXIT_REJECTED, /ERR_GRANT_EXPIRED/);
  });

  it('grant create --depth bounds the chain: shown in --json and session show, the child at its bound refused', async () => {
    const [parentWl, childWl, grandWl] = [
      await identity('cli-parent', {
        allowedScopes: ['docs:read'],
        maxDelegationDepth: 3,
        allowedDelegates: [id('cli-child')],
      }),
      await identity('cli-child', {
        allowedScopes: ['docs:read'],
        maxDelegationDepth: 3,
        allowedDelegates: [id('cli-grand')],
      }),
      await identity('cli-grand', {
        allowedScopes: ['docs:read'],
        maxDelegationDepth: 3,
        allowedDelegates: [id('cli-leaf')],
      }),
    ];
    const parent = path.join(dir, 'depth-parent');
    cliOk(
      await runCli([
        'session',
        'start',
        '--server',
        server,
        '--identity',
        parentWl,
        '--out',
        parent,
        '--scope',
        'docs:read',
      ]),
    );
    const newKey = async (name: string): Promise<{ keySha256: string; file: string }> =>
      JSON.parse(cliOk(await runCli(['grant', 'key', '--out', path.join(dir, name), '--json'])).stdout) as {
        keySha256: string;
        file: string;
      };
    const create = (identityDir: string, child: string, keySha256: string, ...extra: string[]) =>
      runCli([
        'grant',
        'create',
        '--server',
        server,
        '--identity',
        identityDir,
        '--child',
        id(child),
        '--child-key',
        keySha256,
        '--scope',
        'docs:read',
        ...extra,
      ]);
    const redeem = async (identityDir: string, keyFile: string, out: string): Promise<string> =>
      (
        JSON.parse(
          cliOk(
            await runCli([
              'grant',
              'redeem',
              '--server',
              server,
              '--identity',
              identityDir,
              '--key',
              keyFile,
              '--out',
              out,
              '--json',
            ]),
          ).stdout,
        ) as { sessionId: string }
      ).sessionId;

    const childKey = await newKey('depth-child-key');
    const [negative, fraction, word, wide] = await Promise.all([
      create(parent, 'cli-child', childKey.keySha256, '--depth=-1'),
      create(parent, 'cli-child', childKey.keySha256, '--depth', '1.5'),
      create(parent, 'cli-child', childKey.keySha256, '--depth', 'one'),
      // The root may go 3 hops; its child, one of them, may go 2 further at most.
      create(parent, 'cli-child', childKey.keySha256, '--depth', '3'),
    ]);
    for (const bad of [negative, fraction, word]) {
      refused(bad, EXIT_USAGE, /--depth must be a non-negative integer/);
    }
    refused(wide, EXIT_REJECTED, /ERR_DELEGATION_TOO_DEEP/);

    // Nothing was written: the same key is granted now, with a bound the parent may give.
    const granted = JSON.parse(
      cliOk(await create(parent, 'cli-child', childKey.keySha256, '--depth', '1', '--json')).stdout,
    ) as { grantId: string; maxDepth: number };
    assert.equal(granted.maxDepth, 1);
    const child = path.join(dir, 'depth-child');
    const childSession = await redeem(childWl, childKey.file, child);
    const [shownJson, shownText] = await Promise.all([
      runCli(['session', 'show', childSession, ...admin, '--json']),
      runCli(['session', 'show', childSession, ...admin]),
    ]);
    const shown = JSON.parse(cliOk(shownJson).stdout) as { depth: number; depthLimit: number };
    assert.deepEqual([shown.depth, shown.depthLimit], [1, 2]);
    assert.match(cliOk(shownText).stdout, /^Depth:\s+1 of at most 2$/m);

    // The child delegates its one further hop; the grant says nothing is left below the grandchild.
    const grandKey = await newKey('depth-grand-key');
    const text = cliOk(await create(child, 'cli-grand', grandKey.keySha256)).stdout;
    assert.match(text, new RegExp(`^granted ${grandKey.keySha256}\n.*; no further delegation; redeem by`));
    const grand = path.join(dir, 'depth-grand');
    await redeem(grandWl, grandKey.file, grand);
    const leafKey = await newKey('depth-leaf-key');
    refused(await create(grand, 'cli-leaf', leafKey.keySha256), EXIT_REJECTED, /ERR_DELEGATION_TOO_DEEP/);
  });

  it('session end ends the chain; show says so', async () => {
    cliOk(await runCli(['session', 'end', sessionId, '--reason', 'task done', ...admin]));
    const shown = JSON.parse(
      cliOk(await runCli(['session', 'show', sessionId, ...admin, '--json'])).stdout,
    ) as {
      state: string;
      endReason: string;
    };
    assert.equal(shown.state, 'ended');
    assert.equal(shown.endReason, 'task done');
  });
});
