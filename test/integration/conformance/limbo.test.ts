/**
 * C2SP x509-limbo through validateCertPath, with the conformance harness kept beside the project
 * (`../shared/conformance/limbo/`: limbo's testcases and `limbo-harness.cjs`, which classifies each testcase and
 * prints every false accept). The data is another project's and is not copied into this repository: without the
 * folder (a bare CI checkout) the test is skipped, saying so. LANYARD_CONFORMANCE_DIR points elsewhere.
 *
 * The harness loads "the library" with require(); here it is handed a small module that loads the sources
 * through tsx, so the test judges the sources as they are, never a dist/ left over from an earlier build.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { removeDir, tempDir } from '../../support/tmp';
import { REPO_ROOT } from '../../support/paths';

const REPO = REPO_ROOT;
const CONFORMANCE = process.env.LANYARD_CONFORMANCE_DIR ?? resolve(REPO, '..', 'shared', 'conformance');
const HARNESS = join(CONFORMANCE, 'limbo', 'limbo-harness.cjs');
const LIMBO_JSON = join(CONFORMANCE, 'limbo', 'limbo.json');

describe('x509-limbo conformance (../shared/conformance/limbo)', function () {
  // The whole run (~165 testcases, the library loaded from source) takes a few seconds; leave room on a busy host.
  this.timeout(180_000);
  let output = '';
  let status: number | null = null;
  let shim: string | undefined;

  before(function () {
    if (!existsSync(HARNESS) || !existsSync(LIMBO_JSON)) {
      console.log(
        `      skipped: no limbo harness at ${HARNESS} (conformance data lives outside the repository)`,
      );
      this.skip();
    }
    shim = tempDir('limbo-shim');
    // validateCertPath and checkSvidLeaf are internal since the root entry shrank (issue 14): the shim hands
    // the harness the root entry plus those two, from the modules that own them.
    const src = (...parts: string[]): string => JSON.stringify(join(REPO, 'src', ...parts));
    writeFileSync(
      join(shim, 'index.js'),
      [
        `const root = require(${src('index.ts')});`,
        `const { validateCertPath } = require(${src('verify', 'path-validation.ts')});`,
        `const { checkSvidLeaf } = require(${src('svid', 'rules.ts')});`,
        'module.exports = { ...root, validateCertPath, checkSvidLeaf };',
        '',
      ].join('\n'),
    );
    const run = spawnSync(
      process.execPath,
      ['--require', 'tsx/cjs', HARNESS, '--limbo', LIMBO_JSON, '--checkout', shim],
      { cwd: REPO, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    output = `${run.stdout}${run.stderr}`;
    status = run.status;
  });
  after(() => {
    if (shim !== undefined) removeDir(shim);
  });

  /** The report section that starts with `heading`, up to the next blank line. */
  const section = (heading: string): string => {
    const start = output.indexOf(heading);
    if (start < 0) return '';
    const end = output.indexOf('\n\n', start);
    return output.slice(start, end < 0 ? undefined : end);
  };

  it('has no gated false accept and no testcase over the time bound (the harness exit status)', () => {
    const summary = /^limbo: (\d+)\/(\d+) applicable agree, (\d+) false accepts$/m.exec(output);
    assert.ok(summary !== null, `the harness printed no summary:\n${output.slice(-4000)}`);
    assert.equal(summary[3], '0', section('False accepts (gated)'));
    assert.equal(status, 0, `harness exit status ${String(status)}:\n${output.slice(-4000)}`);
  });

  it('never sees the validator throw anything but a LanyardError', () => {
    assert.equal(section('Harness errors'), '');
  });
});
