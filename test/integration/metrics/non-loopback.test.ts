/**
 * The metrics listener has neither TLS nor authentication: an agent refuses to serve it on a non-loopback
 * address unless told explicitly, before anything starts (no Workload API socket, no attestation).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startAgent } from '../../../src/agent/agent';
import { ErrorCode, isLanyardError } from '../../../src/errors';
import { EXIT_USAGE } from '../../../src/cli/exit-codes';
import { runCli } from '../../support/server-process';
import { tempDir } from '../../support/tmp';
import { startTestServer } from '../../support/test-server';

describe('metrics on a non-loopback address', function () {
  this.timeout(60_000);

  it('startAgent refuses 0.0.0.0 without allowNonLoopback, before it creates its socket', async () => {
    const s = await startTestServer();
    const socketPath = path.join(tempDir('agent-metrics'), 'agent.sock');
    try {
      await assert.rejects(
        startAgent({
          server: s.running.publicAddress,
          bundle: s.running.ca.bundle(),
          socketPath,
          attestation: { attestorType: 'join_token', evidence: Buffer.from('unused') },
          metrics: { listen: { host: '0.0.0.0', port: 0 } },
        }),
        (e: unknown) =>
          isLanyardError(e) &&
          e.code === ErrorCode.INVALID_CONFIG &&
          /not a loopback address/.test(e.message),
      );
      assert.equal(fs.existsSync(socketPath), false);
    } finally {
      await s.stop();
    }
  });

  it('`agent run --metrics-address 0.0.0.0:...` is a usage error naming the flag that allows it', async () => {
    const dir = tempDir('agent-metrics-cli');
    const r = await runCli([
      'agent',
      'run',
      '--server',
      '127.0.0.1:1',
      '--bundle',
      path.join(dir, 'absent.pem'),
      '--socket',
      path.join(dir, 'agent.sock'),
      '--join-token',
      'unused',
      '--metrics-address',
      '0.0.0.0:9465',
    ]);
    assert.equal(r.code, EXIT_USAGE, r.stderr);
    assert.match(r.stderr, /--metrics-address: "0\.0\.0\.0" is not a loopback address/);
    assert.match(r.stderr, /--metrics-allow-non-loopback/);
    assert.equal(fs.existsSync(path.join(dir, 'agent.sock')), false);
  });
});
