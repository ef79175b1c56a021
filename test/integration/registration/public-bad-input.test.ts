/**
 * Bad input on the public TLS listener, against a real server: a message over max_message_bytes, a client
 * that disconnects in the middle of an attestation (x509pop waiting for the answer; join_token inside its
 * transaction), and bytes that are not a protobuf message. Each gets its status, spends no token, changes no
 * entry, CA or bundle, and the server keeps serving.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { answerX509PopChallenge } from '../../../src/attest';
import { AttestRequest, type AttestResponse } from '../../../src/gen/lanyard/v1/attestation';
import { GetBundleRequest, GetBundleResponse } from '../../../src/gen/lanyard/v1/bundle';
import { ErrorCode } from '../../../src/errors';
import { ERROR_CODE_METADATA_KEY } from '../../../src/internal/grpc-call';
import { openDefaultStore } from '../../../src/server/run';
import type { Store, StoreOps } from '../../../src/store/store';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import {
  attest,
  connectPublic,
  newKey,
  PUBLIC_CHANNEL_OPTIONS,
  publicCredentials,
  renewCall,
  type ClientIdentity,
  type PublicClients,
} from '../../support/public-client';
import { rejectsGrpc } from '../../support/grpc-refusal';
import { provisioningEvidencePem, provisioningPki, writeProvisioningCaFile } from '../../support/pki';

const TD = 'lanyard.local';
const MAX_MESSAGE_BYTES = 8192;
/** A length-delimited field 1 that announces 100 bytes and carries 2: no protobuf decoder accepts it. */
const NOT_PROTOBUF = Buffer.from([0x0a, 0x64, 0x01, 0x02]);

/**
 * Holds the next store transaction at its start once armed, so a test can act while the server is inside
 * it (here: cancel the client). `entered` resolves when the held transaction is waiting.
 */
class TransactionGate {
  private armed = false;
  private releaseHeld: (() => void) | undefined;
  private signalEntered: (() => void) | undefined;
  entered: Promise<void> = Promise.resolve();

  arm(): void {
    this.armed = true;
    this.entered = new Promise((resolve) => (this.signalEntered = resolve));
  }

  release(): void {
    this.releaseHeld?.();
  }

  wrap(store: Store): Store {
    const hold = async <T>(tx: StoreOps, fn: (tx: StoreOps) => Promise<T>): Promise<T> => {
      if (this.armed) {
        this.armed = false;
        const held = new Promise<void>((resolve) => (this.releaseHeld = resolve));
        this.signalEntered?.();
        await held;
      }
      return fn(tx);
    };
    const original = store.transaction.bind(store);
    store.transaction = <T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> => original((tx) => hold(tx, fn));
    // Issuance runs in the group commit's shared transaction: hold that too, or an armed gate would catch
    // whichever admin call comes next instead of the attestation under test.
    const shared = store.sharedTransaction?.bind(store);
    if (shared !== undefined) {
      store.sharedTransaction = <T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> =>
        shared((tx) => hold(tx, fn));
    }
    return store;
  }
}

/** What no failed call may change: entries (with revisions), CAs (with states), bundle sequence. */
interface Snapshot {
  entries: string[];
  authorities: string[];
  bundleSequence: number | undefined;
}

describe('public listener: bad input and clients that go away', function () {
  this.timeout(60_000);
  const files = tempDataDir();
  // A provisioning CA for x509pop and one device certificate under it.
  const prov = provisioningPki('spiffe://provisioning.example/device/edge-3');
  const { deviceKey } = prov;
  const caBundleFile = writeProvisioningCaFile(prov, path.join(files, 'prov-ca.pem'));
  const deviceEvidence = Buffer.from(provisioningEvidencePem(prov));

  const gate = new TransactionGate();
  let s: TestServer;
  let pub: PublicClients;
  let bundlePem: string;
  const demoId = `spiffe://${TD}/agents/demo`;

  before(async () => {
    s = await startTestServer({
      config: {
        maxMessageBytes: MAX_MESSAGE_BYTES,
        attestors: { joinToken: {}, x509pop: { caBundleFile } },
      },
      start: { openStore: async (config) => gate.wrap(await openDefaultStore(config)), rotationTimer: false },
    });
    bundlePem = s.running.ca.bundle().toPem();
    pub = connectPublic(s.running.publicAddress, bundlePem, TD);
    await s.client.createEntry({
      entry: { spiffeId: demoId, selectors: [{ type: 'unix', value: 'uid:1000' }] },
    });
    await s.client.createEntry({
      entry: {
        spiffeId: `spiffe://${TD}/devices/edge-3`,
        selectors: [{ type: 'x509pop', value: 'san:uri:spiffe://provisioning.example/device/edge-3' }],
      },
    });
  });
  after(async () => {
    gate.release();
    pub.close();
    await s.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
    fs.rmSync(files, { recursive: true, force: true });
  });

  async function snapshot(): Promise<Snapshot> {
    const { entries } = await s.client.listEntries({ pageSize: 1000 });
    return {
      entries: entries.map((e) => `${e.id}@${e.revision}`).sort(),
      authorities: s.running.ca.authorities().map((a) => `${a.id}:${a.state}`),
      bundleSequence: s.running.ca.bundle().sequence,
    };
  }

  const joinToken = async (): Promise<string> => (await s.client.createJoinToken({ spiffeId: demoId })).token;

  /** Attests with `token`: succeeds only while the token is unspent. */
  const attestWith = (token: string) =>
    attest(pub.attestation, { attestorType: 'join_token', evidence: Buffer.from(token), csr: newKey().csr });

  const joinTokenParams = (token: string): AttestRequest => ({
    step: {
      $case: 'params',
      value: { attestorType: 'join_token', evidence: Buffer.from(token), csr: newKey().csr, spiffeId: '' },
    },
  });
  const x509popParams = (): AttestRequest => ({
    step: {
      $case: 'params',
      value: { attestorType: 'x509pop', evidence: deviceEvidence, csr: newKey().csr, spiffeId: '' },
    },
  });

  /** Resolves when a server log line contains `fragment` (the server logs every call, cancelled ones too). */
  async function logged(fragment: string, after = 0): Promise<void> {
    const until = Date.now() + 10_000;
    while (!s.logs.slice(after).some((l) => l.includes(fragment))) {
      if (Date.now() > until) assert.fail(`no log line with "${fragment}"`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** The server still does its job: a fresh join-token attestation succeeds. */
  async function stillServes(): Promise<void> {
    const r = await attestWith(await joinToken());
    assert.equal(r.svid?.spiffeId, demoId);
  }

  it('an Attest message over max_message_bytes is RESOURCE_EXHAUSTED; its join token stays unspent', async () => {
    const token = await joinToken();
    const before = await snapshot();
    await rejectsGrpc(
      attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(token),
        csr: newKey().csr,
        spiffeId: `${demoId}/${'x'.repeat(MAX_MESSAGE_BYTES)}`,
      }),
      grpc.status.RESOURCE_EXHAUSTED,
      `${MAX_MESSAGE_BYTES}`,
    );
    assert.deepEqual(await snapshot(), before);
    assert.equal((await attestWith(token)).svid?.spiffeId, demoId, 'the token was not spent');
  });

  it('a Renew request over max_message_bytes is RESOURCE_EXHAUSTED; a normal Renew still works', async () => {
    const k = newKey();
    const r = await attest(pub.attestation, {
      attestorType: 'join_token',
      evidence: Buffer.from(await joinToken()),
      csr: k.csr,
    });
    const identity: ClientIdentity = { key: k.key, chain: r.svid!.certChain };
    const mtls = connectPublic(s.running.publicAddress, bundlePem, TD, identity);
    try {
      const before = await snapshot();
      await rejectsGrpc(renewCall(mtls, Buffer.alloc(MAX_MESSAGE_BYTES + 1)), grpc.status.RESOURCE_EXHAUSTED);
      assert.deepEqual(await snapshot(), before);
      assert.equal((await renewCall(mtls, newKey().csr)).svid?.spiffeId, demoId);
    } finally {
      mtls.close();
    }
  });

  it('x509pop: a client that cancels while the server waits for its answer changes nothing', async () => {
    const before = await snapshot();
    const logsBefore = s.logs.length;
    const call = pub.attestation.attest({ deadline: Date.now() + 15_000 });
    const cancelled = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    const challenged = new Promise<void>((resolve) =>
      call.on('data', (res: AttestResponse) => {
        if (res.step?.$case === 'challenge') resolve();
      }),
    );
    call.write(x509popParams());
    await Promise.race([challenged, cancelled.then((e) => assert.fail(`no challenge: ${e.details}`))]);
    call.cancel();
    assert.equal((await cancelled).code, grpc.status.CANCELLED);
    // grpc-js delivers the cancel as the end of the request stream first, so the server's line for this
    // call says the stream ended before the challenge was answered (or, should the cancel come first,
    // "attestation abandoned"). Either way the pending challenge is dropped then, not at its timeout.
    await logged('"method":"Attest"', logsBefore);

    assert.deepEqual(await snapshot(), before);
    // Nothing went wrong on the server's side: a cancelled call is not an error.
    assert.ok(!s.logs.slice(logsBefore).some((l) => l.includes('"level":"error"')));
    // The same device attests again with a fresh challenge, and join tokens still work.
    const r = await attest(
      pub.attestation,
      { attestorType: 'x509pop', evidence: deviceEvidence, csr: newKey().csr },
      (challenge) => Buffer.from(answerX509PopChallenge(challenge, deviceKey.privateKey)),
    );
    assert.equal(r.svid?.spiffeId, `spiffe://${TD}/devices/edge-3`);
    await stillServes();
  });

  it('join_token: a client that cancels while its transaction runs gets no SVID, and the token stays unspent', async () => {
    const token = await joinToken();
    const before = await snapshot();
    const logsBefore = s.logs.length;
    gate.arm();
    const call = pub.attestation.attest({ deadline: Date.now() + 15_000 });
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    let gotResult = false;
    call.on('data', (res: AttestResponse) => (gotResult ||= res.step?.$case === 'result'));
    call.write(joinTokenParams(token));
    call.end();
    // The server has opened the attestation's transaction; token check, entry match and signing run in it
    // once the gate opens, after the cancel.
    await gate.entered;
    call.cancel();
    assert.equal((await ended).code, grpc.status.CANCELLED);
    await logged('attestation abandoned', logsBefore);
    gate.release();

    assert.equal(gotResult, false);
    assert.deepEqual(await snapshot(), before);
    assert.equal((await attestWith(token)).svid?.spiffeId, demoId, 'the rolled-back token is still usable');
  });

  describe('Attest stream protocol errors: INVALID_ARGUMENT, nothing spent', () => {
    /** Sends `requests` on one Attest stream, half-closes, and returns the status it ends with. */
    function stream(requests: AttestRequest[]): Promise<grpc.ServiceError> {
      return new Promise((resolve, reject) => {
        const call = pub.attestation.attest({ deadline: Date.now() + 15_000 });
        call.on('error', resolve);
        call.on('data', () => undefined);
        // 'end' can come before 'error' on a failed call: give the status a moment before calling it success.
        call.on('end', () => setTimeout(() => reject(new Error('the stream ended without an error')), 1000));
        for (const r of requests) call.write(r);
        call.end();
      });
    }

    const cases: [string, AttestRequest[], string][] = [
      ['a request with neither params nor challenge_response', [{ step: undefined }], 'without params'],
      [
        'challenge_response before params',
        [{ step: { $case: 'challengeResponse', value: Buffer.from('x') } }],
        'before AttestParams',
      ],
      ['the stream ends before params', [], 'ended before AttestParams'],
    ];
    for (const [name, requests, fragment] of cases) {
      it(name, async () => {
        const token = await joinToken();
        const before = await snapshot();
        const err = await stream(requests);
        assert.equal(err.code, grpc.status.INVALID_ARGUMENT, err.details);
        assert.ok(err.details.includes(fragment), err.details);
        assert.deepEqual(await snapshot(), before);
        assert.equal((await attestWith(token)).svid?.spiffeId, demoId, 'the token was not spent');
      });
    }
  });

  it('params again while a join-token attestation runs: INVALID_ARGUMENT, its transaction rolls back', async () => {
    const token = await joinToken();
    const before = await snapshot();
    gate.arm();
    const call = pub.attestation.attest({ deadline: Date.now() + 15_000 });
    const failed = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    let gotResult = false;
    call.on('data', (res: AttestResponse) => (gotResult ||= res.step?.$case === 'result'));
    const params = joinTokenParams(token);
    call.write(params);
    await gate.entered;
    call.write(params);
    const err = await failed;
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT, err.details);
    assert.match(err.details, /sent twice/);
    gate.release();

    assert.equal(gotResult, false);
    assert.deepEqual(await snapshot(), before);
    assert.equal((await attestWith(token)).svid?.spiffeId, demoId, 'the refused call spent no token');
  });

  it('params again while x509pop waits for its answer: INVALID_ARGUMENT, the challenge is dropped', async () => {
    const before = await snapshot();
    const logsBefore = s.logs.length;
    const call = pub.attestation.attest({ deadline: Date.now() + 15_000 });
    const failed = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    const challenged = new Promise<void>((resolve) => call.on('data', () => resolve()));
    const params = x509popParams();
    call.write(params);
    await Promise.race([challenged, failed.then((e) => assert.fail(`no challenge: ${e.details}`))]);
    call.write(params);
    const err = await failed;
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT, err.details);
    assert.match(err.details, /sent twice/);
    await logged('sent twice', logsBefore);
    assert.deepEqual(await snapshot(), before);
  });

  describe('bytes that are not a protobuf message (a raw grpc-js client, identity serializer)', () => {
    let raw: grpc.Client;
    before(() => {
      raw = new grpc.Client(
        s.running.publicAddress,
        publicCredentials(bundlePem, TD),
        PUBLIC_CHANNEL_OPTIONS,
      );
    });
    after(() => raw.close());
    const identity = (b: Buffer): Buffer => b;

    it('on Attest (a stream): INTERNAL "Error deserializing request", nothing changed, the server serves', async () => {
      const before = await snapshot();
      const call = raw.makeBidiStreamRequest<Buffer, Buffer>(
        '/lanyard.v1.AttestationService/Attest',
        identity,
        identity,
      );
      const failed = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
      call.on('data', () => assert.fail('no response expected'));
      call.write(NOT_PROTOBUF);
      call.end();
      const err = await failed;
      // grpc-js decides this status before any Lanyard code runs; it says INTERNAL, not INVALID_ARGUMENT.
      assert.equal(err.code, grpc.status.INTERNAL, err.details);
      assert.match(err.details, /Error deserializing request/);
      assert.deepEqual(await snapshot(), before);
      await stillServes();
    });

    it('a broken frame in place of the x509pop answer: INTERNAL, the pending challenge is dropped', async () => {
      const before = await snapshot();
      const logsBefore = s.logs.length;
      const call = raw.makeBidiStreamRequest<Buffer, Buffer>(
        '/lanyard.v1.AttestationService/Attest',
        identity,
        identity,
      );
      const failed = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
      const challenged = new Promise<void>((resolve) => call.on('data', () => resolve()));
      call.write(Buffer.from(AttestRequest.encode(x509popParams()).finish()));
      await Promise.race([challenged, failed.then((e) => assert.fail(`no challenge: ${e.details}`))]);
      call.write(NOT_PROTOBUF);
      const err = await failed;
      assert.equal(err.code, grpc.status.INTERNAL, err.details);
      assert.match(err.details, /Error deserializing request/);
      // grpc-js ends the call and tells the handler it was cancelled: the waiting challenge goes at once.
      await logged('attestation abandoned', logsBefore);
      assert.deepEqual(await snapshot(), before);
      await stillServes();
    });

    it('on unary methods (Renew, GetBundle, remote ListEntries): INVALID_ARGUMENT ERR_MALFORMED_REQUEST before any handler runs', async () => {
      const before = await snapshot();
      for (const method of [
        '/lanyard.v1.AttestationService/Renew',
        '/lanyard.v1.BundleService/GetBundle',
        '/lanyard.v1.RegistrationService/ListEntries',
      ]) {
        const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
          raw.makeUnaryRequest(method, identity, identity, NOT_PROTOBUF, (e) =>
            e ? resolve(e) : reject(new Error(`${method} accepted garbage`)),
          ),
        );
        assert.equal(err.code, grpc.status.INVALID_ARGUMENT, `${method}: ${err.details}`);
        assert.deepEqual(err.metadata.get(ERROR_CODE_METADATA_KEY), [ErrorCode.MALFORMED_REQUEST]);
        assert.match(err.details, /not a valid .* message \(protobuf decoding failed/);
        assert.ok(err.details.includes(method), err.details);
      }
      // The same raw client with well-formed bytes is served: only the decoding failure is refused.
      const ok = await new Promise<Buffer>((resolve, reject) =>
        raw.makeUnaryRequest(
          '/lanyard.v1.BundleService/GetBundle',
          identity,
          identity,
          Buffer.from(GetBundleRequest.encode({ trustDomain: '' }).finish()),
          (e, r) => (e ? reject(e) : resolve(r!)),
        ),
      );
      assert.ok(GetBundleResponse.decode(ok).bundle?.x509Authorities.length);
      assert.deepEqual(await snapshot(), before);
      await stillServes();
    });

    it('on a server stream (WatchBundle): INVALID_ARGUMENT ERR_MALFORMED_REQUEST, no message sent', async () => {
      const call = raw.makeServerStreamRequest<Buffer, Buffer>(
        '/lanyard.v1.BundleService/WatchBundle',
        identity,
        identity,
        NOT_PROTOBUF,
      );
      call.on('data', () => assert.fail('no bundle expected'));
      const err = await new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT, err.details);
      assert.deepEqual(err.metadata.get(ERROR_CODE_METADATA_KEY), [ErrorCode.MALFORMED_REQUEST]);
      await stillServes();
    });
  });

  // Last (mocha runs nested suites after the outer tests, in order): this closes the server's CA.
  describe('a CA that cannot sign', () => {
    it('no CA that can sign: UNAVAILABLE (ERR_CA_NOT_READY); the token stays unspent across a restart', async () => {
      const token = await joinToken();
      await s.running.ca.close();
      const err = await rejectsGrpc(attestWith(token), grpc.status.UNAVAILABLE, 'CA');
      assert.equal(err.metadata.get(ERROR_CODE_METADATA_KEY)[0], ErrorCode.CA_NOT_READY);

      pub.close();
      await s.stop();
      s = await startTestServer({
        dir: s.dir,
        config: {
          maxMessageBytes: MAX_MESSAGE_BYTES,
          attestors: { joinToken: {}, x509pop: { caBundleFile } },
        },
        start: { rotationTimer: false },
      });
      pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD);
      assert.equal((await attestWith(token)).svid?.spiffeId, demoId);
    });
  });
});
