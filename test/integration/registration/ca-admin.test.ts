/**
 * Manual CA rotation (AdminService, `lanyard ca rotate` / `lanyard ca show`) against a real server: a prepare
 * publishes a new bundle sequence holding the new root; an activation makes new SVIDs chain to the new CA
 * while old SVIDs keep verifying; activating with nothing prepared is FAILED_PRECONDITION and changes
 * nothing. On the public listener the service needs an admin SVID.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import { ErrorCode } from '../../../src/errors';
import {
  AdminServiceClient,
  CaAuthorityState,
  CaRotationStep,
  type GetCaResponse,
} from '../../../src/gen/lanyard/v1/admin';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { startTestServer, type TestServer } from '../../support/test-server';
import {
  attest,
  connectPublic,
  getBundle,
  newKey,
  PUBLIC_CHANNEL_OPTIONS,
  publicCredentials,
  type ClientIdentity,
  type PublicClients,
} from '../../support/public-client';
import { rejectsGrpc, rejectsWithStatus } from '../../support/grpc-refusal';

const TD = 'lanyard.local';
const td = TrustDomain.parse(TD);

describe('AdminService: manual CA rotation and CA state', function () {
  this.timeout(60_000);
  let s: TestServer;
  let pub: PublicClients;
  let bundlePem: string;
  const id = `spiffe://${TD}/agents/rotated`;

  before(async () => {
    // No rotation timer: every CA change in this suite is one the test asked for.
    s = await startTestServer({ start: { rotationTimer: false } });
    bundlePem = s.running.ca.bundle().toPem();
    pub = connectPublic(s.running.publicAddress, bundlePem, TD);
    await s.client.createEntry({ entry: { spiffeId: id, selectors: [{ type: 'unix', value: 'uid:5' }] } });
  });
  after(async () => {
    pub.close();
    await s.stop();
  });

  /** A fresh SVID over the public listener: leaf first, then the signing CA. */
  async function issue(spiffeId = id): Promise<ClientIdentity & { chain: Buffer[] }> {
    const { token } = await s.client.createJoinToken({ spiffeId });
    const k = newKey();
    const r = await attest(pub.attestation, {
      attestorType: 'join_token',
      evidence: Buffer.from(token),
      csr: k.csr,
    });
    return { key: k.key, chain: r.svid!.certChain };
  }

  const byState = (res: GetCaResponse, state: CaAuthorityState) =>
    res.authorities.filter((a) => a.state === state);

  it('ca show: one active self-signed CA, bundle sequence 1 holding its root', async () => {
    const res = await s.client.getCa();
    assert.equal(res.authorities.length, 1);
    const [active] = res.authorities;
    assert.equal(active!.state, CaAuthorityState.CA_AUTHORITY_STATE_ACTIVE);
    assert.ok(active!.selfSigned);
    assert.ok(active!.notBefore! < active!.notAfter!);
    assert.ok(active!.activatedAt);
    assert.equal(res.bundle!.sequence, 1);
    assert.deepEqual(res.bundle!.x509Authorities, [active!.certDer]);
    assert.ok(res.nextCheckAt! > new Date());
  });

  it('activate without a prepared CA is FAILED_PRECONDITION (ERR_CA_NOT_PREPARED) and changes nothing', async () => {
    const before = await s.client.getCa();
    const err = await rejectsWithStatus(
      s.client.rotateCa({ step: CaRotationStep.CA_ROTATION_STEP_ACTIVATE }),
      grpc.status.FAILED_PRECONDITION,
      'no CA is prepared',
    );
    assert.equal(err.lanyardCode, ErrorCode.CA_NOT_PREPARED);
    const after = await s.client.getCa();
    assert.deepEqual(after.authorities, before.authorities);
    assert.equal(after.bundle!.sequence, before.bundle!.sequence);
  });

  it('an unknown step value is INVALID_ARGUMENT', async () => {
    await rejectsWithStatus(s.client.rotateCa({ step: 7 as CaRotationStep }), grpc.status.INVALID_ARGUMENT);
  });

  let oldSvid: ClientIdentity & { chain: Buffer[] };
  let oldCaDer: Buffer;
  let preparedDer: Buffer;

  it('prepare: the bundle sequence increments and holds the new root; SVIDs still come from the old CA', async () => {
    const before = await s.client.getCa();
    oldCaDer = before.authorities[0]!.certDer;
    const { bundle: watched } = await getBundle(pub);
    const res = await s.client.rotateCa({ step: CaRotationStep.CA_ROTATION_STEP_PREPARE });
    assert.equal(res.step, CaRotationStep.CA_ROTATION_STEP_PREPARE);
    assert.equal(res.authority!.state, CaAuthorityState.CA_AUTHORITY_STATE_PREPARED);
    assert.equal(res.authority!.activatedAt, undefined);
    preparedDer = res.authority!.certDer;
    assert.notDeepEqual(preparedDer, oldCaDer);

    // The public listener's bundle moved too: verifiers polling it learn the root before any SVID uses it.
    const { bundle } = await getBundle(pub);
    assert.equal(bundle!.sequence, watched!.sequence + 1);
    assert.equal(res.bundle!.sequence, bundle!.sequence);
    assert.deepEqual(new Set(bundle!.x509Authorities), new Set([oldCaDer, preparedDer]));

    oldSvid = await issue();
    assert.deepEqual(oldSvid.chain[1], oldCaDer, 'the active CA still signs');
  });

  it('activate: new SVIDs are signed by the new CA; old ones still verify; the server SVID moved too', async () => {
    const seqBefore = (await s.client.getCa()).bundle!.sequence;
    const res = await s.client.rotateCa({ step: CaRotationStep.CA_ROTATION_STEP_ACTIVATE });
    assert.equal(res.step, CaRotationStep.CA_ROTATION_STEP_ACTIVATE);
    assert.deepEqual(res.authority!.certDer, preparedDer);
    assert.equal(res.authority!.state, CaAuthorityState.CA_AUTHORITY_STATE_ACTIVE);
    // The roots did not change (both were already in it), so neither did the sequence.
    assert.equal(res.bundle!.sequence, seqBefore);

    const state = await s.client.getCa();
    assert.deepEqual(
      byState(state, CaAuthorityState.CA_AUTHORITY_STATE_ACTIVE).map((a) => a.certDer),
      [preparedDer],
    );
    assert.deepEqual(
      byState(state, CaAuthorityState.CA_AUTHORITY_STATE_OLD).map((a) => a.certDer),
      [oldCaDer],
    );
    assert.equal(s.running.ca.serverSvid().authorityId, res.authority!.id);

    const fresh = await issue();
    assert.deepEqual(fresh.chain[1], preparedDer, 'signed by the newly active CA');
    const bundle = X509Bundle.fromPem(td, (await getBundle(pub)).bundle!.x509AuthoritiesPem);
    assert.equal(verifyX509Svid(fresh.chain, bundle, { cache: null }).id.toString(), id);
    assert.equal(verifyX509Svid(oldSvid.chain, bundle, { cache: null }).id.toString(), id);
  });

  it('the default step prepares when nothing is prepared, then activates', async () => {
    const first = await s.client.rotateCa({});
    assert.equal(first.step, CaRotationStep.CA_ROTATION_STEP_PREPARE);
    const second = await s.client.rotateCa({});
    assert.equal(second.step, CaRotationStep.CA_ROTATION_STEP_ACTIVATE);
    assert.equal(second.authority!.id, first.authority!.id);
  });

  it('two default steps at once: a prepare and an activation, never two prepares', async () => {
    const steps = await Promise.all([s.client.rotateCa({}), s.client.rotateCa({})]);
    assert.deepEqual(steps.map((r) => r.step).sort(), [
      CaRotationStep.CA_ROTATION_STEP_PREPARE,
      CaRotationStep.CA_ROTATION_STEP_ACTIVATE,
    ]);
  });

  describe('on the public listener', () => {
    const getCa = (identity?: ClientIdentity): Promise<GetCaResponse> => {
      const client = new AdminServiceClient(
        s.running.publicAddress,
        publicCredentials(s.running.ca.bundle().toPem(), TD, identity),
        PUBLIC_CHANNEL_OPTIONS,
      );
      return new Promise<GetCaResponse>((resolve, reject) =>
        client.getCa({}, (err, res) => (err ? reject(err) : resolve(res))),
      ).finally(() => client.close());
    };

    it('without a client certificate: UNAUTHENTICATED', async () => {
      await rejectsGrpc(getCa(), grpc.status.UNAUTHENTICATED);
    });

    it('with a non-admin SVID: PERMISSION_DENIED', async () => {
      const svid = await issue();
      await rejectsGrpc(getCa(svid), grpc.status.PERMISSION_DENIED, 'not an admin');
    });

    it('with an admin SVID: served', async () => {
      const adminId = `spiffe://${TD}/ops/ca-admin`;
      await s.client.createEntry({
        entry: { spiffeId: adminId, selectors: [{ type: 'unix', value: 'uid:0' }], admin: true },
      });
      const res = await getCa(await issue(adminId));
      assert.ok(res.authorities.length >= 2);
    });
  });
});
