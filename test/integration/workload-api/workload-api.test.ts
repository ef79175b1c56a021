/**
 * The node agent end to end: a real server, an agent attested with a join token, and clients that know only
 * the standard Workload API proto, on the agent's Unix socket.
 */
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { X509Bundle } from '../../../src/bundle';
import type { SpiffeWorkloadAPIClient } from '../../../src/gen/spiffe/workload/workload';
import { NodeServiceClient } from '../../../src/gen/lanyard/v1/node';
import { LANYARD_CHANNEL_OPTIONS, lanyardChannelCredentials } from '../../../src/client/server-credentials';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { createCsr } from '../../../src/x509/csr';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { startTestServer, type TestServer } from '../../support/test-server';
import {
  AGENT_ID,
  TD,
  X509Stream,
  header,
  splitDer,
  startAgentFor,
  waitFor,
  workloadClient,
  type AgentFixture,
} from '../../support/agent';

const UID = process.getuid!();
const WORKLOAD_ID = `spiffe://${TD}/workload/tool-runner`;

function statusOf(p: Promise<unknown>): Promise<grpc.ServiceError> {
  return p.then(
    () => assert.fail('expected the call to fail'),
    (e: grpc.ServiceError) => e,
  );
}

function unary<T>(fn: (cb: (e: grpc.ServiceError | null, r: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((e, r) => (e ? reject(e) : resolve(r))));
}

describe('node agent: the SPIFFE Workload API on a Unix socket', function () {
  this.timeout(60_000);
  let s: TestServer;
  let a: AgentFixture;
  let client: SpiffeWorkloadAPIClient;

  before(async () => {
    s = await startTestServer();
    await s.client.createEntry({
      entry: {
        spiffeId: WORKLOAD_ID,
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${UID}` }],
        x509SvidTtlSeconds: 4,
      },
    });
    // Same selectors, another parent: this agent must never see or obtain it.
    await s.client.createEntry({
      entry: {
        spiffeId: `spiffe://${TD}/workload/elsewhere`,
        parentId: `spiffe://${TD}/agent/node-2`,
        selectors: [{ type: 'unix', value: `uid:${UID}` }],
      },
    });
    // No parent at all: only direct attestation could issue it, never an agent.
    await s.client.createEntry({
      entry: {
        spiffeId: `spiffe://${TD}/workload/direct`,
        selectors: [{ type: 'unix', value: `uid:${UID}` }],
      },
    });
    a = await startAgentFor(s);
    client = workloadClient(a.socketPath);
  });

  after(async () => {
    client?.close();
    await a?.close();
    await s?.stop();
  });

  it('streams the SVID with its own key and bundle; it verifies with that bundle; a rotation arrives on the stream', async () => {
    const stream = new X509Stream(client);
    try {
      const first = await stream.next();
      assert.equal(first.svids.length, 1, 'only the entry under this agent that the caller matches');
      const svid = first.svids[0]!;
      assert.equal(svid.spiffeId, WORKLOAD_ID);
      const chain = splitDer(svid.x509Svid);
      const bundle = X509Bundle.fromDer(TrustDomain.parse(TD), splitDer(svid.bundle));
      const verified = verifyX509Svid(chain, bundle);
      assert.equal(verified.id.toString(), WORKLOAD_ID);
      // The key in the response is the SVID's key: it signs what the certificate's public key verifies.
      const key = createPrivateKey({ key: Buffer.from(svid.x509SvidKey), format: 'der', type: 'pkcs8' });
      const leaf = ParsedCertificate.fromDer(chain[0]!);
      const pub = createPublicKey({ key: Buffer.from(leaf.spkiDer), format: 'der', type: 'spki' });
      assert.ok(verify('sha256', Buffer.from('x'), pub, sign('sha256', Buffer.from('x'), key)));
      assert.equal(verified.context?.provenance.method, 'node-agent');

      // TTL 4 s: the agent renews at half life and the stream carries the new SVID unasked.
      const second = await stream.next(10_000);
      const rotated = ParsedCertificate.fromDer(splitDer(second.svids[0]!.x509Svid)[0]!);
      assert.notEqual(rotated.serialHex, leaf.serialHex);
      assert.ok(
        !Buffer.from(second.svids[0]!.x509SvidKey).equals(Buffer.from(svid.x509SvidKey)),
        'fresh key',
      );
      verifyX509Svid(splitDer(second.svids[0]!.x509Svid), bundle);
    } finally {
      stream.cancel();
    }
  });

  it('FetchX509Bundles streams the trust bundle keyed by the trust domain ID', async () => {
    const call = client.fetchX509Bundles({}, header());
    const res = await new Promise<{ bundles: { [k: string]: Buffer } }>((resolve, reject) => {
      call.once('data', resolve);
      call.once('error', reject);
    });
    call.cancel();
    const der = res.bundles[`spiffe://${TD}`];
    assert.ok(der !== undefined);
    assert.deepEqual(
      splitDer(der).map((d) => Buffer.from(d).toString('hex')),
      s.running.ca.bundle().x509Authorities.map((c) => Buffer.from(c.der).toString('hex')),
    );
  });

  it('refuses every call without the workload.spiffe.io: true header (INVALID_ARGUMENT)', async () => {
    const wrong = new grpc.Metadata();
    wrong.set('workload.spiffe.io', 'yes');
    for (const md of [new grpc.Metadata(), wrong]) {
      const stream = new X509Stream(client, md);
      const e = await stream.next().then(
        () => assert.fail('FetchX509SVID without the header answered'),
        (err: grpc.ServiceError) => err,
      );
      assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
      const jwt = await statusOf(
        unary((cb) => client.fetchJwtsvid({ audience: ['x'], spiffeId: '' }, md, cb)),
      );
      assert.equal(jwt.code, grpc.status.INVALID_ARGUMENT);
      const val = await statusOf(
        unary((cb) => client.validateJwtsvid({ audience: 'x', svid: 'a.b.c' }, md, cb)),
      );
      assert.equal(val.code, grpc.status.INVALID_ARGUMENT);
    }
  });

  it('JWT-SVID: aud required; ES256 with a kid from the JWT bundle; ValidateJWTSVID accepts it for its audience only', async () => {
    const noAud = await statusOf(
      unary((cb) => client.fetchJwtsvid({ audience: [], spiffeId: '' }, header(), cb)),
    );
    assert.equal(noAud.code, grpc.status.INVALID_ARGUMENT);

    const res = await unary<{ svids: { spiffeId: string; svid: string }[] }>((cb) =>
      client.fetchJwtsvid({ audience: ['tickets-api'], spiffeId: '' }, header(), cb),
    );
    assert.equal(res.svids.length, 1);
    assert.equal(res.svids[0]!.spiffeId, WORKLOAD_ID);
    const token = res.svids[0]!.svid;
    const [h, p] = token.split('.');
    const hdr = JSON.parse(Buffer.from(h!, 'base64url').toString()) as { alg: string; kid: string };
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as {
      sub: string;
      aud: string[];
      exp: number;
      iat: number;
    };
    assert.equal(hdr.alg, 'ES256');
    assert.equal(claims.sub, WORKLOAD_ID);
    assert.deepEqual(claims.aud, ['tickets-api']);
    assert.ok(claims.exp - claims.iat <= 300, 'short-lived');

    const bundles = client.fetchJwtBundles({}, header());
    const jb = await new Promise<{ bundles: { [k: string]: Buffer } }>((resolve, reject) => {
      bundles.once('data', resolve);
      bundles.once('error', reject);
    });
    bundles.cancel();
    const jwks = JSON.parse(jb.bundles[`spiffe://${TD}`]!.toString()) as {
      keys: { kid: string; use: string }[];
    };
    assert.ok(jwks.keys.some((k) => k.kid === hdr.kid && k.use === 'jwt-svid'));
    // The server publishes the same key in its SPIFFE bundle (BundleService), so verifiers off the node agree.
    const { bundle: served } = await s.client.getBundle({});
    const doc = JSON.parse(served!.spiffeBundleJson) as { keys: { kid?: string; use: string }[] };
    assert.ok(doc.keys.some((k) => k.kid === hdr.kid && k.use === 'jwt-svid'));

    const ok = await unary<{ spiffeId: string; claims: { [k: string]: unknown } | undefined }>((cb) =>
      client.validateJwtsvid({ audience: 'tickets-api', svid: token }, header(), cb),
    );
    assert.equal(ok.spiffeId, WORKLOAD_ID);
    assert.equal(ok.claims?.sub, WORKLOAD_ID);

    const otherAud = await statusOf(
      unary((cb) => client.validateJwtsvid({ audience: 'payments-api', svid: token }, header(), cb)),
    );
    assert.equal(otherAud.code, grpc.status.INVALID_ARGUMENT);
    // A flipped signature byte and an alg-none token are rejected too.
    const sig = Buffer.from(token.split('.')[2]!, 'base64url');
    sig[5] = sig[5]! ^ 1;
    const tampered = `${h}.${p}.${sig.toString('base64url')}`;
    const bad = await statusOf(
      unary((cb) => client.validateJwtsvid({ audience: 'tickets-api', svid: tampered }, header(), cb)),
    );
    assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid: hdr.kid })).toString('base64url')}.${p}.`;
    const noneErr = await statusOf(
      unary((cb) => client.validateJwtsvid({ audience: 'tickets-api', svid: none }, header(), cb)),
    );
    assert.equal(noneErr.code, grpc.status.INVALID_ARGUMENT);

    const foreign = await statusOf(
      unary((cb) =>
        client.fetchJwtsvid({ audience: ['x'], spiffeId: `spiffe://${TD}/workload/elsewhere` }, header(), cb),
      ),
    );
    assert.equal(foreign.code, grpc.status.PERMISSION_DENIED);
  });

  it('the WIT-SVID calls answer UNIMPLEMENTED', async () => {
    const call = client.fetchWitsvid({ spiffeId: '' }, header());
    const e = await new Promise<grpc.ServiceError>((resolve) => {
      call.on('error', resolve);
      call.on('data', () => {});
    });
    assert.equal(e.code, grpc.status.UNIMPLEMENTED);
  });

  it('the agent never holds SVIDs for entries that are not under it, and the server refuses to sign them', async () => {
    await waitFor(() => a.agent.cache.entries().length > 0);
    assert.deepEqual(
      a.agent.cache.entries().map((e) => e.spiffeId),
      [WORKLOAD_ID],
    );
    // With the agent's own SVID, ask the server directly for the other parent's entry and the parentless one.
    const node = a.agent.identity.current()!;
    const nodeClient = new NodeServiceClient(
      s.running.publicAddress,
      lanyardChannelCredentials(s.running.ca.bundle(), node),
      LANYARD_CHANNEL_OPTIONS,
    );
    try {
      const listed = await s.client.listEntries({ filter: { spiffeIdPrefix: `spiffe://${TD}/workload/` } });
      const mine = listed.entries.find((e) => e.spiffeId === WORKLOAD_ID)!;
      for (const other of listed.entries.filter((e) => e.spiffeId !== WORKLOAD_ID)) {
        const { privateKey } = generateSigningKeyPair('ec-p256');
        const csr = Buffer.from(createCsr(privateKey).der);
        const e = await statusOf(
          unary((cb) =>
            nodeClient.batchNewX509Svid({ params: [{ entryId: other.id, csr }] }, new grpc.Metadata(), cb),
          ),
        );
        assert.equal(e.code, grpc.status.PERMISSION_DENIED, other.spiffeId);
        // Mixed with an entitled one, the whole batch is refused: nothing is signed.
        const mixed = await statusOf(
          unary((cb) =>
            nodeClient.batchNewX509Svid(
              {
                params: [
                  { entryId: mine.id, csr },
                  { entryId: other.id, csr },
                ],
              },
              new grpc.Metadata(),
              cb,
            ),
          ),
        );
        assert.equal(mixed.code, grpc.status.PERMISSION_DENIED);
        const jwt = await statusOf(
          unary((cb) =>
            nodeClient.newJwtSvid({ entryId: other.id, audience: ['x'] }, new grpc.Metadata(), cb),
          ),
        );
        assert.equal(jwt.code, grpc.status.PERMISSION_DENIED);
      }
      // Without a client certificate the node API is closed.
      const anon = new NodeServiceClient(
        s.running.publicAddress,
        lanyardChannelCredentials(s.running.ca.bundle()),
        LANYARD_CHANNEL_OPTIONS,
      );
      const e = await statusOf(unary((cb) => anon.fetchEntries({}, new grpc.Metadata(), cb)));
      anon.close();
      assert.equal(e.code, grpc.status.UNAUTHENTICATED);
    } finally {
      nodeClient.close();
    }
  });
  it("an open stream ends with PERMISSION_DENIED once the caller's entry is deleted, and the agent drops its SVID", async () => {
    const extra = `spiffe://${TD}/workload/short-lived`;
    const { entry } = await s.client.createEntry({
      entry: {
        spiffeId: extra,
        parentId: AGENT_ID,
        selectors: [
          { type: 'unix', value: `uid:${UID}` },
          { type: 'unix', value: `gid:${process.getgid!()}` },
        ],
      },
    });
    await a.agent.sync.syncNow();
    await waitFor(() => a.agent.cache.svid(entry!.id) !== undefined);
    const stream = new X509Stream(client);
    try {
      const got = await stream.next();
      assert.ok(got.svids.some((v) => v.spiffeId === extra));
      // Deleting the other entry too leaves this caller entitled to nothing on this agent.
      const listed = await s.client.listEntries({ filter: { parentId: AGENT_ID } });
      const keep = listed.entries.filter((e) => e.spiffeId !== extra);
      await s.client.deleteEntry({ id: entry!.id });
      await a.agent.sync.syncNow();
      // A rotation queued before the deletion may come first; the next state without it must follow.
      let after = await stream.next();
      while (after.svids.some((v) => v.spiffeId === extra)) after = await stream.next();
      assert.ok(after.svids.length > 0, 'the remaining identity is still served');
      assert.equal(a.agent.cache.svid(entry!.id), undefined);
      for (const e of keep) await s.client.deleteEntry({ id: e.id });
      await a.agent.sync.syncNow();
      const end = await stream.next().then(
        () => assert.fail('the stream kept going'),
        (e: grpc.ServiceError) => e,
      );
      assert.equal(end.code, grpc.status.PERMISSION_DENIED);
    } finally {
      stream.cancel();
    }
  });
});
