/**
 * Proves the built package (CI runs it after npm ci, whose prepare step builds dist/): what a consumer gets
 * from `lanyard` and its subpath exports, and what `lanyard` the command runs, is dist/ and matches the
 * sources; then the same once more from a tarball (npm pack) installed into an empty project, as a user gets it. Tests import
 * ../src and force LANYARD_FROM_SOURCE, so nothing else exercises main/exports/types or bin-over-dist.
 * Exits 1 naming every failed check.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { buildProgram } from '../src/cli/main';
import { EXAMPLE_RUNS, runExample } from '../test/support/example-runs';

const root = join(__dirname, '..');
const dist = join(root, 'dist');
// Resolves as a file of this package would: `lanyard` is then the package itself, through its "exports".
const requireHere = createRequire(join(root, 'package.json'));
// Child processes run as a user's would: the built package, never the sources.
const env = { ...process.env };
delete env.LANYARD_FROM_SOURCE;
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

/** Every subpath of package.json "exports" with its source entry file: `lanyard/client` <- src/entry/client.ts. */
const SUBPATHS = ['client', 'tls', 'grpc', 'express', 'fastify', 'audit', 'policy', 'dev', 'errors'] as const;
const ENTRIES: { specifier: string; built: string; source: string }[] = [
  { specifier: 'lanyard', built: join(dist, 'index.js'), source: join(root, 'src', 'index.ts') },
  ...SUBPATHS.map((sub) => ({
    specifier: `lanyard/${sub}`,
    built: join(dist, 'entry', `${sub}.js`),
    source: join(root, 'src', 'entry', `${sub}.ts`),
  })),
];

for (const file of ['index.js', 'index.d.ts', 'cli/main.js', '.build-stamp']) {
  check(existsSync(join(dist, file)), `dist/${file} exists`);
}

// The demo is a script of the checkout (scripts/demo/), never part of the package.
check(!existsSync(join(dist, 'demo')), 'dist/ ships no demo');
check(!buildProgram().commands.some((c) => c.name() === 'demo'), 'the lanyard command has no demo command');

for (const { specifier, built, source: sourceFile } of ENTRIES) {
  attempt(
    `require('${specifier}') is ${relative(root, built)} and exports what ${relative(root, sourceFile)} does`,
    () => {
      if (requireHere.resolve(specifier) !== built)
        throw new Error(`resolves to ${requireHere.resolve(specifier)}`);
      if (!existsSync(built.replace(/\.js$/, '.d.ts'))) throw new Error('no .d.ts beside it');
      const fromSource = Object.keys(requireHere(sourceFile) as object).sort();
      const fromDist = Object.keys(requireHere(specifier) as object).sort();
      if (fromDist.length === 0) throw new Error('exports nothing');
      if (fromSource.join() !== fromDist.join()) {
        throw new Error(`dist exports [${fromDist.join(', ')}], the sources [${fromSource.join(', ')}]`);
      }
      return true;
    },
  );
}

attempt("require('lanyard') is the verifier: verifyX509Svid, SpiffeId, TrustDomain, X509Bundle, ...", () => {
  const built = requireHere('lanyard') as Record<string, unknown>;
  const api = ['verifyX509Svid', 'SpiffeId', 'TrustDomain', 'X509Bundle', 'parseSpiffeBundle', 'authorizeId'];
  return api.every((name) => typeof built[name] === 'function');
});

/**
 * What `require(specifier)` loads in a fresh process, as Module._load sees every request (a module that is
 * required, even one already cached, passes through it): the @grpc/* packages, express and fastify.
 */
function loadedBy(specifier: string, cwd: string): { grpc: string[]; web: string[] } {
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `const Module = require('node:module');
       const requested = new Set();
       const load = Module._load;
       Module._load = function (request, ...rest) { requested.add(request); return load.call(this, request, ...rest); };
       require(${JSON.stringify(specifier)});
       const files = Object.keys(require.cache);
       const seen = [...requested, ...files];
       process.stdout.write(JSON.stringify({
         grpc: seen.filter((f) => /@grpc[\\/]|[\\/]gen[\\/]/.test(f)),
         web: seen.filter((f) => /^(express|fastify)$|node_modules[\\/](express|fastify)[\\/]/.test(f)),
       }));`,
    ],
    { cwd, env, encoding: 'utf8' },
  );
  if (probe.status !== 0) throw new Error(`node exited ${probe.status}: ${probe.stderr}`);
  return JSON.parse(probe.stdout) as { grpc: string[]; web: string[] };
}

/** The root and the non-gRPC subpaths load no grpc-js (nor the generated protobuf code); none loads a framework. */
function checkLoads(where: string, cwd: string): void {
  attempt(
    `${where}the probe sees grpc-js when lanyard/grpc loads it`,
    () => loadedBy('lanyard/grpc', cwd).grpc.length > 0,
  );
  for (const { specifier } of ENTRIES) {
    const mayLoadGrpc = specifier === 'lanyard/client' || specifier === 'lanyard/grpc';
    attempt(
      `${where}require('${specifier}') loads ${mayLoadGrpc ? '' : 'no grpc-js, '}no express or fastify`,
      () => {
        const loaded = loadedBy(specifier, cwd);
        const wrong = [...(mayLoadGrpc ? [] : loaded.grpc), ...loaded.web];
        if (wrong.length > 0) throw new Error(`loaded ${wrong.slice(0, 5).join(', ')}`);
        return true;
      },
    );
  }
}
checkLoads('', root);

attempt('deep imports stay closed (lanyard/dist/index.js)', () => {
  try {
    requireHere.resolve('lanyard/dist/index.js');
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ERR_PACKAGE_PATH_NOT_EXPORTED';
  }
});

// bin/lanyard.js as a user runs it: it must pick dist/ (just built) and list every command group src has.
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
async function installedPackage(): Promise<void> {
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
      checkLoads('installed: ', consumer);
      await examplesInstalled(consumer);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * examples/ from the installed package, as a user copies one: the consumer installs express (an optional peer
 * dependency), runs `lanyard server run` from its node_modules/.bin, registers each workload with
 * `lanyard entry create` and `lanyard token create`, and runs every example against it (TypeScript through
 * this repository's tsx: the consumer has no devDependencies).
 */
async function examplesInstalled(consumer: string): Promise<void> {
  const npm = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', 'express@5'], {
    cwd: consumer,
    encoding: 'utf8',
    env,
  });
  check(
    npm.status === 0,
    `installed: npm install express (exit ${npm.status}) ${npm.status === 0 ? '' : npm.stderr}`,
  );
  if (npm.status !== 0) return;
  const examplesDir = join(consumer, 'examples');
  mkdirSync(examplesDir);
  for (const run of EXAMPLE_RUNS) copyFileSync(join(root, 'examples', run.file), join(examplesDir, run.file));
  const lanyardBin = join(consumer, 'node_modules', '.bin', 'lanyard');
  const dataDir = join(consumer, 'data');
  const socket = join(dataDir, 'admin.sock');
  const server = spawn(lanyardBin, ['server', 'run', '--data-dir', dataDir], {
    cwd: consumer,
    env: { ...env, LANYARD_LISTEN_ADDRESS: '127.0.0.1:0', LANYARD_DATA_DIR: '' },
  });
  try {
    let banner = '';
    const address = await new Promise<string>((resolve, reject) => {
      server.stderr.on('data', (d: Buffer) => {
        banner += d.toString();
        const m = /attestation\/bundle \(TLS\):\s+(\S+)/.exec(banner);
        if (m && banner.includes('Stop with')) resolve(m[1]!);
      });
      server.on('close', (code) => reject(new Error(`lanyard server run exited ${code}: ${banner}`)));
    });
    const cli = (args: string[]): string => {
      const r = spawnSync(lanyardBin, [...args, '--socket', socket], {
        cwd: consumer,
        env,
        encoding: 'utf8',
      });
      if (r.status !== 0)
        throw new Error(`lanyard ${args.slice(0, 2).join(' ')} exited ${r.status}: ${r.stderr}`);
      return r.stdout;
    };
    const bundleFile = join(consumer, 'bundle.pem');
    writeFileSync(bundleFile, cli(['bundle', 'show', '--format', 'pem']));
    const trustDomain = /trust domain (\S+)/.exec(banner)?.[1] ?? '';
    for (const run of EXAMPLE_RUNS) {
      try {
        await runExample(run, {
          examplesDir,
          cwd: consumer,
          nodeArgs: ['--require', require.resolve('tsx/cjs')],
          server: address,
          trustDomain,
          bundleFile,
          register: (spiffeId, entry) => {
            const name = spiffeId.slice(spiffeId.lastIndexOf('/') + 1);
            cli([
              'entry',
              'create',
              '--spiffe-id',
              spiffeId,
              '--selector',
              `unix:name:${name}`,
              ...(entry.allowedScopes ?? []).flatMap((s) => ['--scope', s]),
              ...(entry.allowedDelegates ?? []).flatMap((d) => ['--delegate', d]),
              ...(entry.maxDelegationDepth !== undefined
                ? ['--max-delegation-depth', String(entry.maxDelegationDepth)]
                : []),
            ]);
            const { token } = JSON.parse(cli(['token', 'create', '--spiffe-id', spiffeId, '--json'])) as {
              token: string;
            };
            return Promise.resolve(token);
          },
        });
        check(
          true,
          `installed: examples/${run.file} runs against the installed server and prints what it should`,
        );
      } catch (e) {
        check(false, `installed: examples/${run.file}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  } catch (e) {
    check(false, `installed: examples: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    server.kill('SIGTERM');
  }
}

void installedPackage().then(() => {
  if (failures.length > 0) {
    console.error(`check-dist: ${failures.length} check(s) failed`);
    process.exit(1);
  }
});
