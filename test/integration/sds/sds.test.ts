/**
 * Envoy SDS v3 on the node agent's Workload API socket, end to end: a real server (with a federation
 * relationship), a real agent, and an SDS client built only from Envoy's published protos (no Envoy package in
 * Debian; see test/support/sds-client.ts). What it proves: the calling workload gets its own SVID and key as
 * `tls_certificate`, its bundles as `validation_context` (federated ones only as its entry names them), a
 * rotation is pushed, and the refusals (no entry, unknown names, wrong type, NACK, delta).
 */
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { toSpiffeBundle } from '../../../src/bundle/to-spiffe-bundle';
import { BundleEndpointProfile } from '../../../src/gen/lanyard/v1/registration';
import { startTestServer, type TestServer } from '../../support/test-server';
import { AGENT_ID, TD, startAgentFor, waitFor, type AgentFixture } from '../../support/agent';
import { createPki } from '../../support/pki';
import { rejectsGrpc } from '../../support/grpc-refusal';
import {
  decodeSecret,
  decodeSpiffeValidator,
  sdsClient,
  SdsStream,
  type WireDiscoveryResponse,
} from '../../support/sds-client';

const UID = process.getuid!();
const WORKLOAD_ID = `spiffe://${TD}/workload/envoy-front`;
const OTHER_ID = `spiffe://${TD}/workload/someone-else`;
const PARTNER = 'partner.sds.test';

function pemCerts(pem: Buffer | undefined): X509Certificate[] {
  const text = (pem ?? Buffer.alloc(0)).toString();
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (p) => new X509Certificate(p),
  );
}

function secretsOf(r: WireDiscoveryResponse): Map<string, ReturnType<typeof decodeSecret>> {
  return new Map(r.resources.map((any) => decodeSecret(any)).map((s) => [s.name, s]));
}

describe("node agent: Envoy SDS v3 (a client from Envoy's published protos)", function () {
  this.timeout(90_000);
  let s: TestServer;
  let a: AgentFixture;
  const partner = createPki(PARTNER);
  const streams: SdsStream[] = [];
  const open = (): SdsStream => {
    const st = new SdsStream(sdsClient(a.socketPath));
    streams.push(st);
    return st;
  };

  before(async () => {
    s = await startTestServer();
    // A relationship whose endpoint never answers: the bootstrap bundle is what the server holds and hands on.
    await s.client.createFederationRelationship({
      relationship: {
        trustDomain: PARTNER,
        bundleEndpointUrl: 'https://127.0.0.1:1/',
        profile: BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_SPIFFE,
        endpointSpiffeId: `spiffe://${PARTNER}/lanyard/server`,
        bootstrapBundleJson: JSON.stringify(toSpiffeBundle(partner.bundle)),
      },
    });
    await s.client.createEntry({
      entry: {
        spiffeId: WORKLOAD_ID,
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${UID}` }],
        federatesWith: [PARTNER],
        // Short, so the test sees the agent rotate it and SDS push the new one.
        x509SvidTtlSeconds: 6,
      },
    });
    // Under the same agent, for another workload: this caller must never get it.
    await s.client.createEntry({
      entry: {
        spiffeId: OTHER_ID,
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${UID + 1}` }],
      },
    });
    a = await startAgentFor(s);
  });

  after(async () => {
    for (const st of streams) st.cancel();
    await a?.close();
    await s?.stop();
  });

  it("streams the caller's SVID as tls_certificate and its bundle as validation_context, and pushes rotation", async () => {
    const st = open();
    const names = ['default', 'ROOTCA'];
    st.send({ resourceNames: names });
    const first = await st.next();
    assert.equal(first.typeUrl, 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret');
    assert.notEqual(first.nonce, '');
    assert.notEqual(first.versionInfo, '');
    const secrets = secretsOf(first);
    assert.deepEqual([...secrets.keys()], names);

    const tls = secrets.get('default')!.tlsCertificate!;
    const chain = pemCerts(tls.certificateChain.inlineBytes);
    assert.ok(chain.length >= 1);
    assert.equal(chain[0]!.subjectAltName, `URI:${WORKLOAD_ID}`);
    const key = createPrivateKey(tls.privateKey.inlineBytes!);
    assert.equal(
      createPublicKey(key).export({ format: 'der', type: 'spki' }).toString('base64'),
      chain[0]!.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
      "the key is the SVID's own",
    );
    const roots = pemCerts(secrets.get('ROOTCA')!.validationContext!.trustedCa!.inlineBytes);
    assert.deepEqual(
      roots.map((c) => c.fingerprint256),
      s.running.ca.bundle().x509Authorities.map((c) => new X509Certificate(c.der).fingerprint256),
    );
    assert.ok(chain[0]!.verify(chain.length > 1 ? chain[1]!.publicKey : roots[0]!.publicKey));

    // ACK; the next message is the rotated SVID, under a new version and nonce.
    st.reply(first, names);
    const rotated = await st.next();
    assert.notEqual(rotated.versionInfo, first.versionInfo);
    assert.notEqual(rotated.nonce, first.nonce);
    const newLeaf = pemCerts(
      secretsOf(rotated).get('default')!.tlsCertificate!.certificateChain.inlineBytes,
    )[0]!;
    assert.equal(newLeaf.subjectAltName, `URI:${WORKLOAD_ID}`);
    assert.notEqual(newLeaf.serialNumber, chain[0]!.serialNumber);
  });

  it('answers SPIFFE IDs and trust domain IDs by name, ALL with the SPIFFE validator, and a wildcard request', async () => {
    const st = open();
    const td = `spiffe://${TD}`;
    const partnerTd = `spiffe://${PARTNER}`;
    await waitFor(async () => {
      // The agent gets the federated bundle with its entries; ask until it is there.
      const probe = open();
      probe.send({ resourceNames: [] });
      const r = await probe.next();
      probe.cancel();
      return secretsOf(r).has(partnerTd);
    });
    st.send({ resourceNames: [WORKLOAD_ID, td, partnerTd, 'ALL'] });
    const secrets = secretsOf(await st.next());
    assert.equal(
      pemCerts(secrets.get(WORKLOAD_ID)!.tlsCertificate!.certificateChain.inlineBytes)[0]!.subjectAltName,
      `URI:${WORKLOAD_ID}`,
    );
    assert.equal(pemCerts(secrets.get(td)!.validationContext!.trustedCa!.inlineBytes).length, 1);
    assert.equal(
      pemCerts(secrets.get(partnerTd)!.validationContext!.trustedCa!.inlineBytes)[0]!.fingerprint256,
      new X509Certificate(partner.root.cert.der).fingerprint256,
    );
    const all = secrets.get('ALL')!.validationContext!.customValidatorConfig!;
    assert.equal(all.name, 'envoy.tls.cert_validator.spiffe');
    const validator = decodeSpiffeValidator(all.typedConfig);
    assert.deepEqual(validator.trustDomains.map((d) => d.name).sort(), [PARTNER, TD].sort());
    for (const d of validator.trustDomains) assert.equal(pemCerts(d.trustBundle.inlineBytes).length, 1);

    const wild = open();
    wild.send({ resourceNames: [] });
    assert.deepEqual([...secretsOf(await wild.next()).keys()].sort(), [WORKLOAD_ID, td, partnerTd].sort());
  });

  it('FetchSecrets answers once; DeltaSecrets is UNIMPLEMENTED', async () => {
    const client = sdsClient(a.socketPath);
    try {
      const r = await new Promise<WireDiscoveryResponse>((resolve, reject) =>
        client.fetchSecrets({ resourceNames: ['default'] }, (e, v) => (e ? reject(e) : resolve(v))),
      );
      assert.deepEqual([...secretsOf(r).keys()], ['default']);
      const delta = client.deltaSecrets();
      await rejectsGrpc(
        new Promise((resolve, reject) => {
          delta.on('data', resolve);
          delta.on('error', reject);
          delta.write({});
        }),
        grpc.status.UNIMPLEMENTED,
        'DeltaSecrets',
      );
    } finally {
      client.close();
    }
  });

  it("refuses names the caller may not have: another workload's SVID, an unknown name, a trust domain it does not federate with", async () => {
    for (const name of [OTHER_ID, 'envoy-front', 'spiffe://elsewhere.test']) {
      const st = open();
      st.send({ resourceNames: ['default', name] });
      await rejectsGrpc(st.next(), grpc.status.INVALID_ARGUMENT, JSON.stringify(name));
    }
    const client = sdsClient(a.socketPath);
    try {
      await rejectsGrpc(
        new Promise((resolve, reject) =>
          client.fetchSecrets({ resourceNames: [OTHER_ID] }, (e, v) => (e ? reject(e) : resolve(v))),
        ),
        grpc.status.INVALID_ARGUMENT,
        OTHER_ID,
      );
    } finally {
      client.close();
    }
  });

  it('refuses a request for another resource type', async () => {
    const st = open();
    st.send({ typeUrl: 'type.googleapis.com/envoy.config.cluster.v3.Cluster', resourceNames: ['default'] });
    await rejectsGrpc(st.next(), grpc.status.INVALID_ARGUMENT, 'type_url');
  });

  it('after a NACK sends nothing again until the content changes, then the new version', async () => {
    const st = open();
    const names = ['default'];
    st.send({ resourceNames: names });
    const first = await st.next();
    const before = a.logs.length;
    st.reply(first, names, 'certificate rejected by the test');
    const next = await st.next();
    assert.notEqual(next.versionInfo, first.versionInfo, 'the NACKed version is not sent again');
    const leaf = pemCerts(secretsOf(next).get('default')!.tlsCertificate!.certificateChain.inlineBytes)[0]!;
    const old = pemCerts(secretsOf(first).get('default')!.tlsCertificate!.certificateChain.inlineBytes)[0]!;
    assert.notEqual(leaf.serialNumber, old.serialNumber);
    const nack = a.logs.slice(before).find((l) => l.includes('NACKed'));
    assert.ok(nack, 'the NACK is logged');
    assert.match(nack, /certificate rejected by the test/);
    assert.ok(nack.includes(first.versionInfo));
  });

  it('a stale reply (an older nonce) changes nothing', async () => {
    const st = open();
    st.send({ resourceNames: ['ROOTCA'] });
    const first = await st.next();
    // Names change under a nonce that is not the last one: ignored (were it answered, its nonce would make
    // the two requests below stale, and the next message would hold 'default' alone).
    st.send({
      resourceNames: ['default'],
      responseNonce: 'not-a-nonce-we-sent',
      versionInfo: first.versionInfo,
    });
    st.reply(first, ['ROOTCA']);
    st.send({
      resourceNames: ['ROOTCA', 'default'],
      responseNonce: first.nonce,
      versionInfo: first.versionInfo,
    });
    const r = await st.next();
    assert.deepEqual([...secretsOf(r).keys()], ['ROOTCA', 'default']);
  });

  it('a workload with no entry on this agent gets PERMISSION_DENIED', async () => {
    const lonely = await startAgentFor(s, { agentId: `spiffe://${TD}/agent/node-lonely` });
    try {
      await waitFor(() => lonely.agent !== undefined);
      const st = new SdsStream(sdsClient(lonely.socketPath));
      streams.push(st);
      for (let i = 0; ; i++) {
        st.send({ resourceNames: ['default'] });
        try {
          await st.next();
          assert.fail('a workload with no entry got secrets');
        } catch (e) {
          const code = (e as grpc.ServiceError).code;
          // UNAVAILABLE only until the fresh agent has reached its server.
          if (code === grpc.status.UNAVAILABLE && i < 20) {
            streams.push(new SdsStream(sdsClient(lonely.socketPath)));
            continue;
          }
          assert.equal(code, grpc.status.PERMISSION_DENIED, String(e));
          break;
        }
      }
    } finally {
      await lonely.close();
    }
  });
});
