/**
 * The Workload API attests the caller on every call and checks it again before every response, not once per
 * connection: a process that connects and then execs another binary keeps its connection (and its
 * SO_PEERCRED pid and start time) but not its identity.
 */
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SpiffeWorkloadAPIClient } from '../../../src/gen/spiffe/workload/workload';
import { startTestServer, type TestServer } from '../../support/test-server';
import {
  AGENT_ID,
  TD,
  X509Stream,
  compileFixture,
  header,
  startAgentFor,
  tempDir,
  waitFor,
  workloadClient,
  type AgentFixture,
} from '../../support/agent';

describe("node agent: a connection whose process exec'd another binary", function () {
  this.timeout(60_000);
  let s: TestServer;
  let a: AgentFixture;
  let relay: string;
  let next: string;

  before(async () => {
    // One process connects to the agent and relays that connection to the test's client; on a line on stdin
    // it execs `next`, a copy of itself (another file: another executable), which goes on relaying with
    // both descriptors marked close-on-exec again, so only the change of executable gives it away.
    relay = compileFixture('exec-after-connect');
    next = path.join(tempDir(), 'relay-after-exec');
    fs.copyFileSync(relay, next);
    fs.chmodSync(next, 0o755);
    s = await startTestServer();
    await s.client.createEntry({
      entry: {
        spiffeId: `spiffe://${TD}/workload/any-uid`,
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
        x509SvidTtlSeconds: 4,
      },
    });
    a = await startAgentFor(s);
  });

  after(async () => {
    await a?.close();
    await s?.stop();
  });

  /** The relay process, the test's client on it, and a way to make the relay exec. */
  async function relayed(): Promise<{
    client: SpiffeWorkloadAPIClient;
    exec(): Promise<void>;
    close(): Promise<void>;
  }> {
    const sock = path.join(tempDir(), 'relay.sock');
    const child = spawn(relay, ['relay', a.socketPath, sock, next], { stdio: ['pipe', 'ignore', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    await waitFor(() => fs.existsSync(sock), 10_000);
    const client = workloadClient(sock);
    return {
      client,
      async exec() {
        child.stdin!.write('exec\n');
        await waitFor(() => fs.readlinkSync(`/proc/${child.pid}/exe`) === next, 10_000);
      },
      async close() {
        client.close();
        child.kill('SIGKILL');
        await exited;
      },
    };
  }

  const fetchJwt = (
    client: SpiffeWorkloadAPIClient,
    audience = 'api',
  ): Promise<{ svids: { spiffeId: string }[] }> =>
    new Promise((resolve, reject) =>
      client.fetchJwtsvid({ audience: [audience], spiffeId: '' }, header(), (e, r) =>
        e ? reject(e) : resolve(r),
      ),
    );

  const assertExecRefusal = (e: grpc.ServiceError): void => {
    assert.equal(e.code, grpc.status.PERMISSION_DENIED);
    assert.equal(e.metadata.get('lanyard-error-code')[0], 'ERR_WORKLOAD_ATTESTATION_FAILED');
    assert.match(
      e.details,
      /is no longer what it was when it opened this connection \(executable .*\(exec\)\)/,
    );
  };

  it('answers before the exec and refuses (PERMISSION_DENIED) after it, on the same connection', async () => {
    const r = await relayed();
    try {
      const before = await fetchJwt(r.client);
      assert.equal(before.svids[0]!.spiffeId, `spiffe://${TD}/workload/any-uid`);
      await r.exec();
      const e = await fetchJwt(r.client).then(
        () => assert.fail('the call after exec was answered'),
        (err: grpc.ServiceError) => err,
      );
      assertExecRefusal(e);
    } finally {
      await r.close();
    }
  });

  it('does not send an answer prepared before an exec that happened while it was being prepared', async () => {
    const r = await relayed();
    const sync = a.agent.sync;
    const mint = sync.newJwtSvid.bind(sync);
    try {
      // The call is attested, then the agent asks the server for the JWT-SVID; the exec lands meanwhile.
      sync.newJwtSvid = async (entryId, audience) => {
        await r.exec();
        return mint(entryId, audience);
      };
      const e = await fetchJwt(r.client, 'minted-during-exec').then(
        () => assert.fail('the answer went out after the exec'),
        (err: grpc.ServiceError) => err,
      );
      assertExecRefusal(e);
    } finally {
      sync.newJwtSvid = mint;
      await r.close();
    }
  });

  it('ends an open FetchX509SVID stream at its next response after the exec, instead of sending it', async () => {
    const r = await relayed();
    try {
      const stream = new X509Stream(r.client);
      const first = await stream.next();
      assert.equal(first.svids[0]!.spiffeId, `spiffe://${TD}/workload/any-uid`);
      await r.exec();
      // The SVID (4 s) rotates at half its life: that response must not go out to the exec'd program.
      const e = await stream.next(15_000).then(
        (m) =>
          assert.fail(`a response was sent after the exec: ${m.svids.map((v) => v.spiffeId).join(', ')}`),
        (err: grpc.ServiceError) => err,
      );
      assertExecRefusal(e);
    } finally {
      await r.close();
    }
  });
});
