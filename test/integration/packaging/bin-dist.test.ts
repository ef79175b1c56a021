/**
 * bin/lanyard.js chooses between dist/ and the sources from dist/.build-stamp alone (bin/build-stamp.js), never
 * by scanning src/. The real launcher and the real stamp script run in a scratch package whose dist/ and src/
 * each hold a main() that says which one it is, so the choice is visible and nothing depends on whether this
 * checkout has been built.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../support/paths';

const REPO = REPO_ROOT;

describe('bin/lanyard.js: dist/ only when its build stamp matches the package', function () {
  this.timeout(60_000);
  let pkg: string;
  const stamp = () => join(pkg, 'dist', '.build-stamp');
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
  const distMain =
    "exports.main = async (argv) => { process.stdout.write('dist ' + argv.slice(2).join(' ') + '\\n'); };\n";
  const stampStep = (step: string) =>
    execFileSync(process.execPath, ['--require', 'tsx/cjs', join(pkg, 'scripts', 'stamp-dist.ts'), step], {
      cwd: pkg,
    });
  /** npm run build: the real stamp script's two steps around a "compile" that writes dist/cli/main.js. */
  const build = () => {
    stampStep('begin');
    mkdirSync(join(pkg, 'dist', 'cli'), { recursive: true });
    writeFileSync(join(pkg, 'dist', 'cli', 'main.js'), distMain);
    stampStep('end');
  };
  const git = (...args: string[]) =>
    execFileSync('git', args, {
      cwd: pkg,
      encoding: 'utf8',
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: 't',
        GIT_AUTHOR_EMAIL: 't@example.org',
        GIT_COMMITTER_NAME: 't',
        GIT_COMMITTER_EMAIL: 't@example.org',
      },
    }).trim();
  const commit = (message: string) => {
    git('add', '-A');
    git('commit', '-q', '--allow-empty', '-m', message);
  };

  beforeEach(() => {
    pkg = mkdtempSync(join(tmpdir(), 'lanyard-bin-'));
    for (const dir of ['bin', 'scripts', 'dist/cli', 'src/cli'])
      mkdirSync(join(pkg, dir), { recursive: true });
    for (const file of ['bin/lanyard.js', 'bin/build-stamp.js', 'scripts/stamp-dist.ts', 'tsconfig.json'])
      copyFileSync(join(REPO, file), join(pkg, file));
    writeFileSync(join(pkg, 'package.json'), '{ "name": "lanyard", "version": "1.2.3" }\n');
    writeFileSync(join(pkg, '.gitignore'), 'node_modules\ndist\n');
    symlinkSync(join(REPO, 'node_modules'), join(pkg, 'node_modules'));
    const main = (from: string) =>
      `export async function main(argv: string[]): Promise<void> { process.stdout.write('${from} ' + argv.slice(2).join(' ') + '\\n'); }\n`;
    writeFileSync(join(pkg, 'src', 'cli', 'main.ts'), main('src'));
    writeFileSync(join(pkg, 'dist', 'cli', 'main.js'), distMain);
  });
  afterEach(() => rmSync(pkg, { recursive: true, force: true }));

  it('runs dist/ when it was built from this package version (no git checkout)', () => {
    build();
    assert.deepEqual(
      { version: '1.2.3', commit: null },
      (({ version, commit }) => ({ version, commit }))(JSON.parse(readFileSync(stamp(), 'utf8'))),
    );
    assert.equal(run(), 'dist x');
  });

  it('runs the sources when the package version changed since the build', () => {
    build();
    writeFileSync(join(pkg, 'package.json'), '{ "name": "lanyard", "version": "1.2.4" }\n');
    assert.equal(run(), 'src x');
  });

  it('runs the sources when dist/ has no build stamp (a failed or running build), or one of another format', () => {
    assert.equal(run(), 'src x');
    writeFileSync(stamp(), 'build started 2026-01-01T00:00:00Z\n'); // the old, time-based stamp
    assert.equal(run(), 'src x');
  });

  it('a build that starts empties dist/: no previous stamp, no module moved away since', () => {
    build();
    writeFileSync(join(pkg, 'dist', 'moved-away.js'), 'exports.x = 1;\n');
    stampStep('begin');
    assert.equal(existsSync(join(pkg, 'dist', 'moved-away.js')), false);
    assert.equal(run(), 'src x');
  });

  it('runs the sources when LANYARD_FROM_SOURCE=1, however current dist/ is', () => {
    build();
    assert.equal(run({ LANYARD_FROM_SOURCE: '1' }), 'src x');
  });

  it('in a git checkout: dist/ only at the commit it was built from', () => {
    git('init', '-q');
    commit('one');
    build();
    assert.equal(JSON.parse(readFileSync(stamp(), 'utf8')).commit, git('rev-parse', 'HEAD'));
    assert.equal(run(), 'dist x');
    commit('two'); // a git pull or a new commit: the build no longer answers for the sources
    assert.equal(run(), 'src x');
    build();
    assert.equal(run(), 'dist x');
    git('pack-refs', '--all'); // refs packed: the same commit is still found
    assert.equal(run(), 'dist x');
    git('checkout', '-q', '--detach', 'HEAD~1'); // detached at another commit
    assert.equal(run(), 'src x');
  });

  it('in a linked git worktree: HEAD is read through the .git file and the common dir', () => {
    git('init', '-q');
    commit('one');
    const linked = join(pkg, 'linked');
    git('worktree', 'add', '-q', '-b', 'side', linked);
    symlinkSync(join(REPO, 'node_modules'), join(linked, 'node_modules'));
    const prev = pkg;
    pkg = linked;
    try {
      build();
      assert.equal(JSON.parse(readFileSync(stamp(), 'utf8')).commit, git('rev-parse', 'HEAD'));
      assert.equal(run(), 'dist x');
      commit('on the side');
      assert.equal(run(), 'src x');
    } finally {
      pkg = prev;
    }
  });

  it('runs dist/ where tsx is not installed (a consumer install), even with a stamp that does not match', () => {
    build();
    writeFileSync(join(pkg, 'package.json'), '{ "name": "lanyard", "version": "9.9.9" }\n');
    rmSync(join(pkg, 'node_modules'));
    mkdirSync(join(pkg, 'node_modules'));
    assert.equal(run(), 'dist x');
  });

  it('runs dist/ in an installed package, which ships no src/', () => {
    build();
    rmSync(join(pkg, 'src'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), '{ "name": "lanyard", "version": "9.9.9" }\n');
    assert.equal(run(), 'dist x');
  });

  it('stamp-dist check says whether dist/ answers, and why not', () => {
    const check = () =>
      spawnSync(process.execPath, ['--require', 'tsx/cjs', join(pkg, 'scripts', 'stamp-dist.ts'), 'check'], {
        cwd: pkg,
        encoding: 'utf8',
      });
    let r = check();
    assert.equal(r.status, 1);
    assert.match(r.stdout, /stale: dist\/\.build-stamp is missing/);
    build();
    r = check();
    assert.equal(r.status, 0, r.stdout);
  });
});
