/**
 * When the trail cannot be written, nothing is acknowledged: the call that changed state answers UNAVAILABLE
 * (ERR_AUDIT_WRITE_FAILED) instead of OK, and the server logs it. CreateEntry records inside its own
 * transaction, so the entry is rolled back too (test/integration/audit-recovery/transactional.test.ts covers every such method).
 * Once the trail works again, calls succeed.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { IoError } from '../../../src/errors';
import { openDefaultStore } from '../../../src/server/run';
import type { Store, StoreOps } from '../../../src/store/store';
import { startTestServer, type TestServer } from '../../support/test-server';
import { rejectsWithStatus } from '../../support/grpc-refusal';

describe('audit: a trail that cannot be written acknowledges nothing', function () {
  this.timeout(60_000);
  let s: TestServer;
  let failing = false;

  before(async () => {
    s = await startTestServer({
      start: {
        openStore: async (config) => {
          const store = await openDefaultStore(config);
          const audit = store.audit;
          // The real store, with appends failing while `failing` is set (a full disk, a broken database).
          const flaky: Store['audit'] = {
            ...audit,
            append: (chain, event, now) =>
              failing ? Promise.reject(new IoError('disk full')) : audit.append(chain, event, now),
          };
          Object.defineProperty(store, 'audit', { value: flaky });
          // Appends through a transaction handle fail the same way.
          const transaction = store.transaction.bind(store);
          store.transaction = <T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> =>
            transaction((tx) => {
              const failingTx = Object.create(tx) as StoreOps;
              Object.defineProperty(failingTx, 'audit', {
                value: {
                  append: (chain: string, event: Parameters<StoreOps['audit']['append']>[1], now: Date) =>
                    failing ? Promise.reject(new IoError('disk full')) : tx.audit.append(chain, event, now),
                },
              });
              return fn(failingTx);
            });
          return store;
        },
      },
    });
  });
  after(async () => {
    await s.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
  });

  it('CreateEntry answers UNAVAILABLE with ERR_AUDIT_WRITE_FAILED while appends fail, OK again afterwards', async () => {
    failing = true;
    const e = await rejectsWithStatus(
      s.client.createEntry({
        entry: { spiffeId: 'spiffe://lanyard.local/agents/a', selectors: [{ type: 'unix', value: 'uid:1' }] },
      }),
      grpc.status.UNAVAILABLE,
      'audit trail could not be written',
    );
    assert.equal(e.lanyardCode, 'ERR_AUDIT_WRITE_FAILED');
    assert.ok(s.logs.some((l) => l.includes('audit record could not be written')));
    failing = false;
    const listed = await s.client.listEntries({});
    assert.ok(!listed.entries.some((x) => x.spiffeId === 'spiffe://lanyard.local/agents/a'));
    const ok = await s.client.createEntry({
      entry: { spiffeId: 'spiffe://lanyard.local/agents/b', selectors: [{ type: 'unix', value: 'uid:2' }] },
    });
    assert.equal(ok.entry?.spiffeId, 'spiffe://lanyard.local/agents/b');
  });
});
