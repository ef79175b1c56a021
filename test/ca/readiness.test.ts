import assert from 'node:assert/strict';
import { join } from 'node:path';
import { addSeconds, DataDir } from '../support/ca';
import { removeDir, tempDir } from '../support/tmp';
import { T0 } from '../support/clock';

/** CaManager.readiness: what health checks read. Fake clock, real store and disk keys; CA TTL 600 s. */
describe('CaManager.readiness', () => {
  let dir: string;
  let d: DataDir;
  beforeEach(() => {
    dir = tempDir('ca-readiness');
    d = new DataDir(join(dir, 'data'));
  });
  afterEach(async () => {
    await d.stop();
    removeDir(dir);
  });

  it('is ready until the earlier of the CA and server SVID expiry, then says which failed', async () => {
    const { ca } = await d.start({ serverSvidTtlSeconds: 120 });
    const svid = ca.serverSvid();
    const r = ca.readiness(T0);
    assert.ok(r.ready);
    assert.equal(r.until.getTime(), svid.notAfter.getTime());

    const lapsed = ca.readiness(svid.notAfter);
    assert.ok(!lapsed.ready && lapsed.reason.includes('server SVID'), JSON.stringify(lapsed));
    // Renewal restores it, under the same CA.
    await ca.tick(addSeconds(T0, 130));
    const renewed = ca.readiness(addSeconds(T0, 130));
    assert.ok(renewed.ready);

    const caNotAfter = ca.authorities().find((a) => a.state === 'active')!.notAfter;
    const expired = ca.readiness(caNotAfter);
    assert.ok(!expired.ready && expired.reason.includes('no active CA'), JSON.stringify(expired));
  });

  it('caps `until` at the CA expiry when the server SVID would outlive it', async () => {
    const { ca } = await d.start({ serverSvidTtlSeconds: 3600 });
    const r = ca.readiness(T0);
    const caNotAfter = ca.authorities().find((a) => a.state === 'active')!.notAfter;
    assert.ok(r.ready);
    assert.ok(r.until.getTime() <= caNotAfter.getTime());
  });

  it('is not ready once closed, and does not throw', async () => {
    const { ca } = await d.start();
    await ca.close();
    const r = ca.readiness(T0);
    assert.ok(!r.ready && r.reason.includes('closed'));
  });
});
