/**
 * The revocation feed cannot be blinded (issue 13.6): an unprivileged workload that grows the revocation list
 * past the 4 MiB message limit (StartSession + EndSession with long reasons) used to leave every new verifier
 * without state, accepting ended sessions. The state now streams in pages bounded by bytes, resumes from a
 * sequence, and ends its initial part with `synced`; reasons are bounded; per-agent limits bound how fast one
 * entry can grow the list; watching needs an SVID.
 *
 * The bulk of the state is seeded into the store directly (13,500 revocations with 256-byte reasons, ~4.4 MiB
 * as one message), the rest goes through the real path (StartSession + EndSession over mTLS).
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { entriesOf, watchRevocationsInto } from '../../../src/client/revocation-watch';
import { unpackRevocations } from '../../../src/internal/revocation-page';
import { WatchRevocationsResponse } from '../../../src/gen/lanyard/v1/session';
import { RevocationCache, verifyX509Svid } from '../../../src/verify';
import { loadConfig } from '../../../src/server/config';
import { startTestServer, type TestServer } from '../../support/test-server';
import {
  type Agent,
  collectWatch,
  endSession,
  id,
  register,
  sessionClient,
  startSession,
} from '../../support/sessions';
import { rejectsGrpc } from '../../support/grpc-refusal';
import { waitFor } from '../../support/agent';

const SEEDED = 13_500;
const REASON = 'r'.repeat(256);
const MAX_MESSAGE = 4 * 1024 * 1024;

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
};

describe('revocation feed: paged, resumable, bounded', function () {
  this.timeout(180_000);
  let s: TestServer;
  let churner: Agent;
  let verifierWl: Agent;
  const ended: Agent[] = [];
  let live: Agent;

  before(async () => {
    s = await startTestServer({
      config: { revocationFeed: { heartbeatSeconds: 1, stallTimeoutSeconds: 30, warmSnapshot: true } },
    });
    churner = await register(s, 'churner');
    verifierWl = await register(s, 'verifier');
    const expiresAt = new Date(Date.now() + 3600_000);
    await s.running.store.transaction(async (tx) => {
      for (let i = 0; i < SEEDED; i++) {
        await tx.addRevocation(
          { kind: 'session', id: `s-seeded-${i.toString(16).padStart(28, '0')}`, reason: REASON, expiresAt },
          new Date(),
        );
      }
    });
    // The real path: sessions started and ended with the longest reason allowed.
    for (let i = 0; i < 8; i++) {
      const { agent, res } = await startSession(s, churner);
      await endSession(s, agent, res.sessionId, REASON);
      ended.push(agent);
    }
    live = (await startSession(s, churner)).agent;
  });
  after(() => s.stop());

  it('a new verifier gets a state past 4 MiB in pages far below the limit, and refuses the ended sessions', async () => {
    const watcher = sessionClient(s, verifierWl);
    try {
      const messages = await collectWatch(watcher, 0, (m) => m[m.length - 1]!.synced);
      const sizes = messages.map((m) => WatchRevocationsResponse.encode(m).finish().length);
      const total = sizes.reduce((a, b) => a + b, 0);
      assert.ok(total > MAX_MESSAGE, `the state (${total} bytes) is larger than one message may be`);
      assert.ok(Math.max(...sizes) <= 64 * 1024, `largest page ${Math.max(...sizes)} bytes`);
      assert.equal(messages[0]!.fullState, true);
      assert.ok(messages.slice(1).every((m) => !m.fullState));
      assert.deepEqual(
        messages.map((m) => m.synced),
        messages.map((_, i) => i === messages.length - 1),
        'only the last page completes the state',
      );
      const sequences = messages.flatMap((m) => m.revocations.map((r) => r.sequence));
      assert.equal(sequences.length, SEEDED + ended.length);
      assert.ok(
        sequences.every((q, i) => i === 0 || q > sequences[i - 1]!),
        'in sequence order, once each',
      );
    } finally {
      watcher.close();
    }

    const cache = new RevocationCache();
    const client = sessionClient(s, verifierWl);
    const watch = watchRevocationsInto(client, cache, { retryMs: 100 });
    try {
      await watch.ready;
      assert.equal(cache.size, SEEDED + ended.length);
      const bundle = s.running.ca.bundle();
      for (const a of ended) {
        assert.equal(
          codeOf(() => verifyX509Svid(a.chain, bundle, { revocation: cache })),
          'ERR_REVOKED',
        );
      }
      verifyX509Svid(live.chain, bundle, { revocation: cache });
    } finally {
      watch.close();
      client.close();
      cache.close();
    }
  });

  it('packed pages: the same revocations in far fewer bytes, each page bounded, the snapshot read once', async () => {
    const watcher = sessionClient(s, verifierWl);
    try {
      const plain = await collectWatch(watcher, 0, (m) => m[m.length - 1]!.synced);
      const packed = await collectWatch(watcher, 0, (m) => m[m.length - 1]!.synced, true);
      assert.ok(packed.every((m) => m.revocations.length === 0));
      const sizes = packed.map((m) => WatchRevocationsResponse.encode(m).finish().length);
      const plainBytes = plain.reduce((n, m) => n + WatchRevocationsResponse.encode(m).finish().length, 0);
      const packedBytes = sizes.reduce((a, b) => a + b, 0);
      assert.ok(packedBytes * 4 < plainBytes, `packed ${packedBytes} bytes, as messages ${plainBytes}`);
      assert.ok(Math.max(...sizes) <= 32 * 1024 + 64, `largest page ${Math.max(...sizes)} bytes`);
      assert.equal(packed[0]!.fullState, true);
      assert.deepEqual(
        packed.map((m) => m.synced),
        packed.map((_, i) => i === packed.length - 1),
      );
      const fromPlain = plain.flatMap((m) =>
        m.revocations.map((r) => [r.sequence, r.kind, r.id, r.reason, r.expiresAt?.getTime()]),
      );
      const fromPacked = packed.flatMap((m) =>
        unpackRevocations(m.packedRevocations).map((r) => [
          r.sequence,
          r.kind,
          r.id,
          r.reason,
          r.expiresAtMs,
        ]),
      );
      assert.deepEqual(fromPacked, fromPlain);
      assert.deepEqual(
        packed.map((m) => m.sequence),
        packed.map((m) => unpackRevocations(m.packedRevocations).at(-1)?.sequence ?? m.sequence),
        'each page says the last sequence it holds',
      );
      // The first chunk of the state is complete and without a gap: kept, and what the next watcher gets.
      const kept = s.running.watchers.snapshotCache();
      assert.ok(kept.chunks >= 1 && kept.bytes > 0, JSON.stringify(kept));
      const again = await collectWatch(watcher, 0, (m) => m[m.length - 1]!.synced, true);
      assert.deepEqual(
        again.map((m) => m.packedRevocations),
        packed.map((m) => m.packedRevocations),
      );
      assert.deepEqual(s.running.watchers.snapshotCache(), kept);
    } finally {
      watcher.close();
    }
  });

  it('a watcher resuming in the middle of the snapshot while sessions end misses nothing', async () => {
    const ender = await register(s, 'ender');
    const client = sessionClient(s, verifierWl);
    const cache = new RevocationCache();
    try {
      // Three pages of the snapshot, then the stream is gone: the cache holds part of a state, not synced.
      const firstPages = await collectWatch(client, 0, (m) => m.length === 3, true);
      for (const m of firstPages) {
        cache.apply({
          entries: entriesOf(m),
          sequence: m.sequence,
          fullState: m.fullState,
          synced: m.synced,
        });
      }
      assert.equal(cache.lastSyncAt, undefined);
      assert.ok(cache.sequence > 0);

      // Sessions end while the watcher resumes and pages through the rest.
      const ending = (async () => {
        const agents: Agent[] = [];
        for (let i = 0; i < 4; i++) {
          const { agent, res } = await startSession(s, ender);
          await endSession(s, agent, res.sessionId, `ended while resuming ${i}`);
          agents.push(agent);
        }
        return agents;
      })();
      const watch = watchRevocationsInto(client, cache, { retryMs: 100 });
      try {
        const newlyEnded = await ending;
        await watch.ready;
        const head = await s.running.store.lastRevocationSequence();
        await waitFor(() => cache.sequence >= head);
        const stored = await s.running.store.listRevocations(0);
        assert.equal(cache.size, stored.length, 'every stored revocation, each once');
        const bundle = s.running.ca.bundle();
        for (const a of [...newlyEnded, ...ended]) {
          assert.equal(
            codeOf(() => verifyX509Svid(a.chain, bundle, { revocation: cache })),
            'ERR_REVOKED',
          );
        }
        verifyX509Svid(live.chain, bundle, { revocation: cache });
      } finally {
        watch.close();
      }
    } finally {
      client.close();
      cache.close();
    }
  });

  it('a watcher that reconnects resumes from its sequence: only what followed, nothing again', async () => {
    const cache = new RevocationCache();
    const client = sessionClient(s, verifierWl);
    const watch = watchRevocationsInto(client, cache, { retryMs: 100 });
    await watch.ready;
    watch.close();
    const held = cache.sequence;
    const { agent, res } = await startSession(s, churner);
    await endSession(s, agent, res.sessionId, 'after the disconnect');
    try {
      const messages = await collectWatch(client, held, (m) => m.some((x) => x.synced));
      assert.equal(messages[0]!.fullState, false);
      assert.deepEqual(
        messages.flatMap((m) => m.revocations.map((r) => [r.id, r.reason])),
        [[res.sessionId, 'after the disconnect']],
      );
      assert.equal(messages[messages.length - 1]!.sequence, held + 1);
    } finally {
      client.close();
      cache.close();
    }
  });

  it('an idle watch gets heartbeats that keep its verifier fresh', async () => {
    const client = sessionClient(s, verifierWl);
    try {
      const head = await s.running.store.lastRevocationSequence();
      const messages = await collectWatch(client, head, (m) => m.length >= 3);
      for (const m of messages) {
        assert.equal(m.revocations.length, 0);
        assert.equal(m.synced, true);
      }
    } finally {
      client.close();
    }
  });

  it('a watcher needs an SVID: without a client certificate the watch is refused', async () => {
    const anonymous = sessionClient(s);
    try {
      await rejectsGrpc(
        collectWatch(anonymous, 0, () => true),
        grpc.status.UNAUTHENTICATED,
        'mTLS',
      );
    } finally {
      anonymous.close();
    }
  });

  it('a reason is at most 256 bytes; the default one, naming a long SPIFFE ID, is cut to fit', async () => {
    const { agent, res } = await startSession(s, churner);
    await rejectsGrpc(
      endSession(s, agent, res.sessionId, 'x'.repeat(257)),
      grpc.status.INVALID_ARGUMENT,
      '256 bytes',
    );
    const longName = `agents/${'n'.repeat(400)}`;
    const long = await register(s, longName);
    const own = await startSession(s, long);
    await endSession(s, own.agent, own.res.sessionId);
    const stored = await s.running.store.getRevocation('session', own.res.sessionId);
    assert.ok(stored);
    assert.ok(Buffer.byteLength(stored.reason) <= 256, `${Buffer.byteLength(stored.reason)} bytes`);
    assert.match(stored.reason, new RegExp(`^ended by ${id('agents/n')}`));
  });
});

describe('per-agent session limits', function () {
  this.timeout(60_000);
  let s: TestServer;
  before(async () => {
    const defaults = loadConfig({ env: {} }).limits;
    s = await startTestServer({
      config: { limits: { ...defaults, liveSessionsPerAgent: 2, endedSessionsPerAgent: 3 } },
    });
  });
  after(() => s.stop());

  it('refuses StartSession with RESOURCE_EXHAUSTED past the live and ended limits, never EndSession', async () => {
    const a = await register(s, 'busy');
    const other = await register(s, 'calm');
    const first = await startSession(s, a);
    const second = await startSession(s, a);
    const refused = await rejectsGrpc(
      startSession(s, a),
      grpc.status.RESOURCE_EXHAUSTED,
      'live_sessions_per_agent',
    );
    assert.equal(refused.metadata.get('lanyard-error-code')[0], 'ERR_QUOTA_EXCEEDED');
    // Another agent is not affected; ending one makes room.
    await startSession(s, other);
    await endSession(s, first.agent, first.res.sessionId);
    const third = await startSession(s, a);
    await endSession(s, second.agent, second.res.sessionId);
    // Ending is never refused, even past the limit of ended sessions.
    await endSession(s, third.agent, third.res.sessionId);
    await rejectsGrpc(startSession(s, a), grpc.status.RESOURCE_EXHAUSTED, 'ended_sessions_per_agent');
    assert.equal(await s.running.store.getRevocation('session', third.res.sessionId).then(Boolean), true);
  });
});
