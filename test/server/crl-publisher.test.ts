/**
 * CrlPublisher: builds only when asked, reuses its last CRLs until something changed or they are due, adds only
 * the revocations committed since (each serial once, with its earliest revocation time), drops what expired,
 * and reads everything again once per validity period (picking up a certificate recorded for a session after
 * its revocation was read). Real store and CA, a clock moved by hand.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList } from '@peculiar/asn1-x509';
import type { CaManager } from '../../src/ca';
import { CrlPublisher } from '../../src/server/revocation/crl-publisher';
import { RevocationFeed } from '../../src/server/sessions/revocation-feed';
import type { SqliteStore } from '../../src/store';
import type { NewSession } from '../../src/store/types';
import { DataDir } from '../support/ca';
import { T0 } from '../support/clock';

function listedDates(der: Uint8Array): Map<string, number> {
  const list = AsnConvert.parse(der, CertificateList);
  return new Map(
    (list.tbsCertList.revokedCertificates ?? []).map((r) => [
      Buffer.from(r.userCertificate).toString('hex').replace(/^0+/, ''),
      r.revocationDate.getTime().getTime(),
    ]),
  );
}

function listedSerials(der: Uint8Array): string[] {
  const list = AsnConvert.parse(der, CertificateList);
  return (list.tbsCertList.revokedCertificates ?? []).map((r) =>
    Buffer.from(r.userCertificate).toString('hex').replace(/^0+/, ''),
  );
}

describe('CrlPublisher', () => {
  let dir: string;
  let d: DataDir;
  let store: SqliteStore;
  let ca: CaManager;
  let feed: RevocationFeed;
  let crl: CrlPublisher;
  const later = (s: number): Date => new Date(d.clock.now.getTime() + s * 1000);

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-crl-'));
    d = new DataDir(dir);
    ({ store, ca } = await d.start());
    feed = new RevocationFeed();
    crl = new CrlPublisher({
      store,
      ca,
      feed,
      clock: d.clock.read,
      logger: d.log.logger,
      validitySeconds: 300,
      refreshSeconds: 60,
      minRebuildMs: 0,
    });
    crl.start();
  });
  afterEach(async () => {
    await crl.stop();
    await d.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const revoke = async (serial: string, expiresInSeconds: number): Promise<void> => {
    const r = await store.addRevocation(
      { kind: 'certificate', id: serial, reason: '', expiresAt: later(expiresInSeconds) },
      d.clock.now,
    );
    feed.publish([r]);
  };
  const session = (id: string): NewSession => ({
    id,
    entryId: 'e',
    spiffeId: `spiffe://example.org/a`,
    rootSessionId: id,
    principal: { id: 'p', issuer: 'i', provenance: 'workload' },
    intent: '',
    scopes: [],
    depth: 0,
    depthLimit: 0,
    expiresAt: later(500),
  });

  it('builds on demand, reuses the last CRLs while nothing changed, adds only what changed', async () => {
    assert.equal(crl.builds, 0);
    const empty = await crl.current();
    assert.deepEqual(listedSerials(empty.activeDer), []);
    await crl.current();
    assert.equal(crl.builds, 1, 'nothing changed: the same CRL');

    await revoke('a1', 200);
    await revoke('b2', 200);
    const two = await crl.current();
    assert.equal(crl.builds, 2);
    assert.deepEqual(listedSerials(two.activeDer).sort(), ['a1', 'b2']);
    assert.ok(two.crlNumber > empty.crlNumber);

    // A session's certificates join when it ends; a serial revoked both ways is listed once.
    await store.createSession(session('s1'));
    await store.addSessionCertificate('s1', 'a1', later(200));
    await store.addSessionCertificate('s1', 'c3', later(200));
    const { revocations } = await store.endSessionTree('s1', d.clock.now, 'done');
    feed.publish(revocations);
    const three = await crl.current();
    assert.deepEqual(listedSerials(three.activeDer).sort(), ['a1', 'b2', 'c3']);
    assert.equal(three.revokedCount, 3);
  });

  it('drops expired serials when it is due for refresh, and rereads everything once per validity', async () => {
    const at = (sec: number): Date => new Date(T0.getTime() + sec * 1000);
    await revoke('a1', 30);
    await revoke('b2', 500);
    assert.deepEqual(listedSerials((await crl.current()).activeDer).sort(), ['a1', 'b2']);
    d.clock.set(at(61));
    const refreshed = await crl.current();
    assert.equal(crl.builds, 2, 'due for refresh');
    assert.deepEqual(listedSerials(refreshed.activeDer), ['b2']);

    // A certificate recorded for a session after its revocation was read: the periodic full read lists it.
    await store.createSession(session('s1'));
    const { revocations } = await store.endSessionTree('s1', d.clock.now, 'done');
    feed.publish(revocations);
    await crl.current();
    await store.addSessionCertificate('s1', 'ff', at(450));
    d.clock.set(at(130));
    assert.deepEqual(listedSerials((await crl.current()).activeDer), ['b2'], 'incremental: not seen yet');
    // 300 s (the validity) after the first full read.
    d.clock.set(at(301));
    assert.deepEqual(listedSerials((await crl.current()).activeDer).sort(), ['b2', 'ff']);
  });

  it('concurrent requests share one build', async () => {
    await revoke('a1', 200);
    const all = await Promise.all([crl.current(), crl.current(), crl.current()]);
    assert.equal(crl.builds, 1);
    assert.ok(all.every((c) => c === all[0]));
  });

  it('keeps the list right across appends, an earlier revocation of a listed serial and expiries', async () => {
    const second = (t: Date): number => Math.floor(t.getTime() / 1000) * 1000;
    await revoke('a1', 200);
    const first = d.clock.now;
    await crl.current();
    d.clock.set(later(10));
    await revoke('b2', 30);
    await revoke('c3', 200);
    const appended = await crl.current();
    assert.deepEqual([...listedDates(appended.activeDer).keys()], ['a1', 'b2', 'c3']);
    assert.equal(listedDates(appended.activeDer).get('a1'), second(first));

    // The session that holds a1 ended earlier than a1's own revocation was recorded: the earlier time wins,
    // and the entry's bytes change in place.
    await store.createSession(session('s1'));
    await store.addSessionCertificate('s1', 'a1', later(300));
    await store.addSessionCertificate('s1', 'd4', later(300));
    const earlier = new Date(first.getTime() - 5000);
    const { revocations } = await store.endSessionTree('s1', earlier, 'done');
    feed.publish(revocations);
    const replaced = await crl.current();
    const dates = listedDates(replaced.activeDer);
    assert.deepEqual([...dates.keys()].sort(), ['a1', 'b2', 'c3', 'd4']);
    assert.equal(dates.get('a1'), second(earlier));
    assert.equal(replaced.revokedCount, 4);

    // b2 expires (30 s after it was revoked at +10 s); a new serial after that is appended to what is left.
    d.clock.set(later(60));
    await revoke('e5', 200);
    const afterExpiry = await crl.current();
    assert.deepEqual([...listedDates(afterExpiry.activeDer).keys()].sort(), ['a1', 'c3', 'd4', 'e5']);
    assert.equal(afterExpiry.revokedCount, 4);
    assert.match(afterExpiry.pem, /^-----BEGIN X509 CRL-----/);
  });
});
