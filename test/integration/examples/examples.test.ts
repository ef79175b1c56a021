/**
 * The runnable examples/ as a user runs them: each a separate Node process importing only the public entry
 * points (`lanyard`, `lanyard/client`, ...) of the built package through its "exports", against a real server
 * on loopback with entries and join tokens registered as an operator would. check:dist runs the same programs
 * against the package installed from its tarball.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureBuilt, REPO_ROOT } from '../../support/built-package';
import { EXAMPLE_RUNS, runExample, type ExampleEnvironment } from '../../support/example-runs';
import { startTestServer, type TestServer } from '../../support/test-server';

describe('examples/ against a real server', function () {
  this.timeout(300_000);
  let server: TestServer;
  let env: ExampleEnvironment;

  before(async () => {
    ensureBuilt();
    server = await startTestServer();
    const bundleFile = path.join(server.dir, 'bundle.pem');
    fs.writeFileSync(bundleFile, server.running.ca.bundle().toPem());
    env = {
      examplesDir: path.join(REPO_ROOT, 'examples'),
      cwd: REPO_ROOT,
      nodeArgs: ['--require', require.resolve('tsx/cjs')],
      server: server.running.publicAddress,
      trustDomain: server.config.trustDomain,
      bundleFile,
      async register(spiffeId, fields) {
        const { entry } = await server.client.createEntry({
          entry: { spiffeId, selectors: [{ type: 'unix', value: `name:${spiffeId}` }], ...fields },
        });
        return (await server.client.createJoinToken({ entryId: entry!.id })).token;
      },
    };
  });
  after(() => server?.stop());

  for (const run of EXAMPLE_RUNS) {
    it(run.title, () => runExample(run, env));
  }
});
