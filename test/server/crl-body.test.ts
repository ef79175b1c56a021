/**
 * The CRL listener's bodies: the PEM written piece by piece is byte for byte what `encodePem` makes, its length is
 * known without encoding, the DER goes out as views of the published buffer, and a slow reader gets every byte
 * (the writes wait for the socket to drain).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { derChunks, pemChunks, pemLength, writeChunks } from '../../src/server/revocation/crl-body';
import { encodePem } from '../../src/x509/pem';

describe('CRL bodies in chunks', () => {
  it('PEM in pieces equals encodePem for every size around the line and piece boundaries', () => {
    for (const chunkBytes of [64, 100, 4096]) {
      for (const size of [0, 1, 2, 3, 47, 48, 49, 95, 96, 97, 143, 144, 1000, 4097]) {
        const ders = [randomBytes(size), randomBytes((size * 7) % 301)];
        const want = ders.map((d) => encodePem('X509 CRL', d)).join('');
        const pieces = [...pemChunks(ders, 'X509 CRL', chunkBytes)];
        const got = Buffer.concat(pieces).toString('latin1');
        assert.equal(got, want, `size ${size}, chunk ${chunkBytes}`);
        assert.equal(pemLength(ders, 'X509 CRL'), Buffer.byteLength(want), `length, size ${size}`);
        assert.ok(
          pieces.every((p) => p.length <= chunkBytes + 200),
          'a piece much larger than asked',
        );
      }
    }
  });

  it('DER in views of the published buffer, none larger than asked, nothing copied', () => {
    const backing = randomBytes(10_000);
    const der = new Uint8Array(backing.buffer, backing.byteOffset + 7, 9_000);
    const chunks = [...derChunks(der, 1024)];
    assert.equal(chunks.length, 9);
    assert.ok(chunks.every((c) => c.length <= 1024 && c.buffer === der.buffer));
    assert.ok(Buffer.concat(chunks).equals(Buffer.from(der)));
  });

  it('a reader slower than the writes gets every byte, in order', async function () {
    this.timeout(30_000);
    const body = randomBytes(8 * 1024 * 1024);
    let drains = 0;
    const server = http.createServer((_req, res) => {
      res.on('drain', () => (drains += 1));
      res.writeHead(200, { 'Content-Length': body.length });
      void writeChunks(res, derChunks(body, 64 * 1024));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const got = await new Promise<Buffer>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/' }, (res) => {
            const parts: Buffer[] = [];
            res.pause();
            // Read a little at a time, so the server's socket fills and its writes must wait.
            const pump = setInterval(() => {
              let c: Buffer | null;
              for (let i = 0; i < 8 && (c = res.read() as Buffer | null) !== null; i++) parts.push(c);
            }, 1);
            res.on('end', () => {
              clearInterval(pump);
              resolve(Buffer.concat(parts));
            });
            res.on('error', reject);
          })
          .on('error', reject);
      });
      assert.ok(got.equals(body), 'the body read differs from the one written');
      assert.ok(drains > 0, 'the writes never waited for the socket to drain');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
