/**
 * --agent-context-oid and LANYARD_AGENT_CONTEXT_OID on the commands that write or read an SVID's agent context
 * (svid mint, inspect, verify; server run), as a person runs them: the flag wins over the environment, a
 * mismatch is a rejection (exit 1) naming both OIDs, a malformed or too large OID a usage error (exit 2).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_AGENT_CONTEXT_OID } from '../../../src/x509/agent-context/oid';
import { runCli, type CliResult } from '../../support/server-process';

const CUSTOM = '1.3.6.1.4.1.99999.5.1';
const ID = 'spiffe://example.org/agent/planner';

describe('cli: --agent-context-oid / LANYARD_AGENT_CONTEXT_OID', function () {
  // Each command is a fresh node process running the TypeScript sources.
  this.timeout(180_000);
  let dir: string;
  const lanyard = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> =>
    runCli(args, { LANYARD_AGENT_CONTEXT_OID: '', ...env }, dir);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lanyard-cli-oid-'));
    writeFileSync(
      join(dir, 'ctx.json'),
      JSON.stringify({
        agentId: 'planner-7',
        sessionId: 'sess-1',
        principal: { id: 'alice', issuer: 'https://idp.example.com', provenance: 'verified' },
        scopes: ['tickets:read'],
      }),
    );
    assert.equal((await lanyard(['ca', 'init', '--trust-domain', 'example.org', '--out', 'ca'])).code, 0);
    const mint = await lanyard([
      'svid',
      'mint',
      '--ca',
      'ca',
      '--id',
      ID,
      '--context',
      'ctx.json',
      '--out',
      'custom',
      '--agent-context-oid',
      CUSTOM,
    ]);
    assert.equal(mint.code, 0, mint.stderr);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('mint writes the context under the OID given; inspect reads it with the flag or the environment', async () => {
    const json = await lanyard([
      'svid',
      'inspect',
      'custom/svid.pem',
      '--json',
      '--agent-context-oid',
      CUSTOM,
    ]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal((JSON.parse(json.stdout) as { context: { agentId: string } }).context.agentId, 'planner-7');
    const fromEnv = await lanyard(['svid', 'inspect', 'custom/svid.pem', '--json'], {
      LANYARD_AGENT_CONTEXT_OID: CUSTOM,
    });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    // The flag wins over the environment.
    const flagWins = await lanyard(
      ['svid', 'inspect', 'custom/svid.pem', '--agent-context-oid', DEFAULT_AGENT_CONTEXT_OID],
      { LANYARD_AGENT_CONTEXT_OID: CUSTOM },
    );
    assert.equal(flagWins.code, 1);
  });

  it('a command on another OID refuses the SVID (exit 1), naming both OIDs', async () => {
    const inspect = await lanyard(['svid', 'inspect', 'custom/svid.pem']);
    assert.equal(inspect.code, 1);
    assert.match(inspect.stderr, /ERR_AGENT_CONTEXT_OID_MISMATCH/);
    assert.ok(inspect.stderr.includes(CUSTOM) && inspect.stderr.includes(DEFAULT_AGENT_CONTEXT_OID));

    const verify = await lanyard([
      'svid',
      'verify',
      '--chain',
      'custom/svid.pem',
      '--bundle',
      'custom/bundle.pem',
      '--json',
    ]);
    assert.equal(verify.code, 1);
    const body = JSON.parse(verify.stdout) as { valid: boolean; code: string; message: string };
    assert.equal(body.valid, false);
    assert.equal(body.code, 'ERR_AGENT_CONTEXT_OID_MISMATCH');
    assert.ok(body.message.includes(CUSTOM));

    const ok = await lanyard([
      'svid',
      'verify',
      '--chain',
      'custom/svid.pem',
      '--bundle',
      'custom/bundle.pem',
      '--agent-context-oid',
      CUSTOM,
    ]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^OK: spiffe:\/\/example\.org\/agent\/planner/);
  });

  it('a malformed OID, or one with an arc of 2^28 or more, is a usage error (exit 2) naming where it came from', async () => {
    for (const [args, env, where] of [
      [
        ['svid', 'inspect', 'custom/svid.pem', '--agent-context-oid', '1.3.6.1.4.1.268435456'],
        {},
        '--agent-context-oid',
      ],
      [
        [
          'svid',
          'verify',
          '--chain',
          'custom/svid.pem',
          '--bundle',
          'custom/bundle.pem',
          '--agent-context-oid',
          'x',
        ],
        {},
        '--agent-context-oid',
      ],
      [
        ['svid', 'inspect', 'custom/svid.pem'],
        { LANYARD_AGENT_CONTEXT_OID: '2.25.31710684403515015008777295008216665364' },
        'LANYARD_AGENT_CONTEXT_OID',
      ],
      [
        ['server', 'run', '--data-dir', 'data', '--agent-context-oid', '1.3.6.1.4.1.2147483648'],
        {},
        '--agent-context-oid',
      ],
    ] as const) {
      const r = await lanyard([...args], env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.includes(where), r.stderr);
    }
  });
});
