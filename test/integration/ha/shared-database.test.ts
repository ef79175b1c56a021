/**
 * Several servers on one PostgreSQL database, each with its own data dir (its own CA keys) and listener: every
 * server's roots in the shared bundle, rotation on one reaching the others' bundles and WatchBundle streams,
 * join tokens single use across servers, EndSession on one reaching another's WatchRevocations and revocation
 * state through LISTEN/NOTIFY.
 */
import * as assert from 'node:assert/strict';
import { ErrorCode } from '../../../src/errors';
import { verifyX509Svid } from '../../../src/verify';
import type { WatchRevocationsResponse } from '../../../src/gen/lanyard/v1/session';
import { waitFor } from '../../support/agent';
import type { TestServer } from '../../support/test-server';
import { activeRootOf, rootsOf, startSharedServer } from '../../support/ha';
import { attest, connectPublic, newKey, watchBundle } from '../../support/public-client';
import {
  collectWatch,
  endSession,
  id,
  register,
  sessionClient,
  startSession,
  TD,
} from '../../support/sessions';
import { usePostgresDatabase } from '../../support/postgres-cluster';

describe('several servers on one PostgreSQL', function () {
  this.timeout(120_000);
  const servers: TestServer[] = [];

  const pg = usePostgresDatabase('ha', {
    beforeDrop: async () => {
      for (const s of servers.splice(0)) await s.stop();
    },
  });

  async function startServers(n: number): Promise<TestServer[]> {
    const started: TestServer[] = [];
    for (let i = 0; i < n; i++) {
      const s = await startSharedServer(pg.cluster, pg.database);
      servers.push(s);
      started.push(s);
    }
    return started;
  }

  it('gives each server its own CA, every root in every bundle; an SVID from one verifies at the other', async () => {
    const [a, b] = await startServers(2);
    const rootA = activeRootOf(a!).sha256Hex;
    const rootB = activeRootOf(b!).sha256Hex;
    assert.notEqual(rootA, rootB, 'each server signs with its own CA');
    // A learns B's root from the notification B's start sent.
    await waitFor(() => rootsOf(a!).has(rootB) && rootsOf(b!).has(rootA));

    const planner = await register(a!, 'planner');
    verifyX509Svid(planner.chain, b!.running.ca.bundle());
    const tool = await register(b!, 'tool');
    verifyX509Svid(tool.chain, a!.running.ca.bundle());
    // B's session service accepts A's SVID over mTLS.
    const { res } = await startSession(b!, planner, { scopes: [] });
    assert.ok(res.sessionId);
  });

  it("reaches the other servers' bundles and WatchBundle streams when one rotates", async () => {
    const [a, b] = await startServers(2);
    await waitFor(() => rootsOf(a!).size === 2 && rootsOf(b!).size === 2);
    const pub = connectPublic(b!.running.publicAddress, b!.running.ca.bundle().toPem(), TD);
    const watch = watchBundle(pub);
    try {
      const first = await watch.next(1);
      await a!.running.ca.rotate('prepare');
      const next = await watch.next(2);
      assert.ok(next.bundle!.sequence > first.bundle!.sequence);
      assert.equal(next.bundle!.x509Authorities.length, 3, "B's watchers see A's prepared root");
      await a!.running.ca.rotate('activate');
      const fresh = await register(a!, 'after-rotation');
      verifyX509Svid(fresh.chain, b!.running.ca.bundle());
    } finally {
      watch.cancel();
      pub.close();
    }
  });

  it('lets a join token be redeemed on exactly one server when both try at the same moment', async () => {
    const [a, b] = await startServers(2);
    await waitFor(() => rootsOf(a!).size === 2 && rootsOf(b!).size === 2);
    await a!.client.createEntry({
      entry: { spiffeId: id('racer'), selectors: [{ type: 'unix', value: 'name:racer' }] },
    });
    for (let round = 0; round < 5; round++) {
      const { token } = await a!.client.createJoinToken({ spiffeId: id('racer') });
      const clients = [a!, b!, a!, b!].map((s) =>
        connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD),
      );
      try {
        const results = await Promise.allSettled(
          clients.map((c) =>
            attest(c.attestation, {
              attestorType: 'join_token',
              evidence: Buffer.from(token),
              csr: newKey().csr,
            }),
          ),
        );
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, `round ${round}`);
        for (const r of results) {
          if (r.status === 'rejected') {
            const code = (r.reason as { metadata: { get(k: string): unknown[] } }).metadata.get(
              'lanyard-error-code',
            );
            assert.deepEqual(code, [ErrorCode.TOKEN_SPENT]);
          }
        }
      } finally {
        for (const c of clients) c.close();
      }
    }
  });

  it("ends a session on one server and the other's WatchRevocations stream hears it", async () => {
    const [a, b] = await startServers(2);
    await waitFor(() => rootsOf(a!).size === 2 && rootsOf(b!).size === 2);
    const planner = await register(a!, 'planner', { admin: true });
    const { agent: session, res } = await startSession(a!, planner, { scopes: [] });
    const watcher = sessionClient(b!, planner);
    try {
      const names = (m: WatchRevocationsResponse): boolean =>
        m.revocations.some((r) => r.kind === 'session' && r.id === res.sessionId);
      let synced!: () => void;
      const isSynced = new Promise<void>((resolve) => (synced = resolve));
      const heard = collectWatch(watcher, 0, (messages) => {
        if (messages.some((m) => m.synced)) synced();
        return messages.some(names);
      });
      // B's stream has sent its full state (without the session) before A ends it: only A's notification can
      // bring it to B's watchers now.
      await isSynced;
      await endSession(a!, session, res.sessionId, 'done');
      const messages = await heard;
      assert.ok(messages.some(names));
      // B refuses the ended session's SVID for session calls too: it reads the shared state.
      assert.ok((await b!.running.store.getSession(res.sessionId)).endedAt);
    } finally {
      watcher.close();
    }
  });
});
