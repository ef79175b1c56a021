/**
 * Memory exhaustion through WatchRevocations (issue 13.9): 600 watch streams with a zero HTTP/2 window used to
 * take the server from 193 MB to 823 MB, each holding the whole state in its send buffer. A raw node:http2
 * client with initialWindowSize 0 (it reads nothing, so the server can send nothing) opens 600 watches over 40
 * connections as two identities, and one connection without a client certificate opens more: the server
 * refuses the anonymous ones, caps watches per connection and per identity, holds at most one page per
 * accepted watch, and cuts them (RST_STREAM) once they stalled for the configured timeout.
 */
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { loadConfig } from '../../../src/server/config';
import { encodePem } from '../../../src/x509/pem';
import { WATCH_DEFAULTS } from '../../../src/server/sessions/watch-revocations';
import { eventually } from '../../support/hop';
import { startTestServer, type TestServer } from '../../support/test-server';
import { type Agent, collectWatch, register, sessionClient } from '../../support/sessions';

const WATCH_PATH = '/lanyard.v1.SessionService/WatchRevocations';
// A gRPC frame: no compression, length 0 (WatchRevocationsRequest with after_sequence 0 encodes to nothing).
const EMPTY_REQUEST = Buffer.from([0, 0, 0, 0, 0]);

interface Outcome {
  /** grpc-status of a refused (trailers-only) answer; undefined when the watch was accepted. */
  status?: number;
  stream: http2.ClientHttp2Stream;
}

/** A connection that never reads: every stream's window stays zero. */
function zeroWindowSession(s: TestServer, who?: Agent): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${s.running.publicAddress}`, {
      ca: s.running.ca.bundle().toPem(),
      // The server is identified by its SPIFFE ID elsewhere; here only the transport matters.
      checkServerIdentity: () => undefined,
      settings: { initialWindowSize: 0 },
      ...(who !== undefined
        ? {
            key: who.key.export({ type: 'pkcs8', format: 'pem' }),
            cert: who.chain.map((c) => encodePem('CERTIFICATE', c)).join(''),
          }
        : {}),
    });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

function openWatch(session: http2.ClientHttp2Session): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': 'POST',
      ':path': WATCH_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    stream.on('error', () => undefined);
    stream.once('response', (headers) => {
      const status = headers['grpc-status'];
      resolve({ stream, ...(status !== undefined ? { status: Number(status) } : {}) });
    });
    stream.once('close', () => reject(new Error(`stream closed before an answer (rst ${stream.rstCode})`)));
    stream.end(EMPTY_REQUEST);
  });
}

async function seededServer(stallTimeoutSeconds: number): Promise<TestServer> {
  const defaults = loadConfig({ env: {} }).limits;
  const s = await startTestServer({
    config: {
      limits: { ...defaults, watchersPerConnection: 4, watchersPerIdentity: 32 },
      revocationFeed: { heartbeatSeconds: 15, stallTimeoutSeconds, warmSnapshot: true },
    },
  });
  // A state of about 1 MB: what each stalled watch used to hold whole.
  const expiresAt = new Date(Date.now() + 3600_000);
  await s.running.store.transaction(async (tx) => {
    for (let i = 0; i < 3000; i++) {
      await tx.addRevocation(
        {
          kind: 'session',
          id: `s-bulk-${i.toString(16).padStart(28, '0')}`,
          reason: 'r'.repeat(256),
          expiresAt,
        },
        new Date(),
      );
    }
  });
  return s;
}

describe('revocation watches with a zero HTTP/2 window', function () {
  this.timeout(180_000);
  let s: TestServer;
  const sessions: http2.ClientHttp2Session[] = [];
  afterEach(async () => {
    for (const c of sessions.splice(0)) c.destroy();
    await s.stop();
  });

  it('refuses anonymous watchers, caps the rest per connection and identity, holds one page each', async () => {
    // A stall timeout no test run reaches: this part is about the caps.
    s = await seededServer(3600);
    const a = await register(s, 'watcher-a');
    const b = await register(s, 'watcher-b');
    const anonymous = await zeroWindowSession(s);
    sessions.push(anonymous);
    const refusedAnonymously = await Promise.all(Array.from({ length: 5 }, () => openWatch(anonymous)));
    assert.deepEqual(
      refusedAnonymously.map((o) => o.status),
      Array(5).fill(16),
      'UNAUTHENTICATED without a client certificate',
    );

    const rssBefore = process.memoryUsage().rss;
    const outcomes: Outcome[] = [];
    for (const who of [a, b]) {
      const conns = await Promise.all(Array.from({ length: 20 }, () => zeroWindowSession(s, who)));
      sessions.push(...conns);
      const perConn = await Promise.all(
        conns.map((c) => Promise.all(Array.from({ length: 15 }, () => openWatch(c)))),
      );
      outcomes.push(...perConn.flat());
    }
    assert.equal(outcomes.length, 600);
    const accepted = outcomes.filter((o) => o.status === undefined);
    const exhausted = outcomes.filter((o) => o.status === 8);
    assert.equal(accepted.length, 64, 'two identities, 32 watches each');
    assert.equal(exhausted.length, 600 - 64, 'every other one RESOURCE_EXHAUSTED');

    const stats = s.running.watchers.stats();
    assert.equal(stats.watchers, 64);
    assert.equal(stats.refused, 536);
    // Each accepted watch waits on its first page, and holds nothing more.
    assert.equal(stats.waiting, 64);
    assert.ok(
      stats.queuedBytes <= 64 * WATCH_DEFAULTS.pageBytes,
      `${stats.queuedBytes} bytes queued for 64 watches`,
    );
    const grownMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    // Coarse (the clients live in this process too); without the fix this scenario grew by about 600 MB.
    assert.ok(grownMb < 256, `RSS grew by ${grownMb.toFixed(0)} MB`);

    // Clients that go away free their watches.
    for (const c of sessions.splice(0)) c.destroy();
    await eventually(() => s.running.watchers.stats().watchers === 0, 30_000, 'watches closed');
  });

  it('cuts a watch that takes nothing for the stall timeout (RST_STREAM), then serves others as usual', async () => {
    s = await seededServer(1);
    const a = await register(s, 'watcher-a');
    const conn = await zeroWindowSession(s, a);
    sessions.push(conn);
    const accepted = await Promise.all(Array.from({ length: 4 }, () => openWatch(conn)));
    assert.deepEqual(
      accepted.map((o) => o.status),
      Array(4).fill(undefined),
    );
    const resets = accepted.map(
      (o) => new Promise<number>((resolve) => o.stream.once('close', () => resolve(o.stream.rstCode ?? -1))),
    );
    await eventually(() => s.running.watchers.stats().watchers === 0, 30_000, 'stalled watches cut');
    assert.equal(s.running.watchers.stats().stalled, 4);
    assert.deepEqual(await Promise.all(resets), Array(4).fill(http2.constants.NGHTTP2_CANCEL));

    const client = sessionClient(s, a);
    try {
      const messages = await collectWatch(client, 0, (m) => m[m.length - 1]!.synced);
      assert.equal(
        messages.reduce((n, m) => n + m.revocations.length, 0),
        3000,
      );
    } finally {
      client.close();
    }
  });
});
