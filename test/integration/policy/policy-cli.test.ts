/**
 * `lanyard policy check` and `lanyard policy schema`, run as a person runs them (the CLI in a child process):
 * the version printed is the one the server writes into SVIDs; a broken file exits 1 naming file and line.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { compilePolicies, readPolicyFiles } from '../../../src/policy';
import { tempPolicyDir } from '../../policy/helpers';
import { removeDir } from '../../support/tmp';
import { BIN } from '../../support/paths';

const EXAMPLES = path.resolve(__dirname, '..', '..', '..', 'examples', 'policy');

async function lanyard(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], {
      env: { ...process.env, LANYARD_FROM_SOURCE: '1' },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('policy: lanyard policy check / schema', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  after(() => dirs.forEach(removeDir));

  it('check prints the version the server would put into SVIDs and every policy id with its file', async () => {
    const expected = compilePolicies(readPolicyFiles([EXAMPLES])).version;
    const { code, stdout } = await lanyard(['policy', 'check', EXAMPLES]);
    assert.equal(code, 0);
    assert.match(stdout, new RegExp(`^OK ${expected}: 6 policies from 2 files\\n`));
    assert.match(stdout, / {2}no-refunds-in-sessions {2}\(.*issuance\.cedar\)/);
    const json = await lanyard(['policy', 'check', '--json', path.join(EXAMPLES, 'hop.cedar')]);
    const parsed = JSON.parse(json.stdout) as { version: string; policies: Record<string, string> };
    assert.match(parsed.version, /^sha256:[0-9a-f]{32}$/);
    assert.deepEqual(Object.keys(parsed.policies).sort(), [
      'service-a-runs-tools-for-planned-work',
      'service-b-serves-a-on-behalf-of-tool-runner',
    ]);
  });

  it('check exits 1 with ERR_POLICY_INVALID naming the file, line and column', async () => {
    const d = tempPolicyDir({
      'typo.cedar': '\npermit (principal, action, resource)\nwhen { principal.rootPrincpal == "alice" };\n',
    });
    dirs.push(d);
    const { code, stdout, stderr } = await lanyard(['policy', 'check', d]);
    assert.equal(code, 1);
    assert.equal(stdout, '');
    assert.match(
      stderr,
      new RegExp(`^lanyard: ERR_POLICY_INVALID: ${path.join(d, 'typo.cedar')}:3:\\d+: policy "typo#1"`),
    );
    const missing = await lanyard(['policy', 'check', path.join(d, 'none.cedar')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /none\.cedar: cannot read/);
  });

  it('schema prints the schema policies are validated against', async () => {
    const { code, stdout } = await lanyard(['policy', 'schema']);
    assert.equal(code, 0);
    assert.match(stdout, /^namespace Lanyard \{/);
    assert.match(stdout, /action issue appliesTo/);
    assert.ok(fs.existsSync(EXAMPLES));
  });
});
