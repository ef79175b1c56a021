/**
 * The CRL built off the server's thread: the worker's CRLs carry exactly the content the inline builder makes
 * (the signed TBSCertList byte for byte, with the same header), a revocation is in the next CRL served after it,
 * a request is served the last CRL only while it is inside its validity, and a worker stopped in the middle of a
 * build gives an error or the last valid CRL, never a hang and never a CRL past its nextUpdate. Real store, CA and
 * worker threads; a clock moved by hand.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CaManager } from '../../src/ca';
import { InternalError } from '../../src/errors';
import {
  InlineCrlBuilder,
  WorkerCrlBuilder,
  type CrlBuildRequest,
} from '../../src/server/revocation/crl-builder';
import { CrlPublisher } from '../../src/server/revocation/crl-publisher';
import { RevocationFeed } from '../../src/server/sessions/revocation-feed';
import type { SqliteStore } from '../../src/store';
import type { NewSession } from '../../src/store/types';
import { readChildren, readSingleTlv, tlvBytes } from '../../src/x509/der';
import { DataDir } from '../support/ca';

/** The serials a CRL lists, read with the DER reader (the ASN.1 schema parser caps its node count). */
function listedSerials(der: Uint8Array): string[] {
  const tbs = readChildren(der, readSingleTlv(der))[0]!;
  // version, signature, issuer, thisUpdate, nextUpdate, then revokedCertificates when there are any.
  const list = readChildren(der, tbs)[5];
  if (list === undefined || list.tag !== 0x30) return [];
  return readChildren(der, list).map((entry) => {
    const serial = readChildren(der, entry)[0]!;
    return Buffer.from(der.subarray(serial.contentStart, serial.end)).toString('hex').replace(/^0+/, '');
  });
}

/** The signed part of a CRL (what the signature covers), as its DER bytes. */
function tbsOf(der: Uint8Array): Buffer {
  const outer = readSingleTlv(der);
  return Buffer.from(tlvBytes(der, readChildren(der, outer)[0]!));
}

describe('CRL built off the server thread', function () {
  this.timeout(60_000);
  let dir: string;
  let d: DataDir;
  let store: SqliteStore;
  let ca: CaManager;
  let feed: RevocationFeed;
  const later = (s: number): Date => new Date(d.clock.now.getTime() + s * 1000);

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-crl-worker-'));
    d = new DataDir(dir);
    ({ store, ca } = await d.start());
    feed = new RevocationFeed();
  });
  afterEach(async () => {
    await d.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const revoke = async (serial: string, expiresInSeconds = 200, at = d.clock.now): Promise<void> => {
    const r = await store.addRevocation(
      { kind: 'certificate', id: serial, reason: '', expiresAt: later(expiresInSeconds) },
      at,
    );
    feed.publish([r]);
  };
  const seed = async (count: number, from = 0): Promise<void> => {
    await store.transaction(async (tx) => {
      for (let i = from; i < from + count; i++) {
        const serial = (0x4000_0000_0000 + i * 7919).toString(16);
        await tx.addRevocation(
          { kind: 'certificate', id: serial, reason: '', expiresAt: later(3000) },
          d.clock.now,
        );
      }
    });
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
  const publisher = (more: Partial<ConstructorParameters<typeof CrlPublisher>[0]> = {}): CrlPublisher => {
    const p = new CrlPublisher({
      store,
      ca,
      feed,
      clock: d.clock.read,
      logger: d.log.logger,
      validitySeconds: 300,
      refreshSeconds: 60,
      minRebuildMs: 0,
      ...more,
    });
    p.start();
    return p;
  };

  it('makes the same CRL content as the inline builder, full and incremental, across every kind of change', async () => {
    const worker = new WorkerCrlBuilder(store, { sqliteFile: store.file });
    const inline = new InlineCrlBuilder(store);
    try {
      let number = 100n;
      const both = async (full: boolean, after: number): Promise<number> => {
        const thisUpdate = d.clock.now;
        const request: CrlBuildRequest = {
          full,
          after,
          header: { crlNumber: number++, thisUpdate, nextUpdate: later(300) },
          signers: ca.crlSigners(),
        };
        const [w, i] = await Promise.all([worker.build(request), inline.build(request)]);
        assert.equal(w.crls.length, i.crls.length);
        for (let k = 0; k < w.crls.length; k++) {
          assert.equal(w.crls[k]!.authorityId, i.crls[k]!.authorityId);
          assert.ok(tbsOf(w.crls[k]!.der).equals(tbsOf(i.crls[k]!.der)), 'the signed content differs');
        }
        assert.equal(w.revokedCount, i.revokedCount);
        assert.equal(w.throughSequence, i.throughSequence);
        return w.throughSequence;
      };
      await seed(300);
      await revoke('a1', 30);
      let through = await both(true, 0);
      // Appends; an earlier revocation of a listed serial (its entry's bytes change); expiries.
      d.clock.set(later(10));
      await revoke('b2', 30);
      await store.createSession(session('s1'));
      await store.addSessionCertificate('s1', 'a1', later(300));
      await store.addSessionCertificate('s1', 'c3', later(300));
      await store.endSessionTree('s1', new Date(d.clock.now.getTime() - 60_000), 'done');
      through = await both(false, through);
      d.clock.set(later(45));
      await revoke('d4');
      through = await both(false, through);
      const crl = (await worker.build({
        full: false,
        after: through,
        header: { crlNumber: number++, thisUpdate: d.clock.now, nextUpdate: later(300) },
        signers: ca.crlSigners(),
      }))!;
      const serials = listedSerials(crl.crls[0]!.der);
      assert.ok(serials.includes('a1') && serials.includes('c3') && serials.includes('d4'));
      assert.ok(!serials.includes('b2'), 'b2 expired');
    } finally {
      await worker.close();
      await inline.close();
    }
  });

  it('a revoked serial is in the next CRL served after the revocation', async () => {
    const crl = publisher();
    try {
      assert.deepEqual(listedSerials((await crl.current()).activeDer), []);
      await revoke('a1');
      assert.deepEqual(listedSerials((await crl.current()).activeDer), ['a1']);
      await revoke('b2');
      assert.deepEqual(listedSerials((await crl.current()).activeDer).sort(), ['a1', 'b2']);
    } finally {
      await crl.stop();
    }
  });

  it('while a build runs past maxWaitMs, the last CRL is served; once it ends, never again', async () => {
    const crl = publisher({ maxWaitMs: 0 });
    try {
      const first = await crl.current();
      await revoke('a1');
      // The build for a1 runs in the worker; the request does not wait for it.
      const meanwhile = await crl.current();
      assert.equal(meanwhile, first);
      assert.ok(crl.rebuilding);
      const built = await crl.refresh();
      assert.deepEqual(listedSerials(built.activeDer), ['a1']);
      const after = await crl.current();
      assert.equal(after, built);
      assert.notEqual(after, first);
    } finally {
      await crl.stop();
    }
  });

  it('never serves a CRL past its nextUpdate: the request waits for the build, or fails with it', async () => {
    const crl = publisher({ maxWaitMs: 0, refreshSeconds: 1000 });
    try {
      const first = await crl.current();
      // Past nextUpdate (validity 300 s): even with maxWaitMs 0 the request waits for a new CRL.
      d.clock.set(later(301));
      const fresh = await crl.current();
      assert.notEqual(fresh, first);
      assert.ok(fresh.nextUpdate.getTime() > d.clock.now.getTime());

      // Past nextUpdate again, and the build fails (its worker stopped in the middle): an error, not the old CRL.
      d.clock.set(later(301));
      await seed(20_000);
      crl.invalidate();
      const request = crl.current();
      await crl.stopBuildWorkerForDrill({ midBuild: true });
      await assert.rejects(request, InternalError);
      assert.equal(crl.published(), fresh, 'the last one is kept, but not served');
      // The next request builds in a new worker (a full read): everything is there.
      const rebuilt = await crl.current();
      assert.equal(rebuilt.revokedCount, 20_000);
      assert.ok(rebuilt.crlNumber > fresh.crlNumber);
    } finally {
      await crl.stop();
    }
  });

  it('a worker stopped in the middle of a build: an error without a CRL, the last valid one with one', async () => {
    await seed(20_000);
    const crl = publisher();
    try {
      // No CRL yet: the request fails (the HTTP listener answers 503) rather than hanging.
      const none = crl.current();
      await crl.stopBuildWorkerForDrill({ midBuild: true });
      await assert.rejects(none, /CRL build worker stopped/);
      assert.equal(crl.published(), undefined);

      const first = await crl.current();
      assert.equal(first.revokedCount, 20_000);
      // Enough new rows that the incremental build is still running when its worker is stopped.
      await seed(20_000, 20_000);
      await revoke('a1');
      // A valid CRL exists: the failed build leaves it served, until its nextUpdate.
      const during = crl.current();
      await crl.stopBuildWorkerForDrill({ midBuild: true });
      assert.equal(await during, first);
      // The next build reads the whole list in a new worker, and lists the revocation.
      const next = await crl.refresh();
      assert.equal(next.revokedCount, 40_001);
      assert.ok(listedSerials(next.activeDer).includes('a1'));
    } finally {
      await crl.stop();
    }
    // The CA keys reached the worker as handles: no key material in any log line.
    const logs = d.log.raw.join('');
    assert.doesNotMatch(logs, /PRIVATE KEY/);
    for (const s of ca.crlSigners()) {
      const jwk = s.key.export({ format: 'jwk' });
      assert.ok(jwk.d !== undefined && !logs.includes(jwk.d));
    }
  });
});
