/**
 * The first new watcher after a server start (issue 15): once ready, the server reads the stored revocation
 * state into the kept snapshot chunks (revocation_feed.warm_snapshot), so that watcher is served like every
 * later one, without reading the state itself. A watcher that arrives during the warm-up joins its reads, and a
 * revocation committed meanwhile still reaches it. Real servers on loopback restarted on one data dir, real
 * SQLite, the library's watcher.
 */
import assert from 'node:assert/strict';
import { watchRevocationsInto } from '../../../src/client/revocation-watch';
import { WATCH_DEFAULTS } from '../../../src/server/sessions/watch-revocations';
import type { ServerConfig } from '../../../src/server/config';
import { RevocationCache } from '../../../src/verify';
import { waitFor } from '../../support/agent';
import {
  CHUNKED_STATE_REVOCATIONS as SEEDED,
  FULL_STATE_CHUNKS as FULL_CHUNKS,
  revocationRefusal as refusal,
} from '../../support/revocations';
import { type Agent, endSession, register, sessionClient, startSession } from '../../support/sessions';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';

const feed = (warmSnapshot: boolean): Partial<ServerConfig> => ({
  revocationFeed: { heartbeatSeconds: 15, stallTimeoutSeconds: 30, warmSnapshot },
});

describe('WatchRevocations: the state read ahead of the first watcher after a start', function () {
  this.timeout(180_000);
  const dir = tempDataDir();
  let churner: Agent;
  let verifier: Agent;
  const ended: Agent[] = [];
  let live: Agent;
  /** The `after` of each full chunk of the seeded state, in order. */
  let chunkStarts: number[];

  before(async () => {
    const s = await startTestServer({ dir, config: feed(false) });
    try {
      churner = await register(s, 'churner');
      verifier = await register(s, 'verifier');
      const expiresAt = new Date(Date.now() + 3600_000);
      await s.running.store.transaction(async (tx) => {
        for (let i = 0; i < SEEDED; i++) {
          const serial = (0x6000_0000_0000 + i * 7919).toString(16);
          await tx.addRevocation(
            { kind: 'certificate', id: serial, reason: 'seeded', expiresAt },
            new Date(),
          );
        }
      });
      for (let i = 0; i < 2; i++) {
        const { agent, res } = await startSession(s, churner);
        await endSession(s, agent, res.sessionId, 'before the restart');
        ended.push(agent);
      }
      live = (await startSession(s, churner)).agent;
      const stored = await s.running.store.listRevocations(0);
      chunkStarts = [0];
      for (let i = 1; i <= FULL_CHUNKS; i++)
        chunkStarts.push(stored[i * WATCH_DEFAULTS.snapshotRows - 1]!.sequence);
    } finally {
      await s.stop();
    }
  });

  /** A new watcher until synced and caught up with the store; returns its cache (closed by the caller). */
  const watchAll = async (s: TestServer): Promise<RevocationCache> => {
    const cache = new RevocationCache();
    const client = sessionClient(s, verifier);
    const watch = watchRevocationsInto(client, cache, { retryMs: 100 });
    try {
      await watch.ready;
      const head = await s.running.store.lastRevocationSequence();
      await waitFor(() => cache.sequence >= head);
      return cache;
    } finally {
      watch.close();
      client.close();
    }
  };

  const holdsEverything = async (s: TestServer, cache: RevocationCache, revoked: Agent[]): Promise<void> => {
    assert.equal(cache.size, (await s.running.store.listRevocations(0)).length, 'every revocation, once');
    for (const a of revoked) assert.equal(refusal(a.chain, s, cache), 'ERR_REVOKED');
    assert.equal(refusal(live.chain, s, cache), undefined);
  };

  it('the first watcher after a start is served the warmed chunks: it reads only the partial tail', async () => {
    const s = await startTestServer({ dir, config: feed(true) });
    let cache: RevocationCache | undefined;
    try {
      // Started by the server itself once ready.
      const warming = s.running.watchers.warmUp;
      assert.ok(warming !== undefined, 'no warm-up started');
      const warmed = await warming;
      assert.equal(warmed.outcome, 'done');
      assert.equal(warmed.chunks, FULL_CHUNKS);
      // The warm-up is a read: every full chunk once, then the partial one that ends the state.
      assert.deepEqual(s.running.watchers.snapshotReads(), chunkStarts);

      cache = await watchAll(s);
      assert.deepEqual(
        s.running.watchers.snapshotReads(),
        [...chunkStarts, chunkStarts[FULL_CHUNKS]],
        'the watcher read only what follows the kept chunks',
      );
      await holdsEverything(s, cache, ended);
    } finally {
      cache?.close();
      await s.stop();
    }
  });

  it('a watcher arriving during the warm-up joins its reads and gets what was revoked meanwhile', async () => {
    const s = await startTestServer({ dir, config: feed(true) });
    let cache: RevocationCache | undefined;
    try {
      // Not waiting for the warm-up: a session ends and a watcher starts while it reads.
      const { agent, res } = await startSession(s, churner);
      const ending = endSession(s, agent, res.sessionId, 'during the warm-up');
      const watching = watchAll(s);
      await ending;
      cache = await watching;
      const warmed = await s.running.watchers.warmUp;
      assert.equal(warmed?.outcome, 'done');

      // Each full chunk read once, by the warm-up or the watcher, never both.
      const reads = s.running.watchers.snapshotReads();
      for (const after of chunkStarts.slice(0, FULL_CHUNKS)) {
        assert.equal(reads.filter((r) => r === after).length, 1, `reads ${JSON.stringify(reads)}`);
      }
      await holdsEverything(s, cache, [...ended, agent]);
      ended.push(agent);
    } finally {
      cache?.close();
      await s.stop();
    }
  });

  it('with warm_snapshot false nothing is read until a watcher asks', async () => {
    const s = await startTestServer({ dir, config: feed(false) });
    let cache: RevocationCache | undefined;
    try {
      assert.equal(s.running.watchers.warmUp, undefined);
      assert.deepEqual(s.running.watchers.snapshotReads(), [], 'the state was read before any watcher asked');
      cache = await watchAll(s);
      // The watcher read the whole state: each full chunk once (kept from then on), the partial tail at least once
      // (never kept: a watcher that resumes, as one cut off under load does, reads it again).
      const reads = s.running.watchers.snapshotReads();
      for (const after of chunkStarts.slice(0, FULL_CHUNKS)) {
        assert.equal(reads.filter((r) => r === after).length, 1, `reads ${JSON.stringify(reads)}`);
      }
      const tail = chunkStarts[FULL_CHUNKS]!;
      assert.ok(reads.includes(tail), `the tail was not read: ${JSON.stringify(reads)}`);
      assert.deepEqual(
        reads.filter((r) => !chunkStarts.includes(r)),
        [],
        `reads outside the chunks: ${JSON.stringify(reads)}`,
      );
      await holdsEverything(s, cache, ended);
    } finally {
      cache?.close();
      await s.stop();
    }
  });
});
