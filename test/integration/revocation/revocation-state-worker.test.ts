/**
 * A new watcher's initial state is read in a worker thread (revocation-snapshot-worker.ts). When that worker dies
 * in the middle of a read (a crash, an out-of-memory kill of the thread; here the drill), the watcher waiting for
 * the read gets a retryable status (UNAVAILABLE), reconnects from the sequence it holds, and ends up with every
 * revocation, including one committed while it was cut off. Real server on loopback, real SQLite, the library's
 * watcher.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { watchRevocationsInto } from '../../../src/client/revocation-watch';
import { WATCH_DEFAULTS } from '../../../src/server/sessions/watch-revocations';
import { RevocationCache } from '../../../src/verify';
import { waitFor } from '../../support/agent';
import {
  CHUNKED_STATE_REVOCATIONS as SEEDED,
  FULL_STATE_CHUNKS as FULL_CHUNKS,
  revocationRefusal as refusal,
} from '../../support/revocations';
import { type Agent, endSession, register, sessionClient, startSession } from '../../support/sessions';
import { startTestServer, type TestServer } from '../../support/test-server';

describe('WatchRevocations: the initial-state worker dies in the middle of a read', function () {
  this.timeout(120_000);
  let s: TestServer;
  let churner: Agent;
  let verifier: Agent;

  before(async () => {
    s = await startTestServer();
    churner = await register(s, 'churner');
    verifier = await register(s, 'verifier');
    const expiresAt = new Date(Date.now() + 3600_000);
    await s.running.store.transaction(async (tx) => {
      for (let i = 0; i < SEEDED; i++) {
        const serial = (0x5000_0000_0000 + i * 7919).toString(16);
        await tx.addRevocation({ kind: 'certificate', id: serial, reason: 'seeded', expiresAt }, new Date());
      }
    });
  });
  after(() => s.stop());

  it('the watcher gets UNAVAILABLE, resumes from its sequence, and misses nothing', async () => {
    const ended = [];
    for (let i = 0; i < 2; i++) {
      const { agent, res } = await startSession(s, churner);
      await endSession(s, agent, res.sessionId, 'before');
      ended.push(agent);
    }
    const live = (await startSession(s, churner)).agent;

    // A first watcher leaves the full chunks kept: the next one is served them without a read, and its first
    // read in the worker is the partial chunk, after three chunks of state.
    const first = new RevocationCache();
    const firstClient = sessionClient(s, verifier);
    const firstWatch = watchRevocationsInto(firstClient, first, { retryMs: 100 });
    await firstWatch.ready;
    firstWatch.close();
    firstClient.close();
    first.close();
    assert.ok(s.running.watchers.snapshotCache().chunks >= FULL_CHUNKS);
    const stored = await s.running.store.listRevocations(0);
    const heldBeforeTheRead = stored[FULL_CHUNKS * WATCH_DEFAULTS.snapshotRows - 1]!.sequence;

    const drill = s.running.watchers.stopSnapshotWorkerForDrill({ midRead: true });
    const cache = new RevocationCache();
    const client = sessionClient(s, verifier);
    const errors: grpc.ServiceError[] = [];
    const resumedFrom: number[] = [];
    let endedMeanwhile: Promise<Agent> | undefined;
    const watch = watchRevocationsInto(client, cache, {
      retryMs: 200,
      onError: (e) => {
        errors.push(e);
        // A session ends while the watcher is cut off: it must be in the state the watcher resumes into.
        endedMeanwhile ??= (async () => {
          const { agent, res } = await startSession(s, churner);
          await endSession(s, agent, res.sessionId, 'while the watcher was cut off');
          return agent;
        })();
      },
      logger: { warn: (o: object) => resumedFrom.push((o as { sequence: number }).sequence) },
    });
    try {
      await drill;
      await watch.ready;
      assert.ok(endedMeanwhile !== undefined, 'the watch broke');
      const meanwhile = await endedMeanwhile;
      const head = await s.running.store.lastRevocationSequence();
      await waitFor(() => cache.sequence >= head);

      assert.deepEqual(
        errors.map((e) => e.code),
        [grpc.status.UNAVAILABLE],
        'one retryable refusal, for the read that died',
      );
      assert.match(errors[0]!.details, /revocation state reader stopped/);
      // It held the three full chunks and resumed after them, not from the start.
      assert.deepEqual(resumedFrom, [heldBeforeTheRead]);
      assert.equal(cache.size, (await s.running.store.listRevocations(0)).length, 'every revocation, once');
      for (const a of [...ended, meanwhile]) assert.equal(refusal(a.chain, s, cache), 'ERR_REVOKED');
      assert.equal(refusal(live.chain, s, cache), undefined);
    } finally {
      watch.close();
      client.close();
      cache.close();
    }
  });
});
