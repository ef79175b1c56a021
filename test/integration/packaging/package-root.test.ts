/**
 * What a service imports from the package root for policy, and that importing it (or the server) costs nothing
 * until a policy is used: the Cedar WebAssembly module loads on first use only.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as lanyard from '../../../src';
import { REPO_ROOT } from '../../support/paths';

const ROOT = REPO_ROOT;

describe('policy: package root and lazy loading', function () {
  this.timeout(60_000);

  it('the root exports the engine, the hop hook and the schema', () => {
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

  it('importing the root and the server does not load Cedar; compiling a policy does', async () => {
    const script = `
      const loaded = () => Object.keys(require.cache).some((k) => k.includes('cedar_wasm'));
      const root = require('./src');
      require('./src/server/run');
      const before = loaded();
      root.compilePolicies([{ path: 'inline.cedar', text: 'permit (principal, action, resource);' }]);
      process.stdout.write(JSON.stringify({ before, after: loaded() }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
      cwd: ROOT,
    });
    assert.deepEqual(JSON.parse(stdout), { before: false, after: true });
  });
});
