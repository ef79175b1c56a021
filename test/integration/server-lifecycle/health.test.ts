/**
 * Health follows the CA: with the rotation timer off, a CA (or server SVID) that expires turns the server and
 * the issuing services NOT_SERVING on both listeners, Check and Watch; a tick that makes a new CA turns them
 * SERVING again. Services that do not issue stay SERVING throughout.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import {
  checkHealth as check,
  healthClient,
  HealthClients,
  watchHealth as watch,
  type HealthClient,
} from '../../support/health-client';
import { startTestServer, type TestServer } from '../../support/test-server';
import {
  attest,
  connectPublic,
  newKey,
  PUBLIC_CHANNEL_OPTIONS,
  publicCredentials,
} from '../../support/public-client';

const TD = 'lanyard.local';
/**
 * Expiries happen in real time: the TLS clients check certificates against the real clock, so an injected
 * server clock cannot move past them. What must happen before the expiry (start-up, the first TLS checks, the
 * watches opened) takes well under a second on an idle machine; the lifetimes leave an order of magnitude more
 * for a loaded one, and the tests wait for each expiry with a Watch, never for a fixed time.
 */
const CA_TTL_SECONDS = 16;
const SERVER_SVID_TTL_SECONDS = 6;
const ISSUING = ['', 'lanyard.v1.AttestationService', 'lanyard.v1.NodeService', 'lanyard.v1.SessionService'];

describe('health follows the CA', function () {
  this.timeout(60_000);
  let t: TestServer | undefined;
  const clients = new HealthClients();
  afterEach(async () => {
    clients.closeAll();
    if (t) {
      await t.stop();
      fs.rmSync(t.dir, { recursive: true, force: true });
    }
    t = undefined;
  });

  const admin = (s: TestServer): HealthClient => clients.admin(s);
  /** Over TLS trusting the bundle and checking the server's SPIFFE ID, as workloads connect. */
  const verified = (s: TestServer): HealthClient =>
    clients.keep(
      healthClient(
        s.running.publicAddress,
        publicCredentials(s.running.ca.bundle().toPem(), TD),
        PUBLIC_CHANNEL_OPTIONS,
      ),
    );
  /** Over TLS without verifying the server, as a probe (grpc_health_probe -tls-no-verify) still can when its certificate expired. */
  const probe = (s: TestServer): HealthClient => clients.probe(s);

  it('the active CA expires: NOT_SERVING on both listeners (Check and Watch); a new CA: SERVING again', async () => {
    t = await startTestServer({
      config: { caTtlSeconds: CA_TTL_SECONDS, svidDefaultTtlSeconds: 2 },
      start: { rotationTimer: false },
    });
    const s = t;
    const a = admin(s);
    const p = verified(s);
    for (const n of ISSUING) assert.equal(await check(p, n), 'SERVING', n);
    assert.equal(await check(a, ''), 'SERVING');
    // Opened while the server's certificate is valid; the connection outlives its expiry.
    const adminWatch = watch(a, '');
    const publicWatch = watch(p, 'lanyard.v1.AttestationService');
    await adminWatch.until('SERVING');
    await publicWatch.until('SERVING');

    // No rotation timer: nothing replaces the CA when it expires.
    await adminWatch.until('NOT_SERVING');
    await publicWatch.until('NOT_SERVING');
    assert.ok(s.running.ca.readiness().ready === false);
    assert.equal(await check(a, ''), 'NOT_SERVING');
    assert.equal(await check(a, 'lanyard.v1.RegistrationService'), 'SERVING', 'the admin API still works');
    const pr = probe(s);
    for (const n of ISSUING) assert.equal(await check(pr, n), 'NOT_SERVING', n);
    assert.equal(await check(pr, 'lanyard.v1.BundleService'), 'SERVING');
    assert.ok(s.logs.some((l) => l.includes('CA cannot issue: health NOT_SERVING')));

    // What `lanyard ca rotate` or the timer would do: a tick makes and activates a new CA.
    const tick = await s.running.ca.tick();
    assert.ok(tick.activated !== undefined && tick.serverSvidRenewed);
    await adminWatch.until('SERVING');
    await publicWatch.until('SERVING');
    assert.deepEqual(adminWatch.seen, ['SERVING', 'NOT_SERVING', 'SERVING']);
    assert.equal(await check(a, ''), 'SERVING');
    const fresh = verified(s);
    for (const n of ISSUING) assert.equal(await check(fresh, n), 'SERVING', n);

    // SERVING means it: a workload attests under the new CA.
    const id = `spiffe://${TD}/agents/h`;
    await s.client.createEntry({ entry: { spiffeId: id, selectors: [{ type: 'unix', value: 'uid:1' }] } });
    const { token } = await s.client.createJoinToken({ spiffeId: id });
    const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD);
    try {
      const r = await attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(token),
        csr: newKey().csr,
      });
      assert.equal(r.svid?.spiffeId, id);
    } finally {
      pub.close();
    }
  });

  it('the server SVID expires under a valid CA: NOT_SERVING until it is renewed', async () => {
    t = await startTestServer({
      start: { rotationTimer: false, serverSvidTtlSeconds: SERVER_SVID_TTL_SECONDS },
    });
    const s = t;
    const a = admin(s);
    const w = watch(a, '');
    await w.until('SERVING');
    await w.until('NOT_SERVING');
    const r = s.running.ca.readiness();
    assert.ok(!r.ready && r.reason.includes('server SVID'), JSON.stringify(r));
    assert.equal(await check(probe(s), 'lanyard.v1.AttestationService'), 'NOT_SERVING');

    const tick = await s.running.ca.tick();
    assert.equal(tick.serverSvidRenewed, true);
    assert.equal(tick.activated, undefined, 'the same CA');
    await w.until('SERVING');
    assert.equal(await check(verified(s), 'lanyard.v1.AttestationService'), 'SERVING');
  });

  it('stays NOT_SERVING once close begins, whatever the CA does', async () => {
    t = await startTestServer({ start: { rotationTimer: false } });
    const s = t;
    const a = admin(s);
    const w = watch(a, '');
    await w.until('SERVING');
    const closing = s.running.close();
    s.running.server.setHealth([''], 'SERVING');
    await closing;
    assert.deepEqual(w.seen, ['SERVING', 'NOT_SERVING']);
    t = undefined;
    fs.rmSync(s.dir, { recursive: true, force: true });
  });
});
