/**
 * The public listener presents the renewed server SVID to new connections, without a restart: a short server
 * SVID TTL and the real rotation timer; raw TLS connections before and after the renewal see different
 * certificates, each verifying as spiffe://<td>/lanyard/server against the bundle.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import type { ServerSvid } from '../../../src/ca';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { startTestServer, type TestServer } from '../../support/test-server';
import { connectPublic, getBundle } from '../../support/public-client';

const TD = 'lanyard.local';
const SERVER_ID = `spiffe://${TD}/lanyard/server`;

/** The chain a new TLS connection is shown (leaf first), read without judging it. */
function presentedChain(address: string): Promise<Uint8Array[]> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      {
        host: address.slice(0, i),
        port: Number(address.slice(i + 1)),
        rejectUnauthorized: false,
        ALPNProtocols: ['h2'],
      },
      () => {
        const chain: Uint8Array[] = [];
        let cert: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
        const seen = new Set<string>();
        while (cert?.raw !== undefined && !seen.has(cert.fingerprint256)) {
          seen.add(cert.fingerprint256);
          chain.push(new Uint8Array(cert.raw));
          cert = cert.issuerCertificate;
        }
        socket.destroy();
        resolve(chain);
      },
    );
    socket.on('error', reject);
  });
}

describe('server SVID renewal on the live listener', function () {
  this.timeout(60_000);
  let t: TestServer;
  before(async () => {
    // Renewed at half-life, 2 s after issuance; the rotation timer ticks at least every second.
    t = await startTestServer({ start: { serverSvidTtlSeconds: 4 } });
  });
  after(async () => {
    await t.stop();
    fs.rmSync(t.dir, { recursive: true, force: true });
  });

  it('new connections get the renewed certificate; old and new channels keep working', async () => {
    const bundle = X509Bundle.fromPem(TrustDomain.parse(TD), t.running.ca.bundle().toPem());
    const address = t.running.publicAddress;
    const first = await presentedChain(address);
    const firstLeaf = ParsedCertificate.fromDer(first[0]!);
    assert.equal(firstLeaf.serialHex, t.running.ca.serverSvid().chain[0]!.serialHex);
    assert.equal(verifyX509Svid(first, bundle).id.toString(), SERVER_ID);
    const early = connectPublic(address, t.running.ca.bundle().toPem(), TD);
    await getBundle(early);

    // Wait for the renewal itself, not a guess at its time.
    const renewed = await new Promise<ServerSvid>((resolve) => {
      const off = t.running.ca.onServerSvidChange((svid) => {
        off();
        resolve(svid);
      });
    });
    const second = await presentedChain(address);
    const secondLeaf = ParsedCertificate.fromDer(second[0]!);
    assert.notEqual(secondLeaf.serialHex, firstLeaf.serialHex, 'a different certificate');
    assert.equal(secondLeaf.serialHex, renewed.chain[0]!.serialHex);
    assert.ok(secondLeaf.notAfter > firstLeaf.notAfter);
    assert.equal(verifyX509Svid(second, bundle).id.toString(), SERVER_ID);
    assert.deepEqual(secondLeaf.uriSans, [SERVER_ID]);
    // Negative: past its notAfter the first certificate is refused; the renewed one is what keeps clients going.
    assert.throws(() => verifyX509Svid(first, bundle, { at: new Date(firstLeaf.notAfter.getTime() + 1000) }));
    assert.equal(
      verifyX509Svid(second, bundle, { at: new Date(firstLeaf.notAfter.getTime() + 1000) }).id.toString(),
      SERVER_ID,
    );

    // A fresh gRPC channel (the client's SPIFFE-ID check) and the one opened before both work.
    const fresh = connectPublic(address, t.running.ca.bundle().toPem(), TD);
    try {
      assert.ok((await getBundle(fresh)).bundle);
      assert.ok((await getBundle(early)).bundle);
    } finally {
      fresh.close();
      early.close();
    }
  });
});
