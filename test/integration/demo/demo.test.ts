/**
 * The demo as a person runs it, `npm run demo` (scripts/demo.ts over scripts/demo/run-demo.ts): it must exit 0
 * and print each step it checked; with policies that refuse the hop it must exit 1 naming the failed step. A
 * child process each, everything on 127.0.0.1; the demo is slow, so it runs twice in the suite and no more.
 * The demo is a script of the checkout: the built package ships no demo and `lanyard` has no demo command.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runProcess, type CliResult } from '../../support/server-process';
import { REPO_ROOT } from '../../support/paths';

const ROOT = REPO_ROOT;

/** What `npm run demo -- <args>` runs. */
function runDemo(args: string[] = []): Promise<CliResult> {
  const argv = ['--require', 'tsx/cjs', path.join(ROOT, 'scripts', 'demo.ts'), ...args];
  return runProcess(process.execPath, argv, {
    cwd: ROOT,
    ignoreStdin: true,
    env: { ...process.env, LANYARD_FROM_SOURCE: '1' },
  });
}

describe('demo: npm run demo', function () {
  this.timeout(120_000);

  it('--help explains what it runs', async () => {
    const { code, stdout } = await runDemo(['--help']);
    assert.equal(code, 0, stdout);
    assert.match(stdout, /Usage: npm run demo -- \[options\]/);
    assert.match(stdout, /--policy-dir <dir>/);
    assert.match(stdout, /--keep/);
    assert.match(stdout, /--federation/);
    assert.match(stdout, /alice -> planner -> tool-runner -> service-a/);
    assert.match(stdout, /Nothing but loopback traffic/);
  });

  it('runs every step on loopback and exits 0', async () => {
    const { code, stdout, stderr } = await runDemo();
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    const version = /policy (sha256:[0-9a-f]{32}) \(/.exec(stdout)?.[1];
    assert.ok(version, stdout);
    for (const line of [
      / ✔ server started/,
      / ✔ planner started a task session for alice/,
      /scopes \[tickets:read, tools:run\]; payments:refund withheld by policy no-refunds-in-sessions/,
      /service-b: POST \/tickets\/summary from spiffe:\/\/lanyard\.local\/services\/service-a/,
      /chain: {2}alice \(verified by https:\/\/idp\.demo\.local\) -> planner \(session s-[0-9a-f]+…\) -> tool-runner \(session s-[0-9a-f]+…\) -> service-a \(session s-[0-9a-f]+…\)/,
      new RegExp(`policy: allow by service-b-serves-a-on-behalf-of-tool-runner \\(${version}\\)`),
      / ✔ planner ended the session/,
      /refused: UNAUTHENTICATED ERR_REVOKED: .*has ended \(task done\)/,
      / ✔ the next call to service-a is refused/,
      /chain spiffe:\/\/lanyard\.local\/services\/service-a: 3 new records stored/,
      // Signed through its last record, and the witness outside the database agrees.
      /chain spiffe:\/\/lanyard\.local\/lanyard\/server: OK, (\d+) records, \d+ checkpoints; signed through \1 at \S+; \d+ checkpoints held by 1 witness agree/,
      /chain spiffe:\/\/lanyard\.local\/services\/service-b: OK, 1 records/,
      /\$ lanyard audit trace --session s-[0-9a-f]+/,
      /principal alice \(https:\/\/idp\.demo\.local\)/,
      /hop\.decision {2}DENY ERR_REVOKED {2}at spiffe:\/\/lanyard\.local\/services\/service-a/,
      /Demo passed: every step behaved as expected\./,
    ]) {
      assert.match(stdout, line);
    }
    assert.doesNotMatch(stdout, /✘/);
    // The temp dir it named is gone.
    const dir = /files in (\S+)/.exec(stdout)?.[1];
    assert.ok(dir !== undefined && !fs.existsSync(dir), `${dir} left behind`);
  });

  it('exits 1 naming the step when the policies refuse the hop', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-demo-policy-'));
    try {
      // Issuance as in the example, but no permit for any call: service A refuses the tool-runner.
      fs.copyFileSync(
        path.join(ROOT, 'examples', 'policy', 'issuance.cedar'),
        path.join(dir, 'issuance.cedar'),
      );
      const { code, stdout } = await runDemo(['--policy-dir', dir]);
      assert.equal(code, 1, stdout);
      assert.match(stdout, / ✘ tool-runner got a key from service-a/);
      // The first call to A is the key request of the handoff: the policy refuses it like any other call.
      assert.match(
        stdout,
        /Demo FAILED: tool-runner got a key from service-a, .*: PERMISSION_DENIED ERR_POLICY_DENIED: policy denied spiffe:\/\/lanyard\.local\/agents\/tool-runner for \/lanyard\.v1\.HandoffService\/OfferKey: no policy permits it/,
      );
      assert.doesNotMatch(stdout, /Demo passed/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--federation: the chain crosses from a.demo to b.demo, and a replay and a forged link are refused', async () => {
    const { code, stdout, stderr } = await runDemo(['--federation']);
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /b\.demo federates with a\.demo/);
    assert.match(
      stdout,
      /chain: alice → spiffe:\/\/a\.demo\/planner → spiffe:\/\/b\.demo\/tool-runner → spiffe:\/\/b\.demo\/service/,
    );
    assert.match(stdout, /principal alice, scopes docs:read/);
    assert.match(stdout, /✔ the same grant redeemed again is refused: ERR_GRANT_REPLAYED/);
    assert.match(stdout, /✔ an A link forged by b\.demo's CA .* ERR_CONTEXT_FOREIGN_DOMAIN/);
    assert.match(stdout, /Demo passed/);
    assert.doesNotMatch(stdout, /✘/);
  });
});
