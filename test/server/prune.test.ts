/**
 * The prune timer on a real SQLite store: expired revocations and unredeemable grants go, unexpired ones
 * stay, the sequence keeps growing, a grant is kept through its grace period, and stop() really stops it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pruneOnce, startPruneTimer, type PruneResult } from '../../src/server/revocation/prune-timer';
import { createLogger } from '../../src/server/logging';
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
    assert.deepEqual(await pruneOnce(store, new Date(), 3600), { revocations: 1, grants: 1 });
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
    assert.deepEqual(results[0], { revocations: 1, grants: 0 });
    await timer.stop();
    await revoke('bb', ago(1000));
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(results.length, 1);
    assert.equal((await store.listRevocations(0)).length, 1);
  });
});
