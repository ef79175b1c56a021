/**
 * What each public entry point loads, seen in a fresh Node process per entry: the root must stay free of gRPC
 * (grpc-js and the generated protobuf code), the server, Cedar and the web frameworks; only lanyard/client and
 * lanyard/grpc load grpc-js; express and fastify are never loaded by their own helpers (types only, they are
 * optional peer dependencies). check:dist proves the same of the built package.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../../support/paths';

const ROOT = REPO_ROOT;
const ENTRY = (name: string): string =>
  name === '.' ? path.join(ROOT, 'src/index.ts') : path.join(ROOT, 'src/entry', `${name}.ts`);

/** The modules of each kind a fresh process has loaded after requiring `file`. */
async function loadedBy(file: string): Promise<Record<string, string[]>> {
  const script = `
    require(${JSON.stringify(file)});
    const kinds = {
      grpc: /node_modules\\/@grpc\\//,
      generated: /\\/src\\/gen\\//,
      server: /\\/src\\/(server|agent|cli)\\//,
      cedar: /cedar-wasm/,
      web: /node_modules\\/(express|fastify)\\//,
    };
    const loaded = Object.keys(require.cache);
    const out = {};
    for (const [kind, re] of Object.entries(kinds)) out[kind] = loaded.filter((f) => re.test(f));
    process.stdout.write(JSON.stringify(out));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
    cwd: ROOT,
  });
  return JSON.parse(stdout) as Record<string, string[]>;
}

const NAMES = [
  '.',
  'client',
  'tls',
  'grpc',
  'express',
  'fastify',
  'audit',
  'policy',
  'dev',
  'errors',
] as const;
const NOTHING = { grpc: [], generated: [], server: [], cedar: [], web: [] };

describe('public entry points: what each loads', function () {
  this.timeout(120_000);
  const loaded = new Map<string, Record<string, string[]>>();
  // One process per entry, all at once: each needs a require.cache of its own.
  before(async () => {
    const results = await Promise.all(NAMES.map((name) => loadedBy(ENTRY(name))));
    NAMES.forEach((name, i) => loaded.set(name, results[i]!));
  });

  it('the probe sees grpc-js when an entry does load it (lanyard/grpc)', () => {
    assert.ok(loaded.get('grpc')!.grpc!.length > 0);
  });

  it('the root loads no gRPC, generated code, server, Cedar, express or fastify', () => {
    assert.deepEqual(loaded.get('.'), NOTHING);
  });

  for (const name of ['tls', 'express', 'fastify', 'audit', 'policy', 'dev', 'errors']) {
    it(`lanyard/${name} loads no gRPC, server, Cedar (until used), express or fastify`, () => {
      assert.deepEqual(loaded.get(name), NOTHING);
    });
  }

  it('lanyard/client loads no server code, Cedar or web framework', () => {
    const client = loaded.get('client')!;
    assert.deepEqual([client.server, client.web, client.cedar], [[], [], []]);
  });
});
