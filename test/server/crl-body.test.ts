/**
 * The CRL listener's bodies: the PEM written piece by piece is byte for byte what `encodePem` makes, its length is
 * known without encoding, the DER goes out as views of the published buffer, and a slow reader gets every byte
 * (the writes wait for the socket to drain), the event loop gets a turn between two chunks (so gRPC calls are served
 * during a transfer), and a client that goes away mid-body stops the writing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
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
  it('gives the event loop a turn between two chunks, also when the kernel takes the writes at once', async function () {
    this.timeout(30_000);
    const body = randomBytes(2 * 1024 * 1024);
    // Loop turns, counted in the check phase; the count each chunk was taken at.
    let turns = 0;
    let counting = true;
    const tick = (): void => {
      turns += 1;
      if (counting) setImmediate(tick);
    };
    const takenAt: number[] = [];
    function* counted(): Generator<Buffer> {
      for (const c of derChunks(body, 16 * 1024)) {
        takenAt.push(turns);
        yield c;
      }
    }
    let written!: Promise<void>;
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'Content-Length': body.length });
      setImmediate(tick);
      written = writeChunks(res, counted());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const got = await getBody(port);
      await written;
      assert.ok(got.equals(body), 'the body read differs from the one written');
      assert.equal(takenAt.length, body.length / (16 * 1024));
      const sameTurn = takenAt.findIndex((t, i) => i > 0 && t === takenAt[i - 1]);
      assert.equal(
        sameTurn,
        -1,
        `chunks ${sameTurn - 1} and ${sameTurn} were written in one turn of the loop`,
      );
    } finally {
      counting = false;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('a client that goes away mid-body: the writing stops, the chunks are released, the next GET is whole', async function () {
    this.timeout(30_000);
    const body = randomBytes(16 * 1024 * 1024);
    const chunk = 64 * 1024;
    let taken = 0;
    let closed = 0;
    function* counted(): Generator<Buffer> {
      try {
        for (const c of derChunks(body, chunk)) {
          taken += 1;
          yield c;
        }
      } finally {
        closed += 1;
      }
    }
    const writes: Promise<void>[] = [];
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'Content-Length': body.length });
      writes.push(writeChunks(res, counted()));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      // Reads the first bytes of the body, then drops the connection without reading the rest.
      await new Promise<void>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
          res.once('data', () => {
            (req.socket as Socket).destroy();
            resolve();
          });
        });
        req.on('error', () => undefined);
        req.on('close', () => resolve());
        req.setTimeout(10_000, () => reject(new Error('no body came')));
      });
      await writes[0];
      assert.equal(closed, 1, 'the body generator was left open');
      assert.ok(taken < body.length / chunk, `all ${taken} chunks were made for a client that left`);
      const got = await getBody(port);
      await writes[1];
      assert.ok(got.equals(body), 'the next GET after an aborted one is not whole');
      assert.equal(closed, 2);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

/** GET / on 127.0.0.1:port, the whole body. */
function getBody(port: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve(Buffer.concat(parts)));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}
