/**
 * The CRL build worker writes its DER into buffers reused between builds (crl-buffers.ts): a buffer is written
 * again only when no published CRL and no HTTP body still reads it. Real store, CA, worker thread and HTTP
 * listener on loopback; the bytes compared with a copy and with the inline builder.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { CrlBufferHold } from '../../src/server/revocation/crl-buffers';
import { InlineCrlBuilder, WorkerCrlBuilder } from '../../src/server/revocation/crl-builder';
import { crlPaths, startCrlHttpServer, type CrlHttpServer } from '../../src/server/revocation/crl-http';
import { readChildren, readSingleTlv, tlvBytes } from '../../src/x509/der';
import { crlSerials, useRevocationFixture } from '../support/revocations';

/** The signed part of a CRL (what the signature covers). */
function tbsOf(der: Uint8Array): Buffer {
  return Buffer.from(tlvBytes(der, readChildren(der, readSingleTlv(der))[0]!));
}

/** A GET's whole body; `hold`, when given, is awaited after the first bytes with the response paused. */
function get(url: string, hold?: (firstBytes: number) => Promise<void>): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        const parts: Buffer[] = [];
        let paused = hold === undefined;
        res.on('data', (b: Buffer) => {
          parts.push(b);
          if (paused) return;
          paused = true;
          res.pause();
          hold!(b.length).then(() => res.resume(), reject);
        });
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          else resolve(Buffer.concat(parts));
        });
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** Revocations: a DER of about 8 MB, more than loopback's socket buffers take from a paused reader. */
const N = 320_000;

describe('CRL buffers reused between builds', function () {
  this.timeout(120_000);
  let server: CrlHttpServer | undefined;
  const f = useRevocationFixture('lanyard-crl-buffers', {
    beforeStop: async () => {
      await server?.close();
      server = undefined;
    },
  });

  it('a GET still reading a CRL while newer ones are published gets its bytes intact; new GETs the newest', async () => {
    // Larger than what loopback's socket buffers take from a paused reader, so the body is still being read
    // from the CRL's buffer when the later builds run.
    await f.seed(N);
    const publisher = f.publisher({ maxWaitMs: 120_000 });
    server = await startCrlHttpServer({
      listen: { host: '127.0.0.1', port: 0 },
      trustDomain: 'example.org',
      publisher,
    });
    const url = `http://${server.address}${crlPaths('example.org').der}`;
    const first = await get(url);
    assert.ok(first.length > 7_500_000, `a CRL of ${first.length} bytes`);

    let newest: Buffer = Buffer.alloc(0);
    const during = await get(url, async () => {
      // Two builds while this body is read: the first goes to a new buffer (the read one is published), the
      // second would reuse the read one if its reader were not counted.
      for (const serial of ['b1', 'b2']) {
        await f.revoke(serial);
        newest = await get(url);
        assert.ok(crlSerials(newest).includes(serial), `${serial} in the CRL served after its revocation`);
      }
    });
    assert.ok(during.equals(first), 'the body read across two publishes differs from the CRL it began with');

    // The read buffer is free again: a further build may reuse it, and serves its own bytes.
    await f.revoke('b3');
    const later = await get(url);
    const serials = crlSerials(later);
    assert.ok(serials.includes('b1') && serials.includes('b3'));
    assert.equal(serials.length, N + 3);
    // Still intact: the bytes a finished GET received are its own copy, not the buffer's.
    assert.ok(crlSerials(newest).includes('b2') && !crlSerials(newest).includes('b3'));

    // Larger than every buffer the pool holds: a new one, served whole.
    await f.seed(20_000, N);
    publisher.invalidate();
    const larger = await get(url);
    assert.equal(crlSerials(larger).length, N + 20_003);
    assert.equal(readSingleTlv(larger).end, larger.length, 'the DER is exactly one CRL, nothing after it');
  });

  it('the signed bytes are those of the inline builder, in a reused buffer and in one that outgrew the pool', async () => {
    const worker = new WorkerCrlBuilder(f.store, {
      sqliteFile: f.store.file,
      durable: () => f.store.durableBarrier(),
    });
    const inline = new InlineCrlBuilder(f.store);
    try {
      let number = 10n;
      let held: CrlBufferHold | undefined;
      const both = async (): Promise<Uint8Array> => {
        const request = {
          full: true,
          after: 0,
          header: { crlNumber: number++, thisUpdate: f.dataDir.clock.now, nextUpdate: f.later(300) },
          signers: f.ca.crlSigners(),
        };
        const w = await worker.build(request);
        const i = await inline.build(request);
        assert.ok(w.hold instanceof CrlBufferHold);
        held?.unpublish();
        held = w.hold;
        assert.equal(w.crls.length, i.crls.length);
        for (let k = 0; k < w.crls.length; k++) {
          assert.ok(tbsOf(w.crls[k]!.der).equals(tbsOf(i.crls[k]!.der)), 'the signed content differs');
          assert.equal(readSingleTlv(w.crls[k]!.der).end, w.crls[k]!.der.byteLength);
        }
        return w.crls[0]!.der;
      };
      await f.seed(2_000);
      await both();
      await f.revoke('c1');
      await both();
      // Both buffers were written once; the first went back to the pool when the second was published.
      assert.equal(worker.buffers.size, 1);
      await f.revoke('c2');
      await both();
      await f.seed(5_000, 2_000);
      const grown = await both();
      assert.equal(crlSerials(grown).length, 7_002);
    } finally {
      await worker.close();
      await inline.close();
    }
  });
});
