/**
 * NodeService on the server, called directly with raw SVIDs: who counts as a node agent, and the bad input
 * an agent (or anyone holding an SVID) can send. Each refusal signs nothing.
 */
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import {
  channelCredentialsPresenting,
  LANYARD_CHANNEL_OPTIONS,
} from '../../../src/client/server-credentials';
import { NodeServiceClient } from '../../../src/gen/lanyard/v1/node';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { createCsr } from '../../../src/x509/csr';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { marshalIdentity } from '../../support/public-client';
import { startTestServer, type TestServer } from '../../support/test-server';
import { id, register, sessionClient, startSession, unary, type Agent } from '../../support/sessions';

function nodeClient(s: TestServer, who: Agent): NodeServiceClient {
  return new NodeServiceClient(
    s.running.publicAddress,
    channelCredentialsPresenting(s.running.ca.bundle(), marshalIdentity(who)),
    LANYARD_CHANNEL_OPTIONS,
  );
}

function call<T>(fn: (cb: (e: grpc.ServiceError | null, r: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((e, r) => (e ? reject(e) : resolve(r))));
}

async function code(p: Promise<unknown>): Promise<[grpc.status, string]> {
  try {
    await p;
  } catch (e) {
    const se = e as grpc.ServiceError;
    return [se.code, String(se.metadata?.get('lanyard-error-code')[0] ?? '')];
  }
  return assert.fail('expected a refusal');
}

const csr = (): Buffer => Buffer.from(createCsr(generateSigningKeyPair('ec-p256').privateKey).der);

describe('node agent: NodeService refusals on the server', function () {
  this.timeout(60_000);
  let s: TestServer;
  let node: Agent;
  let entryId = '';

  before(async () => {
    s = await startTestServer();
    node = await register(s, 'node-a');
    const { entry } = await s.client.createEntry({
      entry: {
        spiffeId: id('workload/w1'),
        parentId: node.spiffeId,
        selectors: [{ type: 'unix', value: 'uid:1000' }],
      },
    });
    entryId = entry!.id;
  });

  after(async () => {
    await s?.stop();
  });

  it("a workload that is no node agent sees no entries and cannot issue the agent's", async () => {
    const other = await register(s, 'just-a-workload');
    const c = nodeClient(s, other);
    try {
      const res = await call<{ entries: unknown[] }>((cb) => c.fetchEntries({}, new grpc.Metadata(), cb));
      assert.deepEqual(res.entries, []);
      assert.deepEqual(
        await code(
          call((cb) => c.batchNewX509Svid({ params: [{ entryId, csr: csr() }] }, new grpc.Metadata(), cb)),
        ),
        [grpc.status.PERMISSION_DENIED, 'ERR_UNAUTHORIZED'],
      );
    } finally {
      c.close();
    }
  });

  it('bad batches are INVALID_ARGUMENT: none, too many, a malformed CSR; a JWT-SVID without audience', async () => {
    const c = nodeClient(s, node);
    try {
      const md = new grpc.Metadata();
      assert.equal(
        (await code(call((cb) => c.batchNewX509Svid({ params: [] }, md, cb))))[0],
        grpc.status.INVALID_ARGUMENT,
      );
      const many = Array.from({ length: 65 }, () => ({ entryId, csr: Buffer.alloc(1) }));
      assert.equal(
        (await code(call((cb) => c.batchNewX509Svid({ params: many }, md, cb))))[0],
        grpc.status.INVALID_ARGUMENT,
      );
      assert.equal(
        (
          await code(
            call((cb) => c.batchNewX509Svid({ params: [{ entryId, csr: Buffer.from('nope') }] }, md, cb)),
          )
        )[0],
        grpc.status.INVALID_ARGUMENT,
      );
      assert.equal(
        (await code(call((cb) => c.newJwtSvid({ entryId, audience: [] }, md, cb))))[0],
        grpc.status.INVALID_ARGUMENT,
      );
      // The good request still works with the same client.
      const ok = await call<{ svids: { spiffeId: string }[] }>((cb) =>
        c.batchNewX509Svid({ params: [{ entryId, csr: csr() }] }, md, cb),
      );
      assert.equal(ok.svids[0]!.spiffeId, id('workload/w1'));
    } finally {
      c.close();
    }
  });

  it("a task session's SVID with the agent's SPIFFE ID is refused (live, and after the session ended)", async () => {
    const { agent: session, res } = await startSession(s, node);
    assert.equal(session.spiffeId, node.spiffeId);
    const c = nodeClient(s, session);
    try {
      assert.deepEqual(await code(call((cb) => c.fetchEntries({}, new grpc.Metadata(), cb))), [
        grpc.status.PERMISSION_DENIED,
        'ERR_NO_MATCHING_ENTRY',
      ]);
      const sc = sessionClient(s, session);
      await unary(sc.endSession.bind(sc), { sessionId: res.sessionId, reason: 'task done' });
      sc.close();
      assert.deepEqual(
        await code(
          call((cb) => c.batchNewX509Svid({ params: [{ entryId, csr: csr() }] }, new grpc.Metadata(), cb)),
        ),
        // One order of checks for every caller (auth/resolve-caller.ts): an ended session is named as ended.
        [grpc.status.PERMISSION_DENIED, 'ERR_SESSION_ENDED'],
      );
    } finally {
      c.close();
    }
    // The plain agent SVID still works.
    const plain = nodeClient(s, node);
    try {
      const ok = await call<{ entries: unknown[] }>((cb) => plain.fetchEntries({}, new grpc.Metadata(), cb));
      assert.equal(ok.entries.length, 1);
    } finally {
      plain.close();
    }
  });

  it('a revoked agent SVID is UNAUTHENTICATED; a deleted agent entry is PERMISSION_DENIED', async () => {
    const revoked = await register(s, 'node-revoked');
    await s.client.revokeSvid({
      serialHex: ParsedCertificate.fromDer(revoked.chain[0]!).serialHex,
      reason: 'test',
    });
    const c1 = nodeClient(s, revoked);
    try {
      assert.deepEqual(await code(call((cb) => c1.fetchEntries({}, new grpc.Metadata(), cb))), [
        grpc.status.UNAUTHENTICATED,
        'ERR_REVOKED',
      ]);
    } finally {
      c1.close();
    }

    const gone = await register(s, 'node-gone');
    const listed = await s.client.listEntries({ filter: { spiffeIdPrefix: gone.spiffeId } });
    for (const e of listed.entries) await s.client.deleteEntry({ id: e.id });
    const c2 = nodeClient(s, gone);
    try {
      assert.deepEqual(await code(call((cb) => c2.fetchEntries({}, new grpc.Metadata(), cb))), [
        grpc.status.PERMISSION_DENIED,
        'ERR_NO_MATCHING_ENTRY',
      ]);
    } finally {
      c2.close();
    }
  });
});
