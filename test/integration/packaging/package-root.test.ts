/**
 * What a service imports from lanyard/policy, and that importing it (or the server) costs nothing
 * until a policy is used: the Cedar WebAssembly module loads on first use only.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as lanyard from '../../../src/entry/policy';
import { REPO_ROOT } from '../../support/paths';

const ROOT = REPO_ROOT;

describe('policy: lanyard/policy and lazy loading', function () {
  this.timeout(60_000);

  it('lanyard/policy exports the engine, the hop hook and the schema', () => {
    for (const name of [
      'PolicyEngine',
      'PolicySet',
      'cedarHopPolicy',
      'compilePolicies',
      'readPolicyFiles',
    ] as const) {
      assert.equal(typeof lanyard[name], 'function', `${name} is exported`);
    }
    assert.match(lanyard.LANYARD_CEDAR_SCHEMA, /^namespace Lanyard/);
  });

  it('importing lanyard/policy and the server does not load Cedar; compiling a policy does', async () => {
    const script = `
      const loaded = () => Object.keys(require.cache).some((k) => k.includes('cedar_wasm'));
      const policy = require('./src/entry/policy');
      require('./src/server/run');
      const before = loaded();
      policy.compilePolicies([{ path: 'inline.cedar', text: 'permit (principal, action, resource);' }]);
      process.stdout.write(JSON.stringify({ before, after: loaded() }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
      cwd: ROOT,
    });
    assert.deepEqual(JSON.parse(stdout), { before: false, after: true });
  });
});
