/**
 * The Workload API attests the caller on every call, not once per connection: a process that connects and
 * then execs another binary keeps its connection (and its SO_PEERCRED pid) but not its identity.
 */
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startTestServer, type TestServer } from '../server/helpers';
import {
  AGENT_ID,
  TD,
  header,
  startAgentFor,
  tempDir,
  waitFor,
  workloadClient,
  type AgentFixture,
} from './helpers';

/**
 * Connects to the agent's socket, then forks: the child relays the connection to a socket of its own (where
 * the test's gRPC client connects), the parent, whose pid the agent recorded, execs `sleep` on a line on stdin.
 */
const RELAY = `
import os, socket, sys, threading
agent = socket.socket(socket.AF_UNIX); agent.connect(sys.argv[1])
server = socket.socket(socket.AF_UNIX); server.bind(sys.argv[2]); server.listen(1)
if os.fork() == 0:
    client, _ = server.accept()
    def pump(a, b):
        while True:
            data = a.recv(65536)
            if not data:
                os._exit(0)
            b.sendall(data)
    threading.Thread(target=pump, args=(agent, client), daemon=True).start()
    pump(client, agent)
sys.stdin.readline()
os.execv('/bin/sleep', ['sleep', '30'])
`;

describe("node agent: a connection whose process exec'd another binary", function () {
  this.timeout(60_000);
  let s: TestServer;
  let a: AgentFixture;

  before(async () => {
    s = await startTestServer();
    await s.client.createEntry({
      entry: {
        spiffeId: `spiffe://${TD}/workload/any-uid`,
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
      },
    });
    a = await startAgentFor(s);
  });

  after(async () => {
    await a?.close();
    await s?.stop();
  });

  it('answers before the exec and refuses (PERMISSION_DENIED) after it, on the same connection', async () => {
    const relay = path.join(tempDir(), 'relay.sock');
    const child = spawn('python3', ['-c', RELAY, a.socketPath, relay], {
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    const exited = new Promise((r) => child.once('exit', r));
    const client = workloadClient(relay);
    try {
      await waitFor(() => fs.existsSync(relay), 10_000);
      const fetch = (): Promise<unknown> =>
        new Promise((resolve, reject) =>
          client.fetchJwtsvid({ audience: ['api'], spiffeId: '' }, header(), (e, r) =>
            e ? reject(e) : resolve(r),
          ),
        );
      const before = (await fetch()) as { svids: { spiffeId: string }[] };
      assert.equal(before.svids[0]!.spiffeId, `spiffe://${TD}/workload/any-uid`);

      child.stdin!.write('exec\n');
      await waitFor(
        () => fs.readlinkSync(`/proc/${child.pid}/exe`) === fs.realpathSync('/bin/sleep'),
        10_000,
      );
      const e = await fetch().then(
        () => assert.fail('the call after exec was answered'),
        (err: grpc.ServiceError) => err,
      );
      assert.equal(e.code, grpc.status.PERMISSION_DENIED);
      assert.equal(e.metadata.get('lanyard-error-code')[0], 'ERR_WORKLOAD_ATTESTATION_FAILED');
      assert.match(e.details, /another executable/);
    } finally {
      client.close();
      child.kill('SIGKILL');
      await exited;
    }
  });
});
