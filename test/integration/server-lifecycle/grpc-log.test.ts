import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { tempDataDir } from '../../support/test-server';
import { logLines, spawnServer } from '../../support/server-process';

/** grpc-js's own diagnostics go into the server's JSON log, not to stderr as plain text. */
describe('lanyard server run: grpc-js diagnostics', function () {
  this.timeout(60_000);

  it('a port already in use: grpc-js reports it as a JSON log line (component grpc-js); stderr has only the CLI error', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as net.AddressInfo;
    const dataDir = tempDataDir();
    const server = spawnServer(['--data-dir', dataDir], { LANYARD_LISTEN_ADDRESS: `127.0.0.1:${port}` });
    try {
      assert.equal(await server.exited, 1);
      const stdout = server.stdout().trim().split('\n');
      for (const line of stdout) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
      const grpc = logLines(server.stdout()).filter((l) => l.component === 'grpc-js');
      assert.ok(grpc.length > 0, `no grpc-js line in ${server.stdout()}`);
      assert.ok(grpc.some((l) => l.level === 'error' && /address/i.test(String(l.msg))));
      const stderr = server.stderr().trim().split('\n');
      assert.deepEqual(
        stderr.filter((l) => !l.startsWith('lanyard: ')),
        [],
        `stderr: ${server.stderr()}`,
      );
      assert.match(server.stderr(), /lanyard: server did not start/);
    } finally {
      server.kill();
      holder.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
