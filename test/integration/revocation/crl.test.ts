/**
 * The served CRL end to end: a real server with crl.listen_address on 127.0.0.1, a session SVID that ends,
 * the CRL fetched over HTTP, and OpenSSL as the relying party. Plus the HTTP surface's refusals.
 */
import assert from 'node:assert/strict';
import { verify as cryptoVerify } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList } from '@peculiar/asn1-x509';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { signatureSchemeFor } from '../../../src/x509/keys';
import { encodePem } from '../../../src/x509/pem';
import { openssl } from '../../support/x509';
import { startTestServer, type TestServer } from '../../support/test-server';
import { register, sessionClient, startSession, TD, unary } from '../../support/sessions';

async function fetchBytes(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; type: string; body: Buffer }> {
  const res = await fetch(url, init);
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    body: Buffer.from(await res.arrayBuffer()),
  };
}

describe('CRL over HTTP', function () {
  this.timeout(60_000);
  let s: TestServer;
  let base: string;
  before(async () => {
    s = await startTestServer({ config: { crlListenAddress: { host: '127.0.0.1', port: 0 } } });
    assert.ok(s.running.crlAddress);
    base = `http://${s.running.crlAddress}/crl/${TD}`;
  });
  after(() => s.stop());

  it('an ended session is in the served CRL: OpenSSL rejects its SVID, accepts a live one', async () => {
    const wl = await register(s, 'worker');
    const ended = await startSession(s, wl);
    const live = await startSession(s, wl);
    const before = await fetchBytes(`${base}.crl`);
    assert.equal(before.status, 200);
    assert.equal(before.type, 'application/pkix-crl');

    const c = sessionClient(s, ended.agent);
    await unary(c.endSession.bind(c), { sessionId: ended.res.sessionId, reason: 'task done' });
    c.close();
    // No waiting: a request builds the CRL anew when a revocation committed since the last one.
    const der = await fetchBytes(`${base}.crl`);
    assert.equal(der.status, 200);
    const dir = fs.mkdtempSync(path.join(s.dir, 'crl-'));
    const derFile = path.join(dir, 'crl.der');
    fs.writeFileSync(derFile, der.body);
    const text = openssl(['crl', '-inform', 'DER', '-in', derFile, '-noout', '-text']);
    assert.ok(text.ok, text.output);
    const endedLeaf = ParsedCertificate.fromDer(ended.agent.chain[0]!);
    assert.match(text.output, new RegExp(endedLeaf.serialHex.toUpperCase()));
    const number = (out: string): bigint => BigInt(/CRL Number:\s+(\d+)/.exec(out)![1]!);
    const beforeFile = path.join(dir, 'before.der');
    fs.writeFileSync(beforeFile, before.body);
    const beforeText = openssl(['crl', '-inform', 'DER', '-in', beforeFile, '-noout', '-text']).output;
    assert.ok(number(text.output) > number(beforeText), 'cRLNumber grows');
    assert.doesNotMatch(beforeText, new RegExp(endedLeaf.serialHex.toUpperCase()));

    const pem = await fetchBytes(`${base}.pem`);
    assert.equal(pem.status, 200);
    const crlPem = path.join(dir, 'crl.pem');
    fs.writeFileSync(crlPem, pem.body);
    const bundlePem = path.join(dir, 'bundle.pem');
    fs.writeFileSync(bundlePem, s.running.ca.bundle().toPem());
    const leafFile = (name: string, leaf: Uint8Array): string => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, encodePem('CERTIFICATE', leaf));
      return f;
    };
    const verify = (f: string) =>
      openssl(['verify', '-crl_check', '-CRLfile', crlPem, '-CAfile', bundlePem, f]);
    const rejected = verify(leafFile('ended.pem', ended.agent.chain[0]!));
    assert.equal(rejected.ok, false);
    assert.match(rejected.output, /certificate revoked/);
    const accepted = verify(leafFile('live.pem', live.agent.chain[0]!));
    assert.ok(accepted.ok, accepted.output);

    // The signature verifies with the CA's public key, by node:crypto alone.
    const list = AsnConvert.parse(der.body, CertificateList);
    const caCert = ParsedCertificate.fromDer(ended.agent.chain[1]!);
    const tbs = new Uint8Array(AsnConvert.serialize(list.tbsCertList));
    const scheme = signatureSchemeFor(caCert.publicKey);
    assert.ok(cryptoVerify(scheme.hash, tbs, caCert.publicKey, new Uint8Array(list.signature)));
    const tampered = Buffer.from(tbs);
    tampered[tampered.length - 1]! ^= 1;
    assert.equal(
      cryptoVerify(scheme.hash, tampered, caCert.publicKey, new Uint8Array(list.signature)),
      false,
    );
  });

  it('serves nothing else: other paths 404, other methods 405', async () => {
    assert.equal((await fetchBytes(`http://${s.running.crlAddress}/crl/other.domain.crl`)).status, 404);
    assert.equal((await fetchBytes(`http://${s.running.crlAddress}/`)).status, 404);
    assert.equal((await fetchBytes(`${base}.crl`, { method: 'POST', body: 'x' })).status, 405);
    const head = await fetch(`${base}.pem`, { method: 'HEAD' });
    assert.equal(head.status, 200);
  });

  it('is not served unless configured, and then never built: revocations do not wait for a CRL', async () => {
    const other = await startTestServer();
    try {
      assert.equal(other.running.crlAddress, undefined);
      const wl = await register(other, 'worker');
      const ended = await startSession(other, wl);
      const c = sessionClient(other, ended.agent);
      await unary(c.endSession.bind(c), { sessionId: ended.res.sessionId, reason: 'task done' });
      c.close();
      await other.client.revokeSvid({ serialHex: 'abc123', reason: 'leaked' });
      assert.equal(other.running.crl.builds, 0);
      assert.equal(other.running.crl.published(), undefined);
    } finally {
      await other.stop();
    }
  });

  it('rebuilds only when something changed: repeated fetches reuse the last CRL', async () => {
    await fetchBytes(`${base}.crl`);
    const builds = s.running.crl.builds;
    for (let i = 0; i < 3; i++) assert.equal((await fetchBytes(`${base}.pem`)).status, 200);
    assert.equal(s.running.crl.builds, builds);
    await s.client.revokeSvid({ serialHex: 'fedcba9876', reason: 'leaked' });
    const text = await fetchBytes(`${base}.crl`);
    assert.equal(s.running.crl.builds, builds + 1);
    assert.equal(s.running.crl.published()!.revokedCount >= 2, true);
    const dir = fs.mkdtempSync(path.join(s.dir, 'crl-'));
    fs.writeFileSync(path.join(dir, 'c.der'), text.body);
    const out = openssl(['crl', '-inform', 'DER', '-in', path.join(dir, 'c.der'), '-noout', '-text']);
    assert.match(out.output, /FEDCBA9876/);
  });

  it('validators: ETag and Last-Modified on every answer, 304 when they match, a new ETag after a revocation', async () => {
    const der = await fetch(`${base}.crl`);
    const derBody = Buffer.from(await der.arrayBuffer());
    const etag = der.headers.get('etag')!;
    const lastModified = der.headers.get('last-modified')!;
    const published = s.running.crl.published()!;
    assert.equal(etag, `"${published.crlNumber.toString(16)}"`);
    assert.equal(lastModified, published.thisUpdate.toUTCString());
    assert.match(der.headers.get('cache-control') ?? '', /^max-age=\d+$/);
    assert.equal(Number(der.headers.get('content-length')), derBody.length);
    assert.ok(derBody.equals(Buffer.from(published.activeDer)));

    const pem = await fetch(`${base}.pem`);
    const pemBody = Buffer.from(await pem.arrayBuffer());
    const pemTag = pem.headers.get('etag')!;
    assert.notEqual(pemTag, etag, 'the DER and the PEM share an ETag');
    assert.equal(Number(pem.headers.get('content-length')), pemBody.length);
    assert.equal(pemBody.toString(), published.crls.map((c) => encodePem('X509 CRL', c.der)).join(''));
    const head = await fetch(`${base}.pem`, { method: 'HEAD' });
    assert.equal(head.headers.get('etag'), pemTag);
    assert.equal(Number(head.headers.get('content-length')), pemBody.length);

    for (const headers of <Record<string, string>[]>[
      { 'If-None-Match': etag },
      { 'If-None-Match': `"nope", W/${etag}` },
      { 'If-None-Match': '*' },
      { 'If-Modified-Since': lastModified },
    ]) {
      const r = await fetch(`${base}.crl`, { headers });
      assert.equal(r.status, 304, JSON.stringify(headers));
      assert.equal((await r.arrayBuffer()).byteLength, 0);
      assert.equal(r.headers.get('etag'), etag);
      assert.equal(r.headers.get('last-modified'), lastModified);
    }
    // If-None-Match decides when present: a stale tag is served in full whatever the date says.
    for (const headers of <Record<string, string>[]>[
      { 'If-None-Match': pemTag },
      { 'If-None-Match': '"nope"', 'If-Modified-Since': lastModified },
      { 'If-Modified-Since': new Date(published.thisUpdate.getTime() - 2000).toUTCString() },
      { 'If-Modified-Since': 'not a date' },
    ]) {
      assert.equal((await fetch(`${base}.crl`, { headers })).status, 200, JSON.stringify(headers));
    }

    await s.client.revokeSvid({ serialHex: '5eed0fe7a9', reason: 'leaked' });
    const after = await fetch(`${base}.crl`, { headers: { 'If-None-Match': etag } });
    assert.equal(after.status, 200, 'a changed CRL answered 304 to the old tag');
    assert.notEqual(after.headers.get('etag'), etag);
    const text = Buffer.from(await after.arrayBuffer());
    const dir = fs.mkdtempSync(path.join(s.dir, 'crl-'));
    fs.writeFileSync(path.join(dir, 'c.der'), text);
    assert.match(
      openssl(['crl', '-inform', 'DER', '-in', path.join(dir, 'c.der'), '-noout', '-text']).output,
      /5EED0FE7A9/,
    );
  });
});
