/**
 * bin/lanyard.js chooses between dist/ and the sources. The real script runs in a scratch package whose
 * dist/ and src/ each hold a main() that says which one it is, so the choice is visible and nothing depends on
 * whether this checkout has been built.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../support/paths';

const REPO = REPO_ROOT;

describe('bin/lanyard.js: dist/ only when it is current', function () {
  this.timeout(30_000);
  let pkg: string;
  const stamp = () => join(pkg, 'dist', '.build-stamp');
  const setTime = (file: string, secondsAgo: number) => {
    const t = new Date(Date.now() - secondsAgo * 1000);
    utimesSync(file, t, t);
  };
  const run = (env: NodeJS.ProcessEnv = {}): string => {
    const childEnv = { ...process.env, ...env };
    if (env.LANYARD_FROM_SOURCE === undefined) delete childEnv.LANYARD_FROM_SOURCE;
    const r = spawnSync(process.execPath, [join(pkg, 'bin', 'lanyard.js'), 'x'], {
      cwd: tmpdir(),
      env: childEnv,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };

  beforeEach(() => {
    pkg = mkdtempSync(join(tmpdir(), 'lanyard-bin-'));
    for (const dir of ['bin', 'dist/cli', 'src/cli', 'src/x509'])
      mkdirSync(join(pkg, dir), { recursive: true });
    copyFileSync(join(REPO, 'bin', 'lanyard.js'), join(pkg, 'bin', 'lanyard.js'));
    copyFileSync(join(REPO, 'tsconfig.json'), join(pkg, 'tsconfig.json'));
    symlinkSync(join(REPO, 'node_modules'), join(pkg, 'node_modules'));
    const main = (from: string) =>
      `export async function main(argv: string[]): Promise<void> { process.stdout.write('${from} ' + argv.slice(2).join(' ') + '\\n'); }\n`;
    writeFileSync(join(pkg, 'src', 'cli', 'main.ts'), main('src'));
    writeFileSync(join(pkg, 'src', 'x509', 'pem.ts'), 'export const x = 1;\n');
    writeFileSync(
      join(pkg, 'dist', 'cli', 'main.js'),
      "exports.main = async (argv) => { process.stdout.write('dist ' + argv.slice(2).join(' ') + '\\n'); };\n",
    );
    writeFileSync(stamp(), 'built\n');
    for (const f of ['src/cli/main.ts', 'src/x509/pem.ts', 'dist/cli/main.js']) setTime(join(pkg, f), 60);
    setTime(stamp(), 30);
  });
  afterEach(() => rmSync(pkg, { recursive: true, force: true }));

  it('runs dist/ when the build stamp is newer than every source file', () => {
    assert.equal(run(), 'dist x');
  });

  it('runs the sources when any file under src/ changed after the build', () => {
    setTime(join(pkg, 'src', 'x509', 'pem.ts'), 1);
    assert.equal(run(), 'src x');
  });

  it('runs the sources when dist/ has no build stamp (built by something else, or half-built)', () => {
    rmSync(stamp());
    assert.equal(run(), 'src x');
  });

  it('runs the sources when LANYARD_FROM_SOURCE=1, however fresh dist/ is', () => {
    assert.equal(run({ LANYARD_FROM_SOURCE: '1' }), 'src x');
  });

  it('runs dist/ where tsx is not installed (a consumer install), even when src/ looks newer than the stamp', () => {
    // npm does not keep file times on install, so shipped sources can be younger than the stamp.
    rmSync(join(pkg, 'node_modules'));
    mkdirSync(join(pkg, 'node_modules'));
    setTime(join(pkg, 'src', 'x509', 'pem.ts'), 1);
    assert.equal(run(), 'dist x');
  });

  it('runs dist/ in an installed package, which ships no src/', () => {
    rmSync(join(pkg, 'src'), { recursive: true });
    assert.equal(run(), 'dist x');
  });
});
