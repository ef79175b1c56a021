/**
 * CrlPublisher: builds only when asked, reuses its last CRLs until something changed or they are due, adds only
 * the revocations committed since (each serial once, with its earliest revocation time), drops what expired,
 * and reads everything again once per validity period (picking up a certificate recorded for a session after
 * its revocation was read). Real store and CA, a clock moved by hand.
 */
import assert from 'node:assert/strict';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList } from '@peculiar/asn1-x509';
import { pemChunks, pemLength } from '../../src/server/revocation/crl-body';
import type { CrlPublisher } from '../../src/server/revocation/crl-publisher';
import { decodePemBlocks } from '../../src/x509/pem';
import { T0 } from '../support/clock';
import { crlSerials as listedSerials, useRevocationFixture } from '../support/revocations';

function listedDates(der: Uint8Array): Map<string, number> {
  const list = AsnConvert.parse(der, CertificateList);
  return new Map(
    (list.tbsCertList.revokedCertificates ?? []).map((r) => [
      Buffer.from(r.userCertificate).toString('hex').replace(/^0+/, ''),
      r.revocationDate.getTime().getTime(),
    ]),
  );
}

describe('CrlPublisher', () => {
  const f = useRevocationFixture('lanyard-crl');
  const { later, revoke, session } = f;
  let crl: CrlPublisher;

  beforeEach(() => {
    crl = f.publisher();
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
    await f.store.createSession(session('s1'));
    await f.store.addSessionCertificate('s1', 'a1', later(200));
    await f.store.addSessionCertificate('s1', 'c3', later(200));
    const { revocations } = await f.store.endSessionTree('s1', f.dataDir.clock.now, 'done');
    f.feed.publish(revocations);
    const three = await crl.current();
    assert.deepEqual(listedSerials(three.activeDer).sort(), ['a1', 'b2', 'c3']);
    assert.equal(three.revokedCount, 3);
  });

  it('drops expired serials when it is due for refresh, and rereads everything once per validity', async () => {
    const at = (sec: number): Date => new Date(T0.getTime() + sec * 1000);
    await revoke('a1', 30);
    await revoke('b2', 500);
    assert.deepEqual(listedSerials((await crl.current()).activeDer).sort(), ['a1', 'b2']);
    f.dataDir.clock.set(at(61));
    const refreshed = await crl.current();
    assert.equal(crl.builds, 2, 'due for refresh');
    assert.deepEqual(listedSerials(refreshed.activeDer), ['b2']);

    // A certificate recorded for a session after its revocation was read: the periodic full read lists it.
    await f.store.createSession(session('s1'));
    const { revocations } = await f.store.endSessionTree('s1', f.dataDir.clock.now, 'done');
    f.feed.publish(revocations);
    await crl.current();
    await f.store.addSessionCertificate('s1', 'ff', at(450));
    f.dataDir.clock.set(at(130));
    assert.deepEqual(listedSerials((await crl.current()).activeDer), ['b2'], 'incremental: not seen yet');
    // 300 s (the validity) after the first full read.
    f.dataDir.clock.set(at(301));
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
    const first = f.dataDir.clock.now;
    await crl.current();
    f.dataDir.clock.set(later(10));
    await revoke('b2', 30);
    await revoke('c3', 200);
    const appended = await crl.current();
    assert.deepEqual([...listedDates(appended.activeDer).keys()], ['a1', 'b2', 'c3']);
    assert.equal(listedDates(appended.activeDer).get('a1'), second(first));

    // The session that holds a1 ended earlier than a1's own revocation was recorded: the earlier time wins,
    // and the entry's bytes change in place.
    await f.store.createSession(session('s1'));
    await f.store.addSessionCertificate('s1', 'a1', later(300));
    await f.store.addSessionCertificate('s1', 'd4', later(300));
    const earlier = new Date(first.getTime() - 5000);
    const { revocations } = await f.store.endSessionTree('s1', earlier, 'done');
    f.feed.publish(revocations);
    const replaced = await crl.current();
    const dates = listedDates(replaced.activeDer);
    assert.deepEqual([...dates.keys()].sort(), ['a1', 'b2', 'c3', 'd4']);
    assert.equal(dates.get('a1'), second(earlier));
    assert.equal(replaced.revokedCount, 4);

    // b2 expires (30 s after it was revoked at +10 s); a new serial after that is appended to what is left.
    f.dataDir.clock.set(later(60));
    await revoke('e5', 200);
    const afterExpiry = await crl.current();
    assert.deepEqual([...listedDates(afterExpiry.activeDer).keys()].sort(), ['a1', 'c3', 'd4', 'e5']);
    assert.equal(afterExpiry.revokedCount, 4);
    // What `/crl/<td>.pem` serves: every CA's CRL, encoded piece by piece from the published DERs.
    const ders = afterExpiry.crls.map((c) => c.der);
    const served = Buffer.concat([...pemChunks(ders, 'X509 CRL', 1024)]).toString('latin1');
    assert.match(served, /^-----BEGIN X509 CRL-----\n/);
    assert.equal(served.length, pemLength(ders, 'X509 CRL'));
    const blocks = decodePemBlocks(served, 'X509 CRL');
    assert.deepEqual(
      blocks.map((b) => Buffer.from(b).toString('hex')),
      ders.map((d) => Buffer.from(d).toString('hex')),
    );
    assert.ok(ders.some((d) => Buffer.from(d).equals(Buffer.from(afterExpiry.activeDer))));
  });
});
