/**
 * The CRL built off the server's thread: the worker's CRLs carry exactly the content the inline builder makes
 * (the signed TBSCertList byte for byte, with the same header), a revocation is in the next CRL served after it,
 * a request is served the last CRL only while it is inside its validity, and a worker stopped in the middle of a
 * build gives an error or the last valid CRL, never a hang and never a CRL past its nextUpdate. Real store, CA and
 * worker threads; a clock moved by hand.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { InternalError } from '../../src/errors';
import {
  CRL_WORKER_DEFAULTS,
  InlineCrlBuilder,
  WorkerCrlBuilder,
  type CrlBuildRequest,
} from '../../src/server/revocation/crl-builder';
import { readChildren, readSingleTlv, tlvBytes } from '../../src/x509/der';
import { crlSerials as listedSerials, useRevocationFixture } from '../support/revocations';

/** Each revokedCertificates entry of a CRL, as hex of its DER. */
function crlEntries(der: Uint8Array): string[] {
  const tbs = readChildren(der, readSingleTlv(der))[0]!;
  const list = readChildren(der, tbs)[5];
  if (list === undefined || list.tag !== 0x30) return [];
  return readChildren(der, list).map((e) => Buffer.from(tlvBytes(der, e)).toString('hex'));
}

/** The signed part of a CRL (what the signature covers), as its DER bytes. */
function tbsOf(der: Uint8Array): Buffer {
  const outer = readSingleTlv(der);
  return Buffer.from(tlvBytes(der, readChildren(der, outer)[0]!));
}

describe('CRL built off the server thread', function () {
  this.timeout(60_000);
  const f = useRevocationFixture('lanyard-crl-worker');
  const { later, revoke, seed, session, publisher } = f;

  it('makes the same CRL content as the inline builder, full and incremental, across every kind of change', async () => {
    const worker = new WorkerCrlBuilder(f.store, {
      sqliteFile: f.store.file,
      durable: () => f.store.durableBarrier(),
    });
    const inline = new InlineCrlBuilder(f.store);
    try {
      let number = 100n;
      const both = async (full: boolean, after: number): Promise<number> => {
        const thisUpdate = f.dataDir.clock.now;
        const request: CrlBuildRequest = {
          full,
          after,
          header: { crlNumber: number++, thisUpdate, nextUpdate: later(300) },
          signers: f.ca.crlSigners(),
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
      f.dataDir.clock.set(later(10));
      await revoke('b2', 30);
      await f.store.createSession(session('s1'));
      await f.store.addSessionCertificate('s1', 'a1', later(300));
      await f.store.addSessionCertificate('s1', 'c3', later(300));
      await f.store.endSessionTree('s1', new Date(f.dataDir.clock.now.getTime() - 60_000), 'done');
      through = await both(false, through);
      f.dataDir.clock.set(later(45));
      await revoke('d4');
      through = await both(false, through);
      const crl = (await worker.build({
        full: false,
        after: through,
        header: { crlNumber: number++, thisUpdate: f.dataDir.clock.now, nextUpdate: later(300) },
        signers: f.ca.crlSigners(),
      }))!;
      const serials = listedSerials(crl.crls[0]!.der);
      assert.ok(serials.includes('a1') && serials.includes('c3') && serials.includes('d4'));
      assert.ok(!serials.includes('b2'), 'b2 expired');
    } finally {
      await worker.close();
      await inline.close();
    }
  });

  it('reads the store in bounded reads, however cut the same entries as one read', async () => {
    // A session's certificates, one also revoked on its own later, spread over reads of 7 sequences each.
    await seed(40);
    await revoke('a1', 200);
    await f.store.createSession(session('s1'));
    await f.store.addSessionCertificate('s1', 'a1', later(300));
    await f.store.addSessionCertificate('s1', 'c3', later(300));
    await seed(10, 40);
    await f.store.endSessionTree('s1', new Date(f.dataDir.clock.now.getTime() - 60_000), 'done');
    await seed(25, 50);
    const worker = new WorkerCrlBuilder(f.store, {
      sqliteFile: f.store.file,
      durable: () => f.store.durableBarrier(),
      readChunk: 7,
    });
    const inline = new InlineCrlBuilder(f.store);
    try {
      const request: CrlBuildRequest = {
        full: true,
        after: 0,
        header: { crlNumber: 7n, thisUpdate: f.dataDir.clock.now, nextUpdate: later(300) },
        signers: f.ca.crlSigners(),
      };
      const w = await worker.build(request);
      const i = await inline.build(request);
      assert.equal(w.throughSequence, i.throughSequence);
      assert.equal(w.reads, Math.ceil(w.throughSequence / 7), 'one read per 7 sequences');
      assert.equal(w.revokedCount, 77);
      assert.equal(w.revokedCount, i.revokedCount);
      // The order of the entries follows the reads; the entries (serial and date) are the same.
      const entries = (der: Uint8Array): string[] => crlEntries(der).sort();
      assert.deepEqual(entries(w.crls[0]!.der), entries(i.crls[0]!.der));
      // a1 is listed once, with the session's earlier end as its date, in one read or in several.
      const a1 = (der: Uint8Array): string[] => {
        const all = crlEntries(der);
        return listedSerials(der).flatMap((serial, k) => (serial === 'a1' ? [all[k]!] : []));
      };
      assert.equal(a1(w.crls[0]!.der).length, 1);
      assert.deepEqual(a1(w.crls[0]!.der), a1(i.crls[0]!.der));
    } finally {
      await worker.close();
      await inline.close();
    }
  });

  it('the build worker runs at a lower priority than the server thread (Linux)', async function () {
    if (process.platform !== 'linux') this.skip();
    const nice = (tid: string): number => {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // After the command name (in parentheses): state is the 1st field, nice the 17th.
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    };
    const base = nice(String(process.pid));
    if (base >= CRL_WORKER_DEFAULTS.niceness) this.skip();
    const niced = (): string[] =>
      fs.readdirSync('/proc/self/task').filter((t) => nice(t) === CRL_WORKER_DEFAULTS.niceness);
    const before = niced();
    const worker = new WorkerCrlBuilder(f.store, {
      sqliteFile: f.store.file,
      durable: () => f.store.durableBarrier(),
    });
    try {
      await revoke('a1');
      await worker.build({
        full: true,
        after: 0,
        header: { crlNumber: 1n, thisUpdate: f.dataDir.clock.now, nextUpdate: later(300) },
        signers: f.ca.crlSigners(),
      });
      const added = niced().filter((t) => !before.includes(t));
      assert.equal(added.length, 1, 'the build thread, and only it, at the lower priority');
      assert.notEqual(added[0], String(process.pid));
      assert.equal(nice(String(process.pid)), base, "the server's thread keeps its priority");
    } finally {
      await worker.close();
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
      f.dataDir.clock.set(later(301));
      const fresh = await crl.current();
      assert.notEqual(fresh, first);
      assert.ok(fresh.nextUpdate.getTime() > f.dataDir.clock.now.getTime());

      // Past nextUpdate again, and the build fails (its worker stopped in the middle): an error, not the old CRL.
      f.dataDir.clock.set(later(301));
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
    const logs = f.dataDir.log.raw.join('');
    assert.doesNotMatch(logs, /PRIVATE KEY/);
    for (const s of f.ca.crlSigners()) {
      const jwk = s.key.export({ format: 'jwk' });
      assert.ok(jwk.d !== undefined && !logs.includes(jwk.d));
    }
  });
});
