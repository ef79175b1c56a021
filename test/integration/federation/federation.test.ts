/**
 * SPIFFE federation between two real Lanyard servers on loopback: A (a.test) publishes its bundle over
 * https_spiffe, B (b.test) over https_web. Each federates with the other through the other's profile; a
 * workload of A calls a service of B over mTLS; B's Workload API hands A's bundle only to entries that
 * federate with it; a rotation of A's CA reaches B by polling; and every way a fetch can go wrong (wrong
 * pinned ID, lower sequence, another domain's bundle, endpoint down) keeps the last good bundle.
 */
import assert from 'node:assert/strict';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import type { ServerX509Source } from '../../../src/client/server-x509-source';
import { fetchBundle } from '../../../src/federation/fetch-bundle';
import { BundleEndpointProfile } from '../../../src/gen/lanyard/v1/registration';
import { createHopTlsServer, tlsClientOptions } from '../../../src/hop/tls';
import { SpiffeId, TrustDomain } from '../../../src/spiffe';
import { authorizeId } from '../../../src/verify';
import {
  splitDer,
  startAgentFor,
  workloadClient,
  X509Stream,
  header,
  waitFor,
  type AgentFixture,
} from '../../support/agent';
import { DecisionLog, eventually } from '../../support/hop';
import { rejectsWithStatus } from '../../support/grpc-refusal';
import { tempDataDir, type TestServer } from '../../support/test-server';
import { createWebPki, type WebPki } from '../../support/pki-openssl';
import { A, B, bundleJson, federatedWorkload, rogueEndpoint, startFederatedServer } from './helpers';

const UID = process.getuid!();

describe('federation: two trust domains on loopback', function () {
  this.timeout(60_000);
  let web: WebPki;
  let a: TestServer;
  let b: TestServer;
  const sources: ServerX509Source[] = [];
  const closers: (() => Promise<unknown> | void)[] = [];

  const relationship = async (s: TestServer, td: string) =>
    (await s.client.getFederationRelationship({ trustDomain: td })).relationship!;
  const heldSequence = (s: TestServer, td: string): number | undefined =>
    s.running.federation.bundle(td)?.sequence;

  before(async () => {
    web = createWebPki(tempDataDir());
    a = await startFederatedServer(A, { profile: 'https_spiffe' });
    b = await startFederatedServer(B, { profile: 'https_web', certFile: web.certFile, keyFile: web.keyFile });

    // B federates with A over https_spiffe: A's server SVID, pinned, checked with A's bundle (bootstrap).
    await b.client.createFederationRelationship({
      relationship: {
        trustDomain: A,
        bundleEndpointUrl: a.running.bundleEndpointUrl!,
        profile: BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_SPIFFE,
        endpointSpiffeId: `spiffe://${A}/lanyard/server`,
        bootstrapBundleJson: bundleJson(a),
      },
    });
    // A federates with B over https_web: a Web PKI certificate for 127.0.0.1, no bootstrap bundle needed.
    await a.client.createFederationRelationship({
      relationship: {
        trustDomain: B,
        bundleEndpointUrl: b.running.bundleEndpointUrl!,
        profile: BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_WEB,
        webTrustRootsPem: web.rootPem,
      },
    });
  });
  after(async () => {
    for (const c of closers.reverse()) await c();
    for (const s of sources) await s.close();
    await a?.stop();
    await b?.stop();
  });

  it('fetches each bundle through its profile and records the fetch', async () => {
    await eventually(
      () => heldSequence(b, A) === a.running.ca.bundle().sequence,
      15_000,
      "B holds A's bundle",
    );
    await eventually(
      () => heldSequence(a, B) === b.running.ca.bundle().sequence,
      15_000,
      "A holds B's bundle",
    );
    const rA = await relationship(b, A);
    assert.equal(rA.state?.lastError, '');
    assert.ok(rA.state?.lastSuccessAt !== undefined);
    assert.equal(Number(rA.state?.bundle?.sequence), a.running.ca.bundle().sequence);
    const rB = await relationship(a, B);
    assert.equal(rB.state?.lastError, '');
    assert.deepEqual(
      rB.state?.bundle?.x509Authorities.map((d) => Buffer.from(d).toString('base64')),
      b.running.ca.bundle().x509Authorities.map((c) => Buffer.from(c.der).toString('base64')),
    );
  });

  it('a workload in A calls a service in B over mTLS; each side verifies the other with the federated bundle', async () => {
    const agentA = await federatedWorkload(a, 'agent', { federatesWith: [B] });
    const serviceB = await federatedWorkload(b, 'svc', { federatesWith: [A] });
    sources.push(agentA, serviceB);
    assert.ok(serviceB.getX509BundleForTrustDomain(TrustDomain.parse(A)) !== undefined);
    assert.ok(agentA.getX509BundleForTrustDomain(TrustDomain.parse(B)) !== undefined);

    const decisions = new DecisionLog();
    const server = createHopTlsServer(
      {
        source: serviceB,
        federatedTrustDomains: [A],
        authorize: authorizeId(`spiffe://${A}/agent`),
        onDecision: decisions.listener,
      },
      (socket, peer) => socket.end(peer.spiffeId),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => server.close(r)));
    const port = (server.address() as { port: number }).port;
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        ...tlsClientOptions({
          source: agentA,
          authorize: authorizeId(`spiffe://${B}/svc`),
          caTrustDomains: [B],
        }),
      });
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    assert.equal(reply, `spiffe://${A}/agent`);
    assert.equal((await decisions.next((d) => d.decision === 'allow')).peerId, `spiffe://${A}/agent`);
  });

  it("B's Workload API hands A's bundle only to an entry that federates with A", async () => {
    const agentId = `spiffe://${B}/agent/node-1`;
    const agent: AgentFixture = await startAgentFor(b, { agentId, syncIntervalMs: 300 });
    closers.push(() => agent.close());
    const created = await b.client.createEntry({
      entry: {
        spiffeId: `spiffe://${B}/local`,
        parentId: agentId,
        selectors: [{ type: 'unix', value: `uid:${UID}` }],
      },
    });
    // The entry was created after the agent started: wait until its sync holds the SVID, or the first
    // FetchX509SVID races the sync and is refused for a workload the agent does not know yet.
    await agent.agent.sync.syncNow();
    await waitFor(() => agent.agent.cache.svid(created.entry!.id) !== undefined);
    const client = workloadClient(agent.socketPath);
    closers.push(() => client.close());
    const stream = new X509Stream(client);
    closers.push(() => stream.cancel());
    const first = await stream.next(15_000);
    assert.deepEqual(first.federatedBundles, {}, 'a non-federated entry gets no foreign bundle');
    const bundles = await new Promise<Record<string, Buffer>>((resolve, reject) => {
      const call = client.fetchX509Bundles({}, header());
      call.once('data', (m: { bundles: Record<string, Buffer> }) => {
        call.cancel();
        resolve(m.bundles);
      });
      call.on('error', (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
    });
    assert.deepEqual(Object.keys(bundles), [`spiffe://${B}`]);

    // The entry now federates with A: the stream pushes A's bundle, exactly the roots B fetched.
    await b.client.updateEntry({
      entry: { id: created.entry!.id, revision: created.entry!.revision, federatesWith: [A] },
      updateMask: ['federates_with'],
    });
    let next = await stream.next(15_000);
    while (next.federatedBundles[`spiffe://${A}`] === undefined) next = await stream.next(15_000);
    const der = splitDer(next.federatedBundles[`spiffe://${A}`]!);
    assert.deepEqual(
      der.map((d) => Buffer.from(d).toString('base64')).sort(),
      a.running.ca
        .bundle()
        .x509Authorities.map((c) => Buffer.from(c.der).toString('base64'))
        .sort(),
    );
  });

  it("a rotation of A's CA reaches B by polling, within A's refresh hint", async () => {
    const before = a.running.ca.bundle().sequence!;
    await a.running.ca.rotate('prepare');
    const after = a.running.ca.bundle().sequence!;
    assert.ok(after > before);
    // Hint 2 s: no refresh is forced here, the poller alone brings it.
    await eventually(() => heldSequence(b, A) === after, 10_000, 'the rotated bundle reached B');
    assert.equal(
      b.running.federation.bundle(A)?.x509Authorities.length,
      a.running.ca.bundle().x509Authorities.length,
    );
  });

  it('refuses an endpoint that is not the pinned SPIFFE ID, and keeps the last good bundle', async () => {
    const held = b.running.federation.bundle(A)!;
    // Directly: the fetcher refuses before reading the answer.
    await assert.rejects(
      fetchBundle(
        {
          profile: 'https_spiffe',
          trustDomain: TrustDomain.parse(A),
          url: new URL(a.running.bundleEndpointUrl!),
          endpointSpiffeId: SpiffeId.parse(`spiffe://${A}/not-the-server`),
        },
        { current: held },
      ),
      (e: { code?: string }) => e.code === 'ERR_FEDERATION_ENDPOINT_UNAUTHENTICATED',
    );
    // Through the server: the relationship's last_error says so; the bundle stays.
    const r = await relationship(b, A);
    await b.client.updateFederationRelationship({
      relationship: {
        trustDomain: A,
        revision: r.revision,
        endpointSpiffeId: `spiffe://${A}/not-the-server`,
      },
      updateMask: ['endpoint_spiffe_id'],
    });
    await eventually(
      async () =>
        (await relationship(b, A)).state?.lastError.includes('ERR_FEDERATION_ENDPOINT_UNAUTHENTICATED') ??
        false,
      10_000,
      'the pinned-ID refusal recorded',
    );
    assert.equal(b.running.federation.bundle(A), held, 'the last good bundle stays in force');
    const r2 = await relationship(b, A);
    await b.client.updateFederationRelationship({
      relationship: {
        trustDomain: A,
        revision: r2.revision,
        endpointSpiffeId: `spiffe://${A}/lanyard/server`,
      },
      updateMask: ['endpoint_spiffe_id'],
    });
    await eventually(
      async () => (await relationship(b, A)).state?.lastError === '',
      10_000,
      'fetching again',
    );
  });

  it("refuses an A bundle that is not signed by A's SVID over https_spiffe (B's CA cannot stand in)", async () => {
    // B's own endpoint is https_web; an https_spiffe fetch of it finds no SVID of A there.
    await assert.rejects(
      fetchBundle(
        {
          profile: 'https_spiffe',
          trustDomain: TrustDomain.parse(A),
          url: new URL(b.running.bundleEndpointUrl!),
          endpointSpiffeId: SpiffeId.parse(`spiffe://${A}/lanyard/server`),
        },
        { current: b.running.federation.bundle(A)! },
      ),
      (e: { code?: string }) => e.code === 'ERR_FEDERATION_ENDPOINT_UNAUTHENTICATED',
    );
  });

  describe('a hostile or broken endpoint for A (https_web, under the test)', () => {
    let rogue: Awaited<ReturnType<typeof rogueEndpoint>>;
    let oldJson: string;
    let goodSequence: number;

    before(async () => {
      oldJson = bundleJson(a);
      goodSequence = heldSequence(b, A)!;
      rogue = await rogueEndpoint(web, oldJson);
      const r = await relationship(b, A);
      await b.client.updateFederationRelationship({
        relationship: {
          trustDomain: A,
          revision: r.revision,
          bundleEndpointUrl: rogue.url,
          profile: BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_WEB,
          webTrustRootsPem: web.rootPem,
        },
        updateMask: ['bundle_endpoint_url', 'profile', 'endpoint_spiffe_id', 'web_trust_roots_pem'],
      });
    });
    after(() => rogue.close());

    const lastErrorBecomes = (code: string) =>
      eventually(
        async () => (await relationship(b, A)).state?.lastError.startsWith(code) ?? false,
        10_000,
        `last_error ${code}`,
      );

    it('a bundle with a lower spiffe_sequence is refused (ERR_BUNDLE_SEQUENCE_REGRESSED)', async () => {
      const doc = JSON.parse(bundleJson(a)) as { spiffe_sequence: number };
      doc.spiffe_sequence = goodSequence - 1;
      rogue.body = JSON.stringify(doc);
      await b.running.federation.refresh(A);
      await lastErrorBecomes('ERR_BUNDLE_SEQUENCE_REGRESSED');
      assert.equal(heldSequence(b, A), goodSequence);
      assert.equal(Number((await b.running.store.getFederatedBundle(A))?.sequence), goodSequence);
    });

    it("another domain's bundle is refused (ERR_WRONG_TRUST_DOMAIN)", async () => {
      // B's own bundle, renumbered above A's: its CA names spiffe://b.test.
      const doc = JSON.parse(bundleJson(b)) as { spiffe_sequence: number };
      doc.spiffe_sequence = goodSequence + 100;
      rogue.body = JSON.stringify(doc);
      await b.running.federation.refresh(A);
      await lastErrorBecomes('ERR_WRONG_TRUST_DOMAIN');
      assert.equal(heldSequence(b, A), goodSequence);
      const kept = b.running.federation.bundle(A)!;
      assert.ok(kept.x509Authorities.every((c) => c.uriSans.every((u) => u.startsWith(`spiffe://${A}`))));
    });

    it('an endpoint that is down keeps the last good bundle, and workloads still get it', async () => {
      await rogue.close();
      await b.running.federation.refresh(A);
      await lastErrorBecomes('ERR_FEDERATION_FETCH_FAILED');
      assert.equal(heldSequence(b, A), goodSequence);
      const src = await federatedWorkload(b, 'late', { federatesWith: [A] });
      sources.push(src);
      assert.equal(src.getX509BundleForTrustDomain(TrustDomain.parse(A))?.sequence, goodSequence);
    });
  });

  describe('the registration API refuses', () => {
    it('an entry that federates with a domain without a relationship (FAILED_PRECONDITION)', async () => {
      await rejectsWithStatus(
        b.client.createEntry({
          entry: {
            spiffeId: `spiffe://${B}/stray`,
            selectors: [{ type: 'unix', value: 'name:stray' }],
            federatesWith: ['nowhere.test'],
          },
        }),
        grpc.status.FAILED_PRECONDITION,
        'no federation relationship with "nowhere.test"',
      ).then((e) => assert.equal(e.lanyardCode, 'ERR_FEDERATION_RELATIONSHIP_MISSING'));
    });

    it("a relationship with the server's own trust domain, and https_spiffe without a bootstrap bundle", async () => {
      await rejectsWithStatus(
        b.client.createFederationRelationship({
          relationship: {
            trustDomain: B,
            bundleEndpointUrl: 'https://127.0.0.1:1/',
            profile: BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_WEB,
          },
        }),
        grpc.status.INVALID_ARGUMENT,
        'own trust domain',
      );
      await rejectsWithStatus(
        b.client.createFederationRelationship({
          relationship: {
            trustDomain: 'c.test',
            bundleEndpointUrl: 'https://127.0.0.1:1/',
            profile: BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_SPIFFE,
            endpointSpiffeId: 'spiffe://c.test/lanyard/server',
          },
        }),
        grpc.status.INVALID_ARGUMENT,
        'bootstrap_bundle_json',
      );
    });

    it('a bootstrap bundle older than the stored one, and deleting a relationship entries still use', async () => {
      const r = await relationship(b, A);
      const doc = JSON.parse(bundleJson(a)) as { spiffe_sequence: number };
      doc.spiffe_sequence = 1;
      await rejectsWithStatus(
        b.client.updateFederationRelationship({
          relationship: { trustDomain: A, revision: r.revision, bootstrapBundleJson: JSON.stringify(doc) },
          updateMask: ['bootstrap_bundle_json'],
        }),
        grpc.status.FAILED_PRECONDITION,
        'lower than the stored',
      ).then((e) => assert.equal(e.lanyardCode, 'ERR_BUNDLE_SEQUENCE_REGRESSED'));
      await rejectsWithStatus(
        b.client.deleteFederationRelationship({ trustDomain: A }),
        grpc.status.FAILED_PRECONDITION,
        'federate with "a.test"',
      ).then((e) => assert.equal(e.lanyardCode, 'ERR_FEDERATION_RELATIONSHIP_IN_USE'));
      assert.ok(b.running.federation.bundle(A) instanceof X509Bundle, 'nothing changed');
    });
  });
});
