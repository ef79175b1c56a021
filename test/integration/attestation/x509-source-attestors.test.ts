/**
 * ServerX509Source with the other attestors against a real server: k8s_psat (a fresh projected token from a
 * locally generated issuer key per attestation) and x509pop (the device key answers the server's challenge).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { answerX509PopChallenge } from '../../../src/attest';
import { ServerX509Source } from '../../../src/client/server-x509-source';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { issuerKey, jwksOf, psatClaims, signJwt } from '../../support/jwt';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { id, serverBundle } from '../../support/hop';
import { provisioningEvidencePem, provisioningPki, writeProvisioningCaFile } from '../../support/pki';

describe('ServerX509Source with k8s_psat and x509pop', function () {
  this.timeout(60_000);
  const files = tempDataDir();
  const k8sKey = issuerKey('ES256');
  const jwksFile = path.join(files, 'jwks.json');
  fs.writeFileSync(jwksFile, jwksOf(k8sKey));
  const prov = provisioningPki('spiffe://provisioning.example/device/gpu-7');
  const { deviceKey } = prov;
  const caBundleFile = writeProvisioningCaFile(prov, path.join(files, 'prov-ca.pem'));
  let s: TestServer;

  before(async () => {
    s = await startTestServer({
      config: {
        attestors: {
          joinToken: {},
          k8sPsat: { clusters: [{ name: 'c1', audience: 'lanyard', jwksFile }] },
          x509pop: { caBundleFile },
        },
      },
    });
  });
  after(async () => {
    await s.stop();
    fs.rmSync(files, { recursive: true, force: true });
  });

  it('k8s_psat: attests with a fresh token, renews over mTLS', async () => {
    await s.client.createEntry({
      entry: {
        spiffeId: id('ns/payments/sa/api'),
        selectors: [
          { type: 'k8s', value: 'ns:payments' },
          { type: 'k8s', value: 'sa:api' },
        ],
      },
    });
    let tokens = 0;
    const source = await ServerX509Source.start({
      server: s.running.publicAddress,
      bundle: serverBundle(s),
      attestorType: 'k8s_psat',
      evidence: () => {
        tokens += 1;
        return Buffer.from(signJwt(psatClaims(Math.floor(Date.now() / 1000)), k8sKey));
      },
    });
    try {
      const first = source.getX509Svid();
      assert.equal(first.id.toString(), id('ns/payments/sa/api'));
      assert.equal(first.context?.provenance.method, 'k8s_psat');
      await source.renewNow();
      const renewed = source.getX509Svid();
      assert.notEqual(renewed.chain[0]!.serialHex, first.chain[0]!.serialHex);
      assert.equal(renewed.context?.provenance.method, 'renew');
      assert.equal(tokens, 1, 'renewal needs no new evidence');
    } finally {
      await source.close();
    }
  });

  it('x509pop: the device key answers the challenge; a wrong key is refused', async () => {
    await s.client.createEntry({
      entry: {
        spiffeId: id('devices/gpu-7'),
        selectors: [{ type: 'x509pop', value: 'san:uri:spiffe://provisioning.example/device/gpu-7' }],
      },
    });
    const evidence = Buffer.from(provisioningEvidencePem(prov));
    const source = await ServerX509Source.start({
      server: s.running.publicAddress,
      bundle: serverBundle(s),
      attestorType: 'x509pop',
      evidence,
      answerChallenge: (c) => answerX509PopChallenge(c, deviceKey.privateKey),
    });
    try {
      assert.equal(source.getX509Svid().id.toString(), id('devices/gpu-7'));
    } finally {
      await source.close();
    }
    await assert.rejects(
      ServerX509Source.start({
        server: s.running.publicAddress,
        bundle: serverBundle(s),
        attestorType: 'x509pop',
        evidence,
        answerChallenge: (c) => answerX509PopChallenge(c, generateSigningKeyPair('ec-p256').privateKey),
      }),
      (e: Error & { code?: number }) => e.code === 16,
    );
  });
});
