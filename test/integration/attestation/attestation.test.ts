/**
 * The public listener end to end: a real server on 127.0.0.1:0, real SQLite, real crypto. Register ->
 * attest (join_token, k8s_psat, x509pop) -> verify with the core verifier against GetBundle -> Renew over
 * mTLS -> restart on the same data dir -> every SVID (original and renewed) still verifies; every refusal
 * with its gRPC status and its lanyard-error-code.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { answerX509PopChallenge } from '../../../src/attest';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import { ErrorCode, isLanyardError } from '../../../src/errors';
import { verifyPeerSvid } from '../../../src/server/tls/peer-svid';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid, type VerifyX509SvidResult } from '../../../src/verify';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { DEFAULT_BACKDATE_SECONDS } from '../../../src/x509/profiles';
import { issuerKey, jwksOf, psatClaims, signJwt } from '../../support/jwt';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { expiredSvid as expiredOf, foreignSvid } from '../../support/identities';
import {
  attest,
  connectPublic,
  getBundle,
  newKey,
  renewCall,
  type ClientIdentity,
  type PublicClients,
} from '../../support/public-client';
import { register, startSession } from '../../support/sessions';
import { rejectsGrpc } from '../../support/grpc-refusal';
import { rejectsGrpcWithCode } from '../../support/grpc-refusal';
import { provisioningEvidencePem, provisioningPki, writeProvisioningCaFile } from '../../support/pki';

const TD = 'lanyard.local';
const td = TrustDomain.parse(TD);

function bundleOf(pem: string): X509Bundle {
  return X509Bundle.fromPem(td, pem);
}

/**
 * A CSR made by openssl that asks for another identity: subject CN/O and URI, DNS and IP SANs. The server
 * must take only the key from it.
 */
function greedyCsr(dir: string): { key: KeyObject; csr: Buffer } {
  const keyFile = path.join(dir, `greedy-${process.hrtime.bigint()}.key`);
  const csrFile = `${keyFile}.csr`;
  const r = spawnSync('openssl', [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    csrFile,
    '-outform',
    'DER',
    '-subj',
    '/CN=evil/O=evil',
    '-addext',
    `subjectAltName=URI:spiffe://evil/x,URI:spiffe://${TD}/ops/admin,DNS:evil.example,IP:1.2.3.4`,
  ]);
  assert.equal(r.status, 0, String(r.stderr));
  return { key: createPrivateKey(fs.readFileSync(keyFile)), csr: fs.readFileSync(csrFile) };
}

function listEntries(c: PublicClients): Promise<{ entries: unknown[] }> {
  return new Promise((resolve, reject) =>
    c.registration.listEntries({ filter: undefined, pageSize: 10, pageToken: '' }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

/** An SVID a test attested and keeps: renewed, then checked again after the restart. */
interface Held {
  spiffeId: string;
  entryId: string;
  ttlSeconds: number;
  chain: Buffer[];
  key: KeyObject;
  renewed?: { chain: Buffer[]; key: KeyObject };
}

const ATTESTORS = ['join_token', 'k8s_psat', 'x509pop'] as const;
type Attestor = (typeof ATTESTORS)[number];

describe('public listener: attestation, renewal, bundle, remote admin', function () {
  this.timeout(60_000);
  const dir = tempDataDir();
  const files = tempDataDir();
  const k8sKey = issuerKey('ES256');
  const jwksFile = path.join(files, 'jwks.json');
  fs.writeFileSync(jwksFile, jwksOf(k8sKey));
  // A provisioning PKI for x509pop: root -> intermediate -> device certificate.
  const prov = provisioningPki();
  const caBundleFile = writeProvisioningCaFile(prov, path.join(files, 'prov-ca.pem'));

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
  const held: Partial<Record<Attestor, Held>> = {};
  const heldOf = (a: Attestor): Held => {
    const h = held[a];
    assert.ok(h, `${a} was not attested`);
    return h;
  };
  const currentBundle = async (): Promise<X509Bundle> => {
    const { bundle } = await getBundle(pub);
    return bundleOf(bundle!.x509AuthoritiesPem);
  };

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
    const ttlSeconds = 300;
    const { entry } = await s.client.createEntry({
      entry: {
        spiffeId: demoId,
        selectors: [{ type: 'unix', value: 'uid:1000' }],
        allowedScopes: ['read'],
        x509SvidTtlSeconds: ttlSeconds,
      },
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
    const verified = verifyX509Svid(result.svid!.certChain, await currentBundle());
    assert.equal(verified.id.toString(), demoId);
    const ctx = verified.context!;
    assert.equal(ctx.agentId, demoEntryId);
    assert.deepEqual(ctx.scopes, ['read']);
    assert.equal(ctx.principal.provenance, 'workload');
    assert.equal(ctx.provenance.method, 'join_token');
    assert.equal(ctx.provenance.issuer, `spiffe://${TD}/lanyard/server`);
    assert.deepEqual(Buffer.from(ctx.provenance.evidenceSha256), createHash('sha256').update(token).digest());
    held.join_token = {
      spiffeId: demoId,
      entryId: demoEntryId,
      ttlSeconds,
      chain: result.svid!.certChain,
      key,
    };
  });

  it('a replayed join token is UNAUTHENTICATED ERR_TOKEN_SPENT; the token never appears in the logs', async () => {
    await rejectsGrpcWithCode(
      attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(spentToken),
        csr: newKey().csr,
      }),
      grpc.status.UNAUTHENTICATED,
      ErrorCode.TOKEN_SPENT,
    );
    assert.ok(!s.logs.join('').includes(spentToken));
  });

  it('k8s_psat: a projected token from the local issuer earns the matching entry; the SVID verifies', async () => {
    const spiffeId = `spiffe://${TD}/ns/payments/sa/api`;
    const ttlSeconds = 600;
    const { entry } = await s.client.createEntry({
      entry: {
        spiffeId,
        selectors: [
          { type: 'k8s', value: 'ns:payments' },
          { type: 'k8s', value: 'sa:api' },
        ],
        allowedScopes: ['payments:read'],
        x509SvidTtlSeconds: ttlSeconds,
      },
    });
    const jwt = signJwt(psatClaims(Math.floor(Date.now() / 1000)), k8sKey);
    const { key, csr } = newKey();
    const r = await attest(pub.attestation, { attestorType: 'k8s_psat', evidence: Buffer.from(jwt), csr });
    assert.equal(r.svid?.spiffeId, spiffeId);
    const v = verifyX509Svid(r.svid!.certChain, await currentBundle());
    assert.equal(v.id.toString(), spiffeId);
    assert.equal(v.context!.agentId, entry!.id);
    assert.equal(v.context!.provenance.method, 'k8s_psat');
    assert.deepEqual(v.context!.scopes, ['payments:read']);
    held.k8s_psat = { spiffeId, entryId: entry!.id, ttlSeconds, chain: r.svid!.certChain, key };
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

  it('x509pop: challenge-response over the stream with the device key; the SVID verifies', async () => {
    const spiffeId = `spiffe://${TD}/devices/gpu-node-7`;
    const ttlSeconds = 900;
    const { entry } = await s.client.createEntry({
      entry: {
        spiffeId,
        selectors: [{ type: 'x509pop', value: 'san:uri:spiffe://provisioning.example/device/gpu-node-7' }],
        x509SvidTtlSeconds: ttlSeconds,
      },
    });
    const evidence = Buffer.from(provisioningEvidencePem(prov));
    const { key, csr } = newKey();
    const r = await attest(pub.attestation, { attestorType: 'x509pop', evidence, csr }, (challenge) =>
      Buffer.from(answerX509PopChallenge(challenge, prov.deviceKey.privateKey)),
    );
    assert.equal(r.svid?.spiffeId, spiffeId);
    const v = verifyX509Svid(r.svid!.certChain, await currentBundle());
    assert.equal(v.id.toString(), spiffeId);
    assert.equal(v.context!.agentId, entry!.id);
    assert.equal(v.context!.provenance.method, 'x509pop');
    held.x509pop = { spiffeId, entryId: entry!.id, ttlSeconds, chain: r.svid!.certChain, key };
  });

  for (const attestor of ATTESTORS) {
    it(`Renew over mTLS (${attestor}): same SPIFFE ID and agent context, provenance "renew", the entry's TTL, the CSR's names ignored`, async () => {
      const h = heldOf(attestor);
      const mtls = connectPublic(s.running.publicAddress, bundlePem, TD, h);
      try {
        // The CSR asks for spiffe://evil/x, an admin ID, DNS and IP names and a subject: only its key counts.
        const greedy = greedyCsr(files);
        const res = await renewCall(mtls, greedy.csr);
        assert.equal(res.svid?.spiffeId, h.spiffeId);
        assert.equal(res.svid?.entryId, h.entryId);
        const bundle = await currentBundle();
        const before = verifyX509Svid(h.chain, bundle);
        const renewed = verifyX509Svid(res.svid!.certChain, bundle);
        verifyX509Svid(res.svid!.certChain, bundleOf(res.bundle!.x509AuthoritiesPem));
        assert.equal(renewed.id.toString(), h.spiffeId);
        assertSameContext(renewed, before);
        assert.equal(renewed.context!.provenance.method, 'renew');
        assert.deepEqual(
          Buffer.from(renewed.context!.provenance.evidenceSha256),
          createHash('sha256').update(h.chain[0]!).digest(),
          'the evidence of a renewal is the SVID presented for it',
        );
        const leaf = ParsedCertificate.fromDer(res.svid!.certChain[0]!);
        const oldLeaf = ParsedCertificate.fromDer(h.chain[0]!);
        assert.deepEqual(leaf.uriSans, [h.spiffeId]);
        assert.deepEqual(leaf.dnsSans, []);
        assert.deepEqual(leaf.subjectCommonNames, oldLeaf.subjectCommonNames);
        assert.deepEqual(Buffer.from(leaf.subjectDer), Buffer.from(oldLeaf.subjectDer));
        assert.ok(!leaf.subjectCommonNames.includes('evil'));
        assert.deepEqual(
          Buffer.from(leaf.spkiDer),
          Buffer.from(createPublicKey(greedy.key).export({ type: 'spki', format: 'der' })),
          'the renewed SVID certifies the CSR key',
        );
        assert.equal(
          (leaf.notAfter.getTime() - leaf.notBefore.getTime()) / 1000,
          h.ttlSeconds + DEFAULT_BACKDATE_SECONDS,
          'TTL from the entry (plus the backdating of notBefore)',
        );
        h.renewed = { chain: res.svid!.certChain, key: greedy.key };
      } finally {
        mtls.close();
      }
    });
  }

  it('Renew without a client certificate is UNAUTHENTICATED ERR_CLIENT_CERT_REQUIRED', async () => {
    await rejectsGrpcWithCode(
      renewCall(pub, newKey().csr),
      grpc.status.UNAUTHENTICATED,
      ErrorCode.CLIENT_CERT_REQUIRED,
      'none was sent',
    );
  });

  it('Renew with an SVID of another CA (same trust domain name) is UNAUTHENTICATED ERR_UNKNOWN_AUTHORITY', async () => {
    await renewUnauthenticated(foreignSvid(TD, demoId), ErrorCode.UNKNOWN_AUTHORITY, 'does not chain');
  });

  it('Renew with an SVID of another trust domain is UNAUTHENTICATED ERR_WRONG_TRUST_DOMAIN', async () => {
    const other = foreignSvid('other.example', 'spiffe://other.example/agents/demo');
    await renewUnauthenticated(other, ErrorCode.WRONG_TRUST_DOMAIN, 'other.example');
  });

  it('Renew with an expired SVID of this CA is UNAUTHENTICATED ERR_SVID_EXPIRED', async () => {
    await renewUnauthenticated(await expiredSvid(), ErrorCode.SVID_EXPIRED, 'expired');
  });

  it('Renew with an SVID revoked by serial (RevokeSvid) is UNAUTHENTICATED ERR_REVOKED; an unrevoked one renews', async () => {
    const revoked = await register(s, 'agents/revoked-renewer');
    const sibling = await register(s, 'agents/revoked-renewer-sibling');
    const serialHex = ParsedCertificate.fromDer(revoked.chain[0]!).serialHex;
    await s.client.revokeSvid({ serialHex, reason: 'key leaked' });
    const mtls = connectPublic(s.running.publicAddress, bundlePem, TD, revoked);
    const ok = connectPublic(s.running.publicAddress, bundlePem, TD, sibling);
    try {
      await rejectsGrpcWithCode(
        renewCall(mtls, newKey().csr),
        grpc.status.UNAUTHENTICATED,
        ErrorCode.REVOKED,
        serialHex,
      );
      const res = await renewCall(ok, newKey().csr);
      assert.equal(res.svid?.spiffeId, sibling.spiffeId);
    } finally {
      mtls.close();
      ok.close();
    }
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

  it('Attest with a CSR carrying a subject and SANs issues only the entry identity', async () => {
    const { token } = await s.client.createJoinToken({ spiffeId: demoId });
    const r = await attest(pub.attestation, {
      attestorType: 'join_token',
      evidence: Buffer.from(token),
      csr: greedyCsr(files).csr,
    });
    const leaf = ParsedCertificate.fromDer(r.svid!.certChain[0]!);
    assert.deepEqual(leaf.uriSans, [demoId]);
    assert.deepEqual(leaf.dnsSans, []);
    assert.ok(!leaf.subjectCommonNames.includes('evil'));
  });

  it('unknown attestor is UNIMPLEMENTED', async () => {
    await rejectsGrpc(
      attest(pub.attestation, { attestorType: 'tpm_magic', evidence: Buffer.from('x'), csr: newKey().csr }),
      grpc.status.UNIMPLEMENTED,
      'unknown attestor type',
    );
  });

  it('a join token is bound to an entry: for a SPIFFE ID without one, none is created (NOT_FOUND)', async () => {
    const id = `spiffe://${TD}/agents/unregistered`;
    const err = await s.client.createJoinToken({ spiffeId: id }).then(
      () => assert.fail('a token was created for an ID without an entry'),
      (e: unknown) => e as { code: number; lanyardCode?: string; details: string },
    );
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.match(err.details, /create the entry first/);
    await s.client.createEntry({ entry: { spiffeId: id, selectors: [{ type: 'unix', value: 'uid:7' }] } });
    const { token } = await s.client.createJoinToken({ spiffeId: id });
    const r = await attest(pub.attestation, {
      attestorType: 'join_token',
      evidence: Buffer.from(token),
      csr: newKey().csr,
    });
    assert.equal(r.svid?.spiffeId, id);
  });

  describe('remote admin (RegistrationService on the public listener)', () => {
    const asAdminCaller = async (
      who: ClientIdentity | undefined,
      expect: (p: Promise<unknown>) => Promise<unknown>,
    ): Promise<void> => {
      const c = who === undefined ? pub : connectPublic(s.running.publicAddress, bundlePem, TD, who);
      try {
        await expect(listEntries(c));
      } finally {
        if (c !== pub) c.close();
      }
    };

    it('an admin SVID lists entries; a non-admin SVID is PERMISSION_DENIED ERR_UNAUTHORIZED', async () => {
      const admin = await register(s, 'ops/admin', { admin: true });
      await asAdminCaller(admin, async (p) => {
        const res = (await p) as { entries: unknown[] };
        assert.ok(res.entries.length >= 2);
      });
      await asAdminCaller(heldOf('join_token'), (p) =>
        rejectsGrpcWithCode(p, grpc.status.PERMISSION_DENIED, ErrorCode.UNAUTHORIZED, 'not an admin'),
      );
    });

    it('no client certificate is UNAUTHENTICATED ERR_CLIENT_CERT_REQUIRED', async () => {
      await asAdminCaller(undefined, (p) =>
        rejectsGrpcWithCode(p, grpc.status.UNAUTHENTICATED, ErrorCode.CLIENT_CERT_REQUIRED, 'none was sent'),
      );
    });

    it('an admin SVID revoked by serial is UNAUTHENTICATED ERR_REVOKED; a fresh SVID of the same entry works', async () => {
      const admin = await register(s, 'ops/revoked-admin', { admin: true });
      const serialHex = ParsedCertificate.fromDer(admin.chain[0]!).serialHex;
      await s.client.revokeSvid({ serialHex, reason: 'laptop stolen' });
      await asAdminCaller(admin, (p) =>
        rejectsGrpcWithCode(p, grpc.status.UNAUTHENTICATED, ErrorCode.REVOKED, serialHex),
      );
      const { token } = await s.client.createJoinToken({ spiffeId: admin.spiffeId });
      const k = newKey();
      const r = await attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(token),
        csr: k.csr,
      });
      await asAdminCaller({ key: k.key, chain: r.svid!.certChain }, async (p) => {
        assert.ok(((await p) as { entries: unknown[] }).entries.length >= 1);
      });
    });

    it('a session SVID of an admin entry is PERMISSION_DENIED: live ERR_UNAUTHORIZED, ended ERR_SESSION_ENDED', async () => {
      const admin = await register(s, 'ops/session-admin', { admin: true, allowedScopes: ['ops'] });
      const { agent: session, res } = await startSession(s, admin, { scopes: ['ops'] });
      await asAdminCaller(session, (p) =>
        rejectsGrpcWithCode(
          p,
          grpc.status.PERMISSION_DENIED,
          ErrorCode.UNAUTHORIZED,
          res.sessionId,
          'workload SVID',
        ),
      );
      await s.client.endSession({ sessionId: res.sessionId, reason: 'task done' });
      await asAdminCaller(session, (p) =>
        rejectsGrpcWithCode(p, grpc.status.PERMISSION_DENIED, ErrorCode.SESSION_ENDED, res.sessionId),
      );
      // The entry's workload SVID keeps its admin rights.
      await asAdminCaller(admin, async (p) => {
        assert.ok(((await p) as { entries: unknown[] }).entries.length >= 1);
      });
    });

    it('an SVID of another trust domain is UNAUTHENTICATED ERR_WRONG_TRUST_DOMAIN, of another CA ERR_UNKNOWN_AUTHORITY', async () => {
      await asAdminCaller(foreignSvid('other.example', 'spiffe://other.example/ops/admin'), (p) =>
        rejectsGrpcWithCode(p, grpc.status.UNAUTHENTICATED, ErrorCode.WRONG_TRUST_DOMAIN, 'other.example'),
      );
      await asAdminCaller(foreignSvid(TD, `spiffe://${TD}/ops/admin`), (p) =>
        rejectsGrpcWithCode(p, grpc.status.UNAUTHENTICATED, ErrorCode.UNKNOWN_AUTHORITY),
      );
    });

    it('an expired SVID of this CA is UNAUTHENTICATED ERR_SVID_EXPIRED', async () => {
      await asAdminCaller(await expiredSvid(`spiffe://${TD}/ops/admin`), (p) =>
        rejectsGrpcWithCode(p, grpc.status.UNAUTHENTICATED, ErrorCode.SVID_EXPIRED),
      );
    });
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

  it('after a restart on the same data dir: entries, CA, bundle and spent tokens persist; every SVID verifies and renews', async () => {
    const bundleBefore = s.running.ca.bundle();
    await stop();
    await start();
    const bundleAfter = s.running.ca.bundle();
    assert.equal(bundleAfter.sequence, bundleBefore.sequence);
    assert.deepEqual(
      bundleAfter.x509Authorities.map((c) => c.sha256Hex),
      bundleBefore.x509Authorities.map((c) => c.sha256Hex),
    );
    const reloaded = await currentBundle();
    for (const attestor of ATTESTORS) {
      const h = heldOf(attestor);
      assert.ok(h.renewed, `${attestor} was not renewed`);
      const { entry } = await s.client.getEntry({ id: h.entryId });
      assert.equal(entry?.spiffeId, h.spiffeId);
      assert.equal(entry?.x509SvidTtlSeconds, h.ttlSeconds);
      for (const [what, chain] of [
        ['original', h.chain],
        ['renewed', h.renewed.chain],
      ] as const) {
        const v = verifyX509Svid(chain, reloaded);
        assert.equal(v.id.toString(), h.spiffeId, `${attestor} ${what}`);
      }
      // Both still renew over mTLS against the restarted server.
      for (const identity of [h, h.renewed]) {
        const mtls = connectPublic(s.running.publicAddress, bundlePem, TD, identity);
        try {
          const res = await renewCall(mtls, newKey().csr);
          assert.equal(res.svid?.spiffeId, h.spiffeId);
          verifyX509Svid(res.svid!.certChain, reloaded);
        } finally {
          mtls.close();
        }
      }
    }
    await rejectsGrpcWithCode(
      attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(spentToken),
        csr: newKey().csr,
      }),
      grpc.status.UNAUTHENTICATED,
      ErrorCode.TOKEN_SPENT,
    );
  });

  /** Renew over mTLS as `identity` is refused UNAUTHENTICATED with `code` and a message holding `fragment`. */
  async function renewUnauthenticated(
    identity: ClientIdentity,
    code: string,
    fragment: string,
  ): Promise<void> {
    const mtls = connectPublic(s.running.publicAddress, bundlePem, TD, identity);
    try {
      await rejectsGrpcWithCode(renewCall(mtls, newKey().csr), grpc.status.UNAUTHENTICATED, code, fragment);
    } finally {
      mtls.close();
    }
  }

  /** An SVID signed by this CA for a fresh key a minute ago, with a one-second lifetime. */
  const expiredSvid = (spiffeId = demoId): Promise<ClientIdentity> => expiredOf(s, spiffeId);
});

/** Everything in the agent context but provenance (a renewal records its own) is carried over. */
function assertSameContext(renewed: VerifyX509SvidResult, before: VerifyX509SvidResult): void {
  const { provenance: p1, ...a } = renewed.context!;
  const { provenance: p0, ...b } = before.context!;
  assert.ok(p1 && p0);
  assert.deepEqual(a, b);
}

describe('verifyPeerSvid without a readable TLS socket', () => {
  it('refuses with ERR_CLIENT_CERT_REJECTED and a message covering both "none sent" and "refused"', () => {
    // A call object that is not a grpc-js call: the socket cannot be found, so the refusal cannot be precise.
    const call = { getAuthContext: () => ({}) };
    const ca = undefined as unknown as Parameters<typeof verifyPeerSvid>[1];
    assert.throws(
      () => verifyPeerSvid(call, ca, new Date()),
      (e: unknown) =>
        isLanyardError(e) &&
        e.code === ErrorCode.CLIENT_CERT_REJECTED &&
        e.message.includes('none was sent') &&
        e.message.includes('expired'),
    );
  });
});
