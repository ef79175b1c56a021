/**
 * The public listener end to end: a real server on 127.0.0.1:0, real SQLite, real crypto. Register ->
 * attest (join_token, k8s_psat, x509pop) -> verify with the core verifier against GetBundle -> Renew over
 * mTLS -> restart on the same data dir; every refusal with its gRPC status.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { answerX509PopChallenge } from '../../src/attest';
import { X509Bundle } from '../../src/bundle/x509-bundle';
import { TrustDomain } from '../../src/spiffe';
import { verifyX509Svid } from '../../src/verify';
import { createIntermediateCa, createRootCa, issueX509Svid } from '../../src/x509/profiles';
import { generateKeyPair } from '../../src/x509/keys';
import { encodePem } from '../../src/x509/pem';
import { issuerKey, jwksOf, psatClaims, signJwt } from '../attest/helpers/jwt';
import { startTestServer, tempDataDir, type TestServer } from './helpers';
import {
  attest,
  connectPublic,
  getBundle,
  newKey,
  rejectsGrpc,
  renewCall,
  type PublicClients,
} from './public-client';

const TD = 'lanyard.local';
const td = TrustDomain.parse(TD);

function bundleOf(pem: string): X509Bundle {
  return X509Bundle.fromPem(td, pem);
}

describe('public listener: attestation, renewal, bundle, remote admin', function () {
  this.timeout(60_000);
  const dir = tempDataDir();
  const files = tempDataDir();
  const k8sKey = issuerKey('ES256');
  const jwksFile = path.join(files, 'jwks.json');
  fs.writeFileSync(jwksFile, jwksOf(k8sKey));
  // A provisioning PKI for x509pop: root -> intermediate -> device certificate.
  const provRootKey = generateKeyPair('ec-p256');
  const provRoot = createRootCa({
    trustDomain: 'provisioning.example',
    ttlSeconds: 86400,
    key: provRootKey.privateKey,
  });
  const provInterKey = generateKeyPair('ec-p256');
  const provInter = createIntermediateCa({
    trustDomain: 'provisioning.example',
    ttlSeconds: 86400,
    publicKey: provInterKey.publicKey,
    issuer: { cert: provRoot.cert, key: provRootKey.privateKey },
  });
  const deviceKey = generateKeyPair('ec-p256');
  const device = issueX509Svid({
    spiffeId: 'spiffe://provisioning.example/device/gpu-node-7',
    publicKey: deviceKey.publicKey,
    issuer: { cert: provInter.cert, key: provInterKey.privateKey },
    ttlSeconds: 3600,
  });
  const caBundleFile = path.join(files, 'prov-ca.pem');
  fs.writeFileSync(caBundleFile, encodePem('CERTIFICATE', provRoot.der));

  let s: TestServer;
  let pub: PublicClients;
  let bundlePem: string;
  const start = async (): Promise<void> => {
    s = await startTestServer({
      dir,
      config: {
        attestors: {
          joinToken: {},
          k8sPsat: { clusters: [{ name: 'c1', audience: 'lanyard', jwksFile }] },
          x509pop: { caBundleFile },
        },
      },
    });
    // Bootstrap: a client gets the bundle out of band (here: from the server host's CA).
    bundlePem = s.running.ca.bundle().toPem();
    pub = connectPublic(s.running.publicAddress, bundlePem, TD);
  };
  const stop = async (): Promise<void> => {
    pub.close();
    await s.stop();
  };
  before(start);
  after(stop);

  const demoId = `spiffe://${TD}/agents/demo`;
  let demoEntryId = '';
  let spentToken = '';
  let firstSvid: { chain: Buffer[]; key: ReturnType<typeof newKey>['key'] } | undefined;

  it('GetBundle returns PEM, DER and a SPIFFE JWKS with a sequence', async () => {
    const { bundle } = await getBundle(pub);
    assert.ok(bundle);
    assert.equal(bundle.trustDomain, TD);
    assert.ok(bundle.sequence >= 1);
    assert.equal(bundle.x509Authorities.length, s.running.ca.bundle().x509Authorities.length);
    const jwks = JSON.parse(bundle.spiffeBundleJson) as { keys: { use: string }[]; spiffe_sequence: number };
    assert.equal(jwks.spiffe_sequence, bundle.sequence);
    // x509-svid entries for the CAs, jwt-svid for JWT-SVIDs, and the audit key (use lanyard-audit), which
    // SPIFFE consumers ignore.
    assert.ok(jwks.keys.every((k) => ['x509-svid', 'jwt-svid', 'lanyard-audit'].includes(k.use)));
    assert.equal(jwks.keys.filter((k) => k.use === 'lanyard-audit').length, 1);
  });

  it('join_token: register, attest, verify with the core verifier against GetBundle', async () => {
    const { entry } = await s.client.createEntry({
      entry: { spiffeId: demoId, selectors: [{ type: 'unix', value: 'uid:1000' }], allowedScopes: ['read'] },
    });
    demoEntryId = entry!.id;
    const { token } = await s.client.createJoinToken({ spiffeId: demoId });
    spentToken = token;
    const { key, csr } = newKey();
    const result = await attest(pub.attestation, {
      attestorType: 'join_token',
      evidence: Buffer.from(token),
      csr,
    });
    assert.equal(result.svid?.spiffeId, demoId);
    assert.equal(result.svid?.entryId, demoEntryId);
    const { bundle } = await getBundle(pub);
    const verified = verifyX509Svid(result.svid!.certChain, bundleOf(bundle!.x509AuthoritiesPem));
    assert.equal(verified.id.toString(), demoId);
    const ctx = verified.context!;
    assert.equal(ctx.agentId, demoEntryId);
    assert.deepEqual(ctx.scopes, ['read']);
    assert.equal(ctx.principal.provenance, 'workload');
    assert.equal(ctx.provenance.method, 'join_token');
    assert.equal(ctx.provenance.issuer, `spiffe://${TD}/lanyard/server`);
    assert.deepEqual(Buffer.from(ctx.provenance.evidenceSha256), createHash('sha256').update(token).digest());
    firstSvid = { chain: result.svid!.certChain, key };
  });

  it('a replayed join token is UNAUTHENTICATED; the token never appears in the logs', async () => {
    await rejectsGrpc(
      attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(spentToken),
        csr: newKey().csr,
      }),
      grpc.status.UNAUTHENTICATED,
    );
    assert.ok(!s.logs.join('').includes(spentToken));
  });

  it('Renew over mTLS: same SPIFFE ID and session, fresh provenance "renew", entry TTL', async () => {
    const mtls = connectPublic(s.running.publicAddress, bundlePem, TD, firstSvid);
    try {
      const { csr } = newKey();
      const res = await renewCall(mtls, csr);
      const renewed = verifyX509Svid(res.svid!.certChain, bundleOf(res.bundle!.x509AuthoritiesPem));
      const before = verifyX509Svid(firstSvid!.chain, bundleOf(res.bundle!.x509AuthoritiesPem));
      assert.equal(renewed.id.toString(), demoId);
      assert.equal(renewed.context!.sessionId, before.context!.sessionId);
      assert.equal(renewed.context!.provenance.method, 'renew');
    } finally {
      mtls.close();
    }
  });

  it('Renew without a client certificate is UNAUTHENTICATED', async () => {
    await rejectsGrpc(renewCall(pub, newKey().csr), grpc.status.UNAUTHENTICATED, 'mTLS');
  });

  it('Renew with a foreign SVID (same trust domain name, other CA) is UNAUTHENTICATED', async () => {
    const rootKey = generateKeyPair('ec-p256');
    const root = createRootCa({ trustDomain: TD, ttlSeconds: 3600, key: rootKey.privateKey });
    const k = generateKeyPair('ec-p256');
    const leaf = issueX509Svid({
      spiffeId: demoId,
      publicKey: k.publicKey,
      issuer: { cert: root.cert, key: rootKey.privateKey },
      ttlSeconds: 600,
    });
    const mtls = connectPublic(s.running.publicAddress, bundlePem, TD, {
      key: k.privateKey,
      chain: [leaf.der],
    });
    try {
      await rejectsGrpc(renewCall(mtls, newKey().csr), grpc.status.UNAUTHENTICATED);
    } finally {
      mtls.close();
    }
  });

  it('Renew with an expired SVID of this CA is UNAUTHENTICATED', async () => {
    const k = newKey();
    // Signed by this CA for k's key, but a minute ago with a one-second lifetime.
    const expired = await s.running.ca.signX509Svid({
      spiffeId: demoId,
      publicKey: createPublicKey(k.key),
      ttlSeconds: 1,
      now: new Date(Date.now() - 60_000),
    });
    assert.ok(expired.cert.notAfter.getTime() < Date.now());
    const mtls = connectPublic(s.running.publicAddress, bundlePem, TD, { key: k.key, chain: expired.chain });
    try {
      await rejectsGrpc(renewCall(mtls, newKey().csr), grpc.status.UNAUTHENTICATED);
    } finally {
      mtls.close();
    }
  });

  it('k8s_psat: a projected token from the local issuer earns the matching entry', async () => {
    await s.client.createEntry({
      entry: {
        spiffeId: `spiffe://${TD}/ns/payments/sa/api`,
        selectors: [
          { type: 'k8s', value: 'ns:payments' },
          { type: 'k8s', value: 'sa:api' },
        ],
      },
    });
    const jwt = signJwt(psatClaims(Math.floor(Date.now() / 1000)), k8sKey);
    const r = await attest(pub.attestation, {
      attestorType: 'k8s_psat',
      evidence: Buffer.from(jwt),
      csr: newKey().csr,
    });
    assert.equal(r.svid?.spiffeId, `spiffe://${TD}/ns/payments/sa/api`);
    const v = verifyX509Svid(r.svid!.certChain, bundleOf(r.bundle!.x509AuthoritiesPem));
    assert.equal(v.context!.provenance.method, 'k8s_psat');
  });

  it('k8s_psat for a namespace no entry covers is PERMISSION_DENIED', async () => {
    const claims = psatClaims(Math.floor(Date.now() / 1000));
    (claims['kubernetes.io'] as { namespace: string }).namespace = 'elsewhere';
    claims.sub = 'system:serviceaccount:elsewhere:api';
    const jwt = signJwt(claims, k8sKey);
    await rejectsGrpc(
      attest(pub.attestation, { attestorType: 'k8s_psat', evidence: Buffer.from(jwt), csr: newKey().csr }),
      grpc.status.PERMISSION_DENIED,
      'no registration entry matches',
    );
  });

  it('x509pop: challenge-response over the stream with the device key', async () => {
    const id = `spiffe://${TD}/devices/gpu-node-7`;
    await s.client.createEntry({
      entry: {
        spiffeId: id,
        selectors: [{ type: 'x509pop', value: 'san:uri:spiffe://provisioning.example/device/gpu-node-7' }],
      },
    });
    const evidence = Buffer.from(
      encodePem('CERTIFICATE', device.der) + encodePem('CERTIFICATE', provInter.der),
    );
    const r = await attest(
      pub.attestation,
      { attestorType: 'x509pop', evidence, csr: newKey().csr },
      (challenge) => Buffer.from(answerX509PopChallenge(challenge, deviceKey.privateKey)),
    );
    assert.equal(r.svid?.spiffeId, id);
  });

  it('several matching entries: FAILED_PRECONDITION listing them, unless spiffe_id chooses', async () => {
    const a = `spiffe://${TD}/multi/a`;
    const b = `spiffe://${TD}/multi/b`;
    for (const id of [a, b]) {
      await s.client.createEntry({
        entry: { spiffeId: id, selectors: [{ type: 'k8s', value: 'pod-name:web-0' }] },
      });
    }
    const jwt = (): Buffer => Buffer.from(signJwt(psatClaims(Math.floor(Date.now() / 1000)), k8sKey));
    await rejectsGrpc(
      attest(pub.attestation, { attestorType: 'k8s_psat', evidence: jwt(), csr: newKey().csr }),
      grpc.status.FAILED_PRECONDITION,
      a,
      b,
    );
    const r = await attest(pub.attestation, {
      attestorType: 'k8s_psat',
      evidence: jwt(),
      csr: newKey().csr,
      spiffeId: b,
    });
    assert.equal(r.svid?.spiffeId, b);
    for (const id of [a, b]) {
      const { entries } = await s.client.listEntries({ filter: { spiffeIdPrefix: id }, pageSize: 10 });
      for (const e of entries) await s.client.deleteEntry({ id: e.id });
    }
  });

  it('malformed CSR is INVALID_ARGUMENT and spends no join token', async () => {
    const { token } = await s.client.createJoinToken({ spiffeId: demoId });
    await rejectsGrpc(
      attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(token),
        csr: Buffer.from('not a csr'),
      }),
      grpc.status.INVALID_ARGUMENT,
      'PKCS#10',
    );
    const ok = await attest(pub.attestation, {
      attestorType: 'join_token',
      evidence: Buffer.from(token),
      csr: newKey().csr,
    });
    assert.equal(ok.svid?.spiffeId, demoId);
  });

  it('unknown attestor is UNIMPLEMENTED', async () => {
    await rejectsGrpc(
      attest(pub.attestation, { attestorType: 'tpm_magic', evidence: Buffer.from('x'), csr: newKey().csr }),
      grpc.status.UNIMPLEMENTED,
      'unknown attestor type',
    );
  });

  it('a join token bound to an ID without an entry is PERMISSION_DENIED and stays unspent', async () => {
    const id = `spiffe://${TD}/agents/unregistered`;
    const { token } = await s.client.createJoinToken({ spiffeId: id });
    await rejectsGrpc(
      attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(token),
        csr: newKey().csr,
      }),
      grpc.status.PERMISSION_DENIED,
      id,
    );
    await s.client.createEntry({ entry: { spiffeId: id, selectors: [{ type: 'unix', value: 'uid:7' }] } });
    const r = await attest(pub.attestation, {
      attestorType: 'join_token',
      evidence: Buffer.from(token),
      csr: newKey().csr,
    });
    assert.equal(r.svid?.spiffeId, id);
  });

  it('remote admin: a non-admin SVID is PERMISSION_DENIED, no certificate UNAUTHENTICATED, an admin SVID works', async () => {
    const list = (c: PublicClients): Promise<unknown> =>
      new Promise((resolve, reject) =>
        c.registration.listEntries({ filter: undefined, pageSize: 10, pageToken: '' }, (err, res) =>
          err ? reject(err) : resolve(res),
        ),
      );
    await rejectsGrpc(list(pub), grpc.status.UNAUTHENTICATED);
    const nonAdmin = connectPublic(s.running.publicAddress, bundlePem, TD, firstSvid);
    try {
      await rejectsGrpc(list(nonAdmin), grpc.status.PERMISSION_DENIED, 'not an admin');
    } finally {
      nonAdmin.close();
    }
    const adminId = `spiffe://${TD}/ops/admin`;
    await s.client.createEntry({
      entry: { spiffeId: adminId, selectors: [{ type: 'unix', value: 'uid:0' }], admin: true },
    });
    const { token } = await s.client.createJoinToken({ spiffeId: adminId });
    const k = newKey();
    const r = await attest(pub.attestation, {
      attestorType: 'join_token',
      evidence: Buffer.from(token),
      csr: k.csr,
    });
    const admin = connectPublic(s.running.publicAddress, bundlePem, TD, {
      key: k.key,
      chain: r.svid!.certChain,
    });
    try {
      const res = (await list(admin)) as { entries: unknown[] };
      assert.ok(res.entries.length >= 2);
    } finally {
      admin.close();
    }
  });

  it('a deleted entry stops renewal (PERMISSION_DENIED)', async () => {
    const id = `spiffe://${TD}/agents/short-lived`;
    const { entry } = await s.client.createEntry({
      entry: { spiffeId: id, selectors: [{ type: 'unix', value: 'uid:8' }] },
    });
    const { token } = await s.client.createJoinToken({ spiffeId: id });
    const k = newKey();
    const r = await attest(pub.attestation, {
      attestorType: 'join_token',
      evidence: Buffer.from(token),
      csr: k.csr,
    });
    await s.client.deleteEntry({ id: entry!.id });
    const mtls = connectPublic(s.running.publicAddress, bundlePem, TD, {
      key: k.key,
      chain: r.svid!.certChain,
    });
    try {
      await rejectsGrpc(renewCall(mtls, newKey().csr), grpc.status.PERMISSION_DENIED, 'deleted');
    } finally {
      mtls.close();
    }
  });

  it('after a restart on the same data dir: entries, CA, bundle and spent tokens persist; old SVIDs verify', async () => {
    const bundleBefore = s.running.ca.bundle();
    await stop();
    await start();
    const bundleAfter = s.running.ca.bundle();
    assert.equal(bundleAfter.sequence, bundleBefore.sequence);
    assert.deepEqual(
      bundleAfter.x509Authorities.map((c) => c.sha256Hex),
      bundleBefore.x509Authorities.map((c) => c.sha256Hex),
    );
    const { entry } = await s.client.getEntry({ id: demoEntryId });
    assert.equal(entry?.spiffeId, demoId);
    const { bundle } = await getBundle(pub);
    verifyX509Svid(firstSvid!.chain, bundleOf(bundle!.x509AuthoritiesPem));
    await rejectsGrpc(
      attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(spentToken),
        csr: newKey().csr,
      }),
      grpc.status.UNAUTHENTICATED,
    );
    // And the old SVID still renews over mTLS against the restarted server.
    const mtls = connectPublic(s.running.publicAddress, bundlePem, TD, firstSvid);
    try {
      const res = await renewCall(mtls, newKey().csr);
      assert.equal(res.svid?.spiffeId, demoId);
    } finally {
      mtls.close();
    }
  });
});
