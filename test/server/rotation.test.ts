/**
 * CA rotation under a running server with CA TTLs of seconds, driven by the real rotation timer: SVIDs
 * issued along the way keep verifying, until they expire, against the bundle that WatchBundle delivered.
 */
import assert from 'node:assert/strict';
import { X509Bundle } from '../../src/bundle/x509-bundle';
import { ParsedCertificate } from '../../src/x509/certificate';
import { TrustDomain } from '../../src/spiffe';
import { verifyX509Svid } from '../../src/verify';
import { startTestServer, type TestServer } from './helpers';
import { attest, connectPublic, newKey, watchBundle, type PublicClients } from './public-client';

const TD = 'lanyard.local';

describe('CA rotation seen through WatchBundle', function () {
  this.timeout(60_000);
  let s: TestServer;
  let pub: PublicClients;

  before(async () => {
    s = await startTestServer({
      // prepare at 3 s, activate at 5 s, expire at 6 s; SVIDs live 2 s (capped by their CA).
      config: { caTtlSeconds: 6, svidDefaultTtlSeconds: 2 },
      start: { serverSvidTtlSeconds: 3 },
    });
    pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD);
  });
  after(async () => {
    pub.close();
    await s.stop();
  });

  it('every unexpired SVID verifies with the latest watched bundle across three activations', async () => {
    const id = `spiffe://${TD}/agents/rotating`;
    await s.client.createEntry({ entry: { spiffeId: id, selectors: [{ type: 'unix', value: 'uid:42' }] } });
    const watch = watchBundle(pub);
    const svids: { chain: Buffer[]; notAfter: Date }[] = [];
    const issuers = new Set<string>();
    let seen = 0;
    while (issuers.size < 4) {
      const { token } = await s.client.createJoinToken({ spiffeId: id });
      const r = await attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(token),
        csr: newKey().csr,
      });
      const leaf = ParsedCertificate.fromDer(r.svid!.certChain[0]!);
      svids.push({ chain: r.svid!.certChain, notAfter: leaf.notAfter });
      issuers.add(Buffer.from(r.svid!.certChain[1]!).toString('base64'));

      // Wait for the next bundle change (a prepare, an activation's cleanup, or an expiry).
      const message = await watch.next(++seen);
      const bundle = X509Bundle.fromPem(TrustDomain.parse(TD), message.bundle!.x509AuthoritiesPem);
      assert.equal(message.bundle!.sequence, watch.messages[seen - 1]!.bundle!.sequence);
      const at = new Date();
      for (const svid of svids.filter((v) => v.notAfter.getTime() > at.getTime() + 50)) {
        verifyX509Svid(svid.chain, bundle, { at, cache: null });
      }
    }
    const sequences = watch.messages.map((m) => m.bundle!.sequence);
    assert.deepEqual(
      [...sequences].sort((a, b) => a - b),
      sequences,
      'sequence only grows',
    );
    assert.ok(new Set(sequences).size === sequences.length, 'every message is a new sequence');
    watch.cancel();
  });
});
