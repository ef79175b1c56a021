/**
 * The prune timer on a real SQLite store: expired revocations, unredeemable grants and expired sessions go,
 * unexpired ones stay, the sequence keeps growing, grants and sessions are kept through their grace period, a
 * session a still-valid certificate names (or a kept session descends from) stays, and stop() really stops it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pruneOnce, startPruneTimer, type PruneResult } from '../../src/server/revocation/prune-timer';
import { createLogger } from '../../src/internal/logging';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';

describe('prune timer', function () {
  this.timeout(20_000);
  let dir: string;
  let store: SqliteStore;
  const logger = createLogger({ level: 'silent' });
  const ago = (ms: number): Date => new Date(Date.now() - ms);
  const revoke = (id: string, expiresAt: Date) =>
    store.addRevocation({ kind: 'certificate', id, reason: '', expiresAt }, new Date());

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-prune-'));
    store = await SqliteStore.open({ file: path.join(dir, 'lanyard.db') });
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pruneOnce keeps unexpired revocations and grants within their grace period', async () => {
    await revoke('aa', ago(1000));
    await revoke('bb', ago(-3600_000));
    await store.createSession({
      id: 's',
      entryId: 'e',
      spiffeId: 'spiffe://lanyard.local/a',
      rootSessionId: 's',
      principal: { id: 'p', issuer: 'i', provenance: 'workload' },
      intent: '',
      scopes: [],
      depth: 0,
      depthLimit: 1,
      expiresAt: ago(-3600_000),
    });
    const grant = (id: string, redeemBy: Date) =>
      store.createGrant({
        id,
        parentSessionId: 's',
        childSpiffeId: 'spiffe://lanyard.local/b',
        scopes: [],
        notAfter: ago(-3600_000),
        redeemBy,
        bindingDer: randomBytes(8),
        signature: randomBytes(8),
        parentCertDer: randomBytes(8),
      });
    await grant('old', ago(2 * 3600_000));
    await grant('recent', ago(60_000));
    assert.deepEqual(await pruneOnce(store, new Date(), 3600), { revocations: 1, grants: 1, sessions: 0 });
    assert.deepEqual(
      (await store.listRevocations(0)).map((r) => r.id),
      ['bb'],
    );
    assert.equal((await store.getGrant('recent')).id, 'recent');
    assert.equal(
      (await store.addRevocation({ kind: 'session', id: 's', reason: '', expiresAt: ago(-1) }, new Date()))
        .sequence,
      3,
    );
  });

  const session = (id: string, expiresAt: Date, parentSessionId?: string) =>
    store.createSession({
      id,
      entryId: 'e',
      spiffeId: 'spiffe://lanyard.local/a',
      rootSessionId: parentSessionId === undefined ? id : 'root',
      ...(parentSessionId !== undefined && { parentSessionId }),
      principal: { id: 'p', issuer: 'i', provenance: 'workload' },
      intent: '',
      scopes: [],
      depth: parentSessionId === undefined ? 0 : 1,
      depthLimit: 2,
      expiresAt,
    });
  const exists = async (id: string): Promise<boolean> =>
    store.getSession(id).then(
      () => true,
      (e: { code?: string }) => {
        assert.equal(e.code, 'ERR_NOT_FOUND');
        return false;
      },
    );

  it('prunes sessions past expiry + grace with their serials and grants; keeps unexpired ones', async () => {
    const hour = 3600_000;
    await session('expired', ago(2 * hour));
    await store.addSessionCertificate('expired', 'e1', ago(2 * hour));
    await store.createGrant({
      id: 'g-expired',
      parentSessionId: 'expired',
      childSpiffeId: 'spiffe://lanyard.local/b',
      scopes: [],
      notAfter: ago(2 * hour),
      redeemBy: ago(2 * hour + 30_000),
      bindingDer: randomBytes(8),
      signature: randomBytes(8),
      parentCertDer: randomBytes(8),
    });
    await store.endSessionTree('expired', ago(3 * hour), 'done');
    await session('in-grace', ago(30 * 60_000));
    await store.addSessionCertificate('in-grace', 'e2', ago(30 * 60_000));
    await session('live', ago(-hour));
    await store.addSessionCertificate('live', 'e3', ago(-hour));

    assert.deepEqual(await pruneOnce(store, new Date(), 3600), { revocations: 1, grants: 1, sessions: 1 });
    assert.equal(await exists('expired'), false);
    await assert.rejects(
      store.getGrant('g-expired'),
      (e: { code?: string }) => e.code === 'ERR_GRANT_NOT_FOUND',
    );
    assert.equal(await exists('in-grace'), true);
    assert.deepEqual((await store.getSession('live')).certSerials, ['e3']);
    // Nothing left to do: a second run removes nothing.
    assert.deepEqual(await pruneOnce(store, new Date(), 3600), { revocations: 0, grants: 0, sessions: 0 });
    // The sequence keeps growing past the pruned revocation.
    assert.equal(
      (
        await store.addRevocation(
          { kind: 'session', id: 'live', reason: '', expiresAt: ago(-hour) },
          new Date(),
        )
      ).sequence,
      2,
    );
  });

  it('keeps an expired session that a still-valid certificate names, and the ancestors of a kept session', async () => {
    const hour = 3600_000;
    // Expired by its record, but a certificate of it is still valid (it must stay for Renew and the CRL).
    await session('cert-valid', ago(2 * hour));
    await store.addSessionCertificate('cert-valid', 'c1', ago(-60_000));
    // An expired parent whose delegated child is still live; and an expired grandparent above it.
    await session('grandparent', ago(3 * hour));
    await session('parent', ago(2 * hour), 'grandparent');
    await session('child', ago(-hour), 'parent');
    // An expired parent with an expired child: both go, in one step.
    await session('old-parent', ago(3 * hour));
    await session('old-child', ago(2 * hour), 'old-parent');
    await store.addSessionCertificate('old-child', 'c2', ago(2 * hour));

    assert.equal((await pruneOnce(store, new Date(), 3600)).sessions, 2);
    for (const kept of ['cert-valid', 'grandparent', 'parent', 'child']) {
      assert.equal(await exists(kept), true, kept);
    }
    assert.equal(await exists('old-parent'), false);
    assert.equal(await exists('old-child'), false);
    // The CRL bookkeeping of the kept one is intact.
    assert.deepEqual((await store.getSession('cert-valid')).certSerials, ['c1']);
  });

  it('runs on its interval, reports what it removed, and stops', async () => {
    await revoke('aa', ago(1000));
    const results: PruneResult[] = [];
    const timer = startPruneTimer({
      store,
      clock: () => new Date(),
      logger,
      intervalSeconds: 1,
      onPruned: (r) => results.push(r),
    });
    const deadline = Date.now() + 3000;
    while (results.length === 0) {
      assert.ok(Date.now() < deadline, 'the timer did not prune');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(results[0], { revocations: 1, grants: 0, sessions: 0 });
    await timer.stop();
    await revoke('bb', ago(1000));
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(results.length, 1);
    assert.equal((await store.listRevocations(0)).length, 1);
  });
});
