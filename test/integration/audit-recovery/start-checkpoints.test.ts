/**
 * The server's start-up over a chain of thousands of stored checkpoints: it finds the last one it signed from the
 * newest stored one, without reading every checkpoint into memory; a forged newest row is not trusted, and the
 * good ones behind it are still found.
 */
import assert from 'node:assert/strict';
import { signCheckpoint } from '../../../src/audit/checkpoint';
import { AuditSigningKey } from '../../../src/audit/audit-key';
import { openDefaultStore } from '../../../src/server/run';
import type { Store } from '../../../src/store/store';
import { startTestServer, type TestServer } from '../../support/test-server';

describe('audit recorder start-up over many checkpoints', function () {
  this.timeout(120_000);
  const servers: TestServer[] = [];
  after(async () => {
    for (const s of servers) await s.stop().catch(() => undefined);
  });

  /** Starts on `dir` with a store that counts calls reading every checkpoint at once, and pages. */
  const restart = async (dir: string): Promise<{ s: TestServer; calls: { all: number; pages: number } }> => {
    const calls = { all: 0, pages: 0 };
    const s = await startTestServer({
      dir,
      start: {
        openStore: async (config): Promise<Store> => {
          const store = await openDefaultStore(config);
          const { checkpoints, readCheckpoints } = store.audit;
          store.audit.checkpoints = (c) => {
            calls.all++;
            return checkpoints(c);
          };
          store.audit.readCheckpoints = (c, a, l) => {
            calls.pages++;
            return readCheckpoints(c, a, l);
          };
          return store;
        },
      },
    });
    servers.push(s);
    return { s, calls };
  };

  it('reads only the newest checkpoint when it verifies, pages when it is forged', async () => {
    const first = await startTestServer();
    servers.push(first);
    const dir = first.dir;
    const chain = first.running.audit.chain;
    const key = first.running.audit.key;
    const head = await first.running.store.audit.head(chain);
    // 2,500 checkpoints of the head, as a server signing it over and over would leave them.
    const t0 = Date.now();
    for (let i = 0; i < 2_500; i++) {
      await first.running.store.audit.addCheckpoint(signCheckpoint(head, key, new Date(t0 + i)));
    }
    await first.stop();

    const { s: second, calls } = await restart(dir);
    assert.equal(calls.all, 0, 'start-up does not read every checkpoint');
    assert.equal(calls.pages, 0, 'nor pages through them: the newest verifies');
    // It knows the head is signed: nothing new to sign.
    assert.equal(await second.running.audit.checkpoint(), undefined);
    // A forged newest checkpoint, beyond the head, with a signature of another key.
    const forger = AuditSigningKey.generate();
    const forged = signCheckpoint({ chain, seq: head.seq + 1000, hash: head.hash }, forger, new Date());
    await second.running.store.audit.addCheckpoint({ ...forged, keyId: key.publicKey.keyId });
    await second.stop();

    const { s: third, calls: again } = await restart(dir);
    assert.equal(again.all, 0);
    assert.ok(again.pages >= 3, `${again.pages} pages: the others were read to find the good one`);
    // Had the forged one been taken for the last signed head, the chain (which ends before it) would not be signed.
    await third.running.audit.record({ event: 'admin.read', decision: 'allow', actor: 'admin-socket' });
    const signed = await third.running.audit.checkpoint();
    assert.ok(signed !== undefined && signed.seq > head.seq, 'the new head is signed');
  });
});
