/**
 * Proves the built package (CI runs it after npm ci, whose prepare step builds dist/): what a consumer gets
 * from `lanyard` and its subpath exports, and what `lanyard` the command runs, is dist/ and matches the
 * sources; then the same once more from a tarball (npm pack) installed into an empty project, as a user gets it. Tests import
 * ../src and force LANYARD_FROM_SOURCE, so nothing else exercises main/exports/types or bin-over-dist.
 * Exits 1 naming every failed check.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
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

// The demo is a script of the checkout (scripts/demo/), never part of the package.
check(!existsSync(join(dist, 'demo')), 'dist/ ships no demo');
check(!buildProgram().commands.some((c) => c.name() === 'demo'), 'the lanyard command has no demo command');

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

// The package as a consumer installs it: only what "files" ships, no devDependencies (no tsx), file times
// set by npm, and the native addon compiled by the install.
const scratch = mkdtempSync(join(tmpdir(), 'lanyard-pack-'));
try {
  const npm = (args: string[], cwd: string) =>
    spawnSync('npm', args, { cwd, encoding: 'utf8', env: { ...env, npm_config_fund: 'false' } });
  const packed = npm(['pack', '--ignore-scripts', '--json', '--pack-destination', scratch], root);
  const tarball =
    packed.status === 0 ? (JSON.parse(packed.stdout) as { filename: string }[])[0]?.filename : undefined;
  check(
    tarball !== undefined,
    `npm pack (exit ${packed.status}) ${tarball === undefined ? packed.stderr : ''}`,
  );
  if (tarball !== undefined) {
    const consumer = join(scratch, 'consumer');
    spawnSync('mkdir', [consumer]);
    writeFileSync(
      join(consumer, 'package.json'),
      '{ "name": "consumer", "version": "1.0.0", "private": true }\n',
    );
    // --prefer-offline: npm ci just filled the cache with every dependency.
    const installed = npm(['install', '--prefer-offline', '--no-audit', join(scratch, tarball)], consumer);
    check(
      installed.status === 0,
      `npm install of the tarball (exit ${installed.status}) ${installed.status === 0 ? '' : installed.stderr}`,
    );
    const help = spawnSync(join(consumer, 'node_modules', '.bin', 'lanyard'), ['--help'], {
      cwd: consumer,
      env,
      encoding: 'utf8',
    });
    const listedThere = groups.filter((name) => new RegExp(`^  ${name}\\b`, 'm').test(help.stdout));
    check(
      help.status === 0 && listedThere.length === groups.length,
      `installed: lanyard --help lists every command group (exit ${help.status}) ${help.status === 0 ? '' : help.stderr}`,
    );
    const api = spawnSync(
      process.execPath,
      [
        '-e',
        "const l = require('lanyard'); require('lanyard/hop/express'); process.exit(typeof l.verifyX509Svid === 'function' ? 0 : 1)",
      ],
      { cwd: consumer, env, encoding: 'utf8' },
    );
    check(
      api.status === 0,
      `installed: require('lanyard') and 'lanyard/hop/express' load (exit ${api.status}) ${api.stderr}`,
    );
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

if (failures.length > 0) {
  console.error(`check-dist: ${failures.length} check(s) failed`);
  process.exit(1);
}
