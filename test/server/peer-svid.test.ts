/**
 * The caller's SVID is verified once per call (src/server/tls/peer-svid.ts): the audit wrapper and resolveCaller
 * both ask about the same call object (which keeps the answer under a private symbol), and the second ask gets the first answer only while everything that
 * answer depended on holds — the CA's bundle object, the time inside the path's validity. Real CA (DataDir), real
 * certificates, the process-wide verification cache; the call is a plain object with grpc-js's getAuthContext
 * shape (no TLS socket behind it, so authorizedPeerDer reads the auth context as for a call grpc-js authorized).
 *
 * A fresh leaf's second verification is a full one: the verifier's chain memo only remembers a chain from its
 * second pass on, so that pass builds a new result object. Identity of the two answers therefore shows that the
 * second ask did not verify again.
 */
import * as assert from 'node:assert/strict';
import type { CaManager } from '../../src/ca';
import { verifyPeerSvid, type PeerCall } from '../../src/server/tls/peer-svid';
import { generateSigningKeyPair } from '../../src/x509/keys';
import { DataDir, TD } from '../support/ca';
import { removeDir, tempDir } from '../support/tmp';

function callWith(der: Uint8Array): PeerCall {
  const raw = Buffer.from(der);
  return { getAuthContext: () => ({ sslPeerCertificate: { raw } }) };
}

describe('verifyPeerSvid: once per call', () => {
  const dirs: DataDir[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) {
      await d.stop();
      removeDir(d.dir);
    }
  });

  const startCa = async (): Promise<{ data: DataDir; ca: CaManager }> => {
    const data = new DataDir(tempDir('peer-svid'));
    dirs.push(data);
    const { ca } = await data.start();
    return { data, ca };
  };
  const leafOf = async (ca: CaManager, ttlSeconds = 300): Promise<Uint8Array> =>
    (
      await ca.signX509Svid({
        spiffeId: `spiffe://${TD}/workload`,
        publicKey: generateSigningKeyPair().publicKey,
        ttlSeconds,
      })
    ).chain[0]!;

  it('the second ask about a call gets the first answer; another call is verified on its own', async () => {
    const { data, ca } = await startCa();
    const der = await leafOf(ca);
    const call = callWith(der);
    const first = verifyPeerSvid(call, ca, data.clock.now);
    data.clock.advance(5);
    assert.equal(verifyPeerSvid(call, ca, data.clock.now), first);
    assert.equal(first.id.toString(), `spiffe://${TD}/workload`);

    const other = verifyPeerSvid(callWith(der), ca, data.clock.now);
    assert.notEqual(other, first, 'nothing is shared between two calls');
    assert.equal(other.id.toString(), first.id.toString());
  });

  it('a frozen call object (one that cannot keep the answer) is verified on every ask, not refused', async () => {
    const { data, ca } = await startCa();
    const call = Object.freeze(callWith(await leafOf(ca)));
    const first = verifyPeerSvid(call, ca, data.clock.now);
    const again = verifyPeerSvid(call, ca, data.clock.now);
    assert.notEqual(again, first);
    assert.equal(again.id.toString(), first.id.toString());
  });

  it('expired since the first ask: the same call is refused, not answered from the first verification', async () => {
    const { data, ca } = await startCa();
    const call = callWith(await leafOf(ca, 60));
    verifyPeerSvid(call, ca, data.clock.now);
    data.clock.advance(120_000);
    assert.throws(() => verifyPeerSvid(call, ca, data.clock.now), { code: 'ERR_SVID_EXPIRED' });
  });

  it('a new bundle since the first ask (a CA prepared): verified again under it', async () => {
    const { data, ca } = await startCa();
    const call = callWith(await leafOf(ca));
    const first = verifyPeerSvid(call, ca, data.clock.now);
    const bundle = ca.bundle();
    await ca.rotate('prepare');
    assert.notEqual(ca.bundle(), bundle, 'preparing a CA publishes a new bundle');
    const again = verifyPeerSvid(call, ca, data.clock.now);
    assert.notEqual(again, first);
    assert.equal(again.id.toString(), first.id.toString());
  });

  it('a certificate of another CA: refused on every ask with the same error', async () => {
    const { data, ca } = await startCa();
    const { ca: foreign } = await startCa();
    const call = callWith(await leafOf(foreign));
    const refusal = (): unknown => {
      try {
        verifyPeerSvid(call, ca, data.clock.now);
      } catch (e) {
        return (e as { code?: unknown }).code;
      }
      return 'accepted';
    };
    const code = refusal();
    assert.equal(code, 'ERR_UNKNOWN_AUTHORITY');
    assert.equal(refusal(), code);
  });
});
