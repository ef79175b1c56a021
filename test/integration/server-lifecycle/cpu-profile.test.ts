/**
 * The server under node's CPU profiler, as the benches start it (LANYARD_BENCH_PROFILE_DIR,
 * scripts/bench-server-process.ts): --cpu-prof goes on node's command line (spawnServer's nodeArgs), since node
 * refuses it in NODE_OPTIONS and the server would not start; the profile is written when the server exits.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnServer } from '../../support/server-process';
import { tempDataDir } from '../../support/test-server';

describe('server process under --cpu-prof', function () {
  this.timeout(60_000);

  it('starts, and writes a CPU profile when it stops', async () => {
    const dataDir = tempDataDir();
    const profileDir = path.join(dataDir, 'profiles');
    const server = spawnServer(
      ['--data-dir', dataDir],
      {},
      {
        nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
      },
    );
    try {
      await server.ready;
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0, server.stderr());
      const profiles = fs.readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
      // One for the server's thread (and one per worker thread it ran, if any).
      assert.ok(profiles.length >= 1, 'no CPU profile written');
      const profile = JSON.parse(fs.readFileSync(path.join(profileDir, profiles[0]!), 'utf8')) as {
        nodes: unknown[];
      };
      assert.ok(profile.nodes.length > 0);
    } finally {
      server.kill();
    }
  });
});
