/**
 * The package root must not load express or fastify at runtime (they are dev dependencies; a service uses the
 * `lanyard/hop/express` and `lanyard/hop/fastify` entry points). Checked in a fresh Node process.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

describe('hop entry points', function () {
  this.timeout(60_000);
  const root = path.resolve(__dirname, '..', '..', '..');
  const loaded = (entry: string): string[] => {
    const out = execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `require(${JSON.stringify(entry)}); console.log(JSON.stringify(Object.keys(require.cache).filter((k) => /node_modules\\/(express|fastify)\\//.test(k))))`,
      ],
      { cwd: root, encoding: 'utf8' },
    );
    return JSON.parse(out.trim().split('\n').pop()!) as string[];
  };

  it('the probe sees express when a module does import it (the benchmark does)', () => {
    assert.ok(loaded(path.join(root, 'scripts/bench-hop.ts')).length > 0);
  });

  it('the package root exports the hop helpers without loading express or fastify', () => {
    assert.deepEqual(loaded(path.join(root, 'src/index.ts')), []);
  });

  it('the express and fastify entry points do not load them either (types only)', () => {
    assert.deepEqual(loaded(path.join(root, 'src/hop/express.ts')), []);
    assert.deepEqual(loaded(path.join(root, 'src/hop/fastify.ts')), []);
  });
});
