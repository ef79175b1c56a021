/**
 * The agent while its server is away: cached SVIDs keep being served (to open streams and to new callers)
 * until they expire, sync retries with backoff, and after the server restarts (same data dir, same port) the
 * agent reconnects with its own SVID and rotation resumes on the open stream.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { startTestServer, type TestServer } from '../../support/test-server';
import {
  AGENT_ID,
  TD,
  X509Stream,
  splitDer,
  startAgentFor,
  waitFor,
  workloadClient,
  type AgentFixture,
} from '../../support/agent';

const WORKLOAD_ID = `spiffe://${TD}/workload/survivor`;
/**
 * Long enough that the SVID outlives the outage below by a wide margin on a loaded 2-core CI box: the server
 * is down until the SVID is past its half life (rotation due), then takes a few seconds to start again, and
 * the agent must rotate before the SVID expires. An 8 s lifetime left ~4 s for the restart, which load ate.
 */
const SVID_TTL_SECONDS = 20;

function certOf(svid: { x509Svid: Buffer }): ParsedCertificate {
  return ParsedCertificate.fromDer(splitDer(svid.x509Svid)[0]!);
}

function serialOf(svid: { x509Svid: Buffer }): string {
  return certOf(svid).serialHex;
}

describe('node agent: the server stops and restarts', function () {
  this.timeout(60_000);
  let s: TestServer;
  let a: AgentFixture;

  after(async () => {
    await a?.close();
    await s?.stop();
  });

  it('serves cached SVIDs while the server is down and recovers after it restarts', async () => {
    s = await startTestServer();
    await s.client.createEntry({
      entry: {
        spiffeId: WORKLOAD_ID,
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
        x509SvidTtlSeconds: SVID_TTL_SECONDS,
      },
    });
    a = await startAgentFor(s);
    const client = workloadClient(a.socketPath);
    const stream = new X509Stream(client);
    try {
      const first = (await stream.next()).svids[0]!;
      // The agent received it no later than now, so its rotation is due by the midpoint from now to notAfter.
      const received = Date.now();
      const notAfter = certOf(first).notAfter.getTime();
      const rotationDue = received + (notAfter - received) / 2;
      const port = Number(s.running.publicAddress.split(':').pop());
      const dir = s.dir;
      const agent = a.agent;
      await s.stop();

      // Past the SVID's half life (rotation due) with no server, and a sync failed after that: the cached
      // SVID stays. Waits on the conditions, not a fixed sleep.
      await waitFor(() => Date.now() >= rotationDue, notAfter - Date.now());
      const failuresWhenDue = agent.sync.consecutiveFailures;
      await waitFor(() => agent.sync.consecutiveFailures > failuresWhenDue);
      assert.ok(agent.sync.lastError !== undefined, 'the sync noticed the server is gone');
      const fresh = new X509Stream(client);
      const cached = (await fresh.next()).svids[0]!;
      fresh.cancel();
      assert.equal(serialOf(cached), serialOf(first), 'a new caller gets the cached SVID');
      assert.ok(a.logs.some((l) => l.includes('serving cached SVIDs')));

      // Same data dir (same CA, entries, JWT key) and the same port the agent was given.
      s = await startTestServer({ dir, config: { listenAddress: { host: '127.0.0.1', port } } });
      const rotated = (await stream.next(notAfter - Date.now())).svids[0]!;
      assert.equal(rotated.spiffeId, WORKLOAD_ID);
      assert.notEqual(serialOf(rotated), serialOf(first), 'rotation resumed after the restart');
      await waitFor(() => agent.sync.lastError === undefined);
    } finally {
      stream.cancel();
      client.close();
    }
  });
});

describe('node agent: retries reach a server that is back', function () {
  this.timeout(30_000);

  it('each sync after one that could not reach the server dials it again', async () => {
    // A kept grpc-js channel waits out its own reconnect backoff (1 s, growing to 120 s) and fails every call
    // at once until then: the agent met a restarted server seconds late, whatever its own backoff said.
    const s = await startTestServer();
    let a: AgentFixture | undefined;
    const port = Number(s.running.publicAddress.split(':').pop());
    const sockets = new Set<net.Socket>();
    let dials = 0;
    let stopped = false;
    // Where the server was: something that accepts and hangs up, counting every connection the agent opens.
    const stand = net.createServer((socket) => {
      dials++;
      sockets.add(socket);
      socket.destroy();
    });
    try {
      a = await startAgentFor(s);
      stopped = true;
      await s.stop();
      await new Promise<void>((resolve, reject) => {
        stand.once('error', reject);
        stand.listen(port, '127.0.0.1', () => resolve());
      });
      const rounds = 5;
      const before = dials;
      for (let i = 0; i < rounds; i++) await a.agent.sync.syncNow();
      assert.ok(a.agent.sync.lastError !== undefined, 'every sync failed');
      assert.ok(
        dials - before >= rounds,
        `${rounds} syncs in a row dialed the server ${dials - before} time(s): a failed channel was kept`,
      );
    } finally {
      await a?.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => stand.close(() => resolve()));
      if (!stopped) await s.stop();
    }
  });
});

describe('node agent: close', function () {
  this.timeout(30_000);

  it('closes while a workload holds a stream open: the stream ends, the socket file is removed', async () => {
    const s = await startTestServer();
    try {
      await s.client.createEntry({
        entry: {
          spiffeId: WORKLOAD_ID,
          parentId: AGENT_ID,
          selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
        },
      });
      const a = await startAgentFor(s);
      const client = workloadClient(a.socketPath);
      const stream = new X509Stream(client);
      await stream.next();
      const ended = new Promise<void>((resolve) => {
        stream.call.on('error', () => resolve());
        stream.call.on('end', () => resolve());
      });
      await a.close();
      await ended;
      assert.equal(fs.existsSync(a.socketPath), false);
      client.close();
    } finally {
      await s.stop();
    }
  });
});

describe('node agent: SVIDs expire while the server is away', function () {
  this.timeout(30_000);

  it('stops serving an expired SVID: the open stream and a new caller get UNAVAILABLE', async () => {
    const s = await startTestServer();
    let a: AgentFixture | undefined;
    let stopped = false;
    try {
      await s.client.createEntry({
        entry: {
          spiffeId: `spiffe://${TD}/workload/brief`,
          parentId: AGENT_ID,
          selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
          x509SvidTtlSeconds: 3,
        },
      });
      a = await startAgentFor(s);
      const client = workloadClient(a.socketPath);
      const open = new X509Stream(client);
      const first = (await open.next()).svids[0]!;
      stopped = true;
      await s.stop();
      const notAfter = ParsedCertificate.fromDer(splitDer(first.x509Svid)[0]!).notAfter;
      // Whatever rotations arrived before the stop, the stream must end once the last SVID has expired.
      let err: grpc.ServiceError | undefined;
      while (err === undefined) {
        err = await open.next(10_000).then(
          () => undefined,
          (e: grpc.ServiceError) => e,
        );
      }
      assert.equal(err.code, grpc.status.UNAVAILABLE);
      assert.ok(Date.now() >= notAfter.getTime());
      const late = new X509Stream(client);
      const lateErr = await late.next().then(
        () => assert.fail('an expired SVID was served'),
        (e: grpc.ServiceError) => e,
      );
      assert.equal(lateErr.code, grpc.status.UNAVAILABLE);
      client.close();
    } finally {
      await a?.close();
      if (!stopped) await s.stop();
    }
  });
});
