/**
 * Proves the built package (CI runs it after npm run build): what a consumer gets from `lanyard` and its
 * subpath exports, and what `lanyard` the command runs, is dist/ and matches the sources. Tests import
 * ../src and force LANYARD_FROM_SOURCE, so nothing else exercises main/exports/types or bin-over-dist.
 * Exits 1 naming every failed check.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import * as source from '../src';
import { buildProgram } from '../src/cli/main';

const root = join(__dirname, '..');
const dist = join(root, 'dist');
// Resolves as a file of this package would: `lanyard` is then the package itself, through its "exports".
const requireHere = createRequire(join(root, 'package.json'));
const failures: string[] = [];
const check = (ok: boolean, what: string): void => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
};
const attempt = (what: string, fn: () => boolean): void => {
  try {
    check(fn(), what);
  } catch (e) {
    check(false, `${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
};

for (const file of ['index.js', 'index.d.ts', 'cli/main.js', 'hop/express.d.ts', '.build-stamp']) {
  check(existsSync(join(dist, file)), `dist/${file} exists`);
}

attempt("require('lanyard') is dist/index.js and exports what src/index.ts does", () => {
  if (requireHere.resolve('lanyard') !== join(dist, 'index.js')) return false;
  const built = requireHere('lanyard') as Record<string, unknown>;
  const missing = Object.keys(source).filter((name) => !(name in built));
  if (missing.length > 0) throw new Error(`missing: ${missing.join(', ')}`);
  const api = [
    'verifyX509Svid',
    'SpiffeId',
    'TrustDomain',
    'X509Bundle',
    'parseSpiffeBundle',
    'attestToServer',
  ];
  return api.every((name) => typeof built[name] === 'function');
});

for (const sub of ['lanyard/hop/express', 'lanyard/hop/fastify']) {
  attempt(`require('${sub}') resolves into dist/ and exports something`, () => {
    const file = requireHere.resolve(sub);
    return file.startsWith(dist) && Object.keys(requireHere(sub) as object).length > 0;
  });
}

attempt('deep imports stay closed (lanyard/dist/index.js)', () => {
  try {
    requireHere.resolve('lanyard/dist/index.js');
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ERR_PACKAGE_PATH_NOT_EXPORTED';
  }
});

// bin/lanyard.js as a user runs it: it must pick dist/ (just built) and list every command group src has.
const env = { ...process.env };
delete env.LANYARD_FROM_SOURCE;
const probe = spawnSync(
  process.execPath,
  [
    '-e',
    `process.on('exit', () => {
       const loaded = Object.keys(require.cache);
       process.stderr.write('\\nLOADED ' + JSON.stringify({
         dist: loaded.includes(${JSON.stringify(join(dist, 'cli', 'main.js'))}),
         ts: loaded.some((f) => f.endsWith('.ts')),
       }) + '\\n');
     });
     process.argv = [process.argv[0], 'lanyard', '--help'];
     require(${JSON.stringify(join(root, 'bin', 'lanyard.js'))});`,
  ],
  { cwd: root, env, encoding: 'utf8' },
);
const loaded = /LOADED (.*)/.exec(probe.stderr)?.[1];
check(
  probe.status === 0 && loaded === JSON.stringify({ dist: true, ts: false }),
  `bin/lanyard.js --help runs dist/cli/main.js, not the sources (exit ${probe.status}, ${loaded ?? probe.stderr})`,
);
const groups = buildProgram().commands.map((c) => c.name());
const listed = groups.filter((name) => new RegExp(`^  ${name}\\b`, 'm').test(probe.stdout));
check(
  groups.length > 0 && listed.length === groups.length,
  `bin/lanyard.js --help lists every command group (${groups.filter((g) => !listed.includes(g)).join(', ') || groups.join(', ')})`,
);

if (failures.length > 0) {
  console.error(`check-dist: ${failures.length} check(s) failed`);
  process.exit(1);
}
