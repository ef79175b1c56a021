/**
 * The delegation chain across the trust-domain boundary, with two real servers federated on loopback: alice's
 * planner in A (a.test) grants part of its session to B's tool-runner (b.test); B's server checks the planner's
 * SVID against A's federated bundle and issues the delegated SVID, whose A link carries the planner's SVID; B's
 * service verifies the whole chain with A's and B's bundles over mTLS. Then every way to cheat the boundary:
 * B's CA forging an A link (with or without an A certificate), A's CA minting a B identity or a B link, widened
 * scope, a replayed grant, a domain B does not federate with, and an A session that ends.
 */
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import * as tls from 'node:tls';
import { BundleSet } from '../../../src/bundle';
import { grantAcross, redeemForeignGrant, type ForeignGrant } from '../../../src/client/handoff';
import { signGrant } from '../../../src/client/delegation';
import { HandoffKey } from '../../../src/client/handoff-keys';
import type { ServerX509Source } from '../../../src/client/server-x509-source';
import type { StaticX509Source } from '../../../src/client/static-x509-source';
import type { SessionX509Source } from '../../../src/client/handoff';
import type { X509Source } from '../../../src/client/x509-source';
import { startSession } from '../../../src/client/handoff';
import { ErrorCode } from '../../../src/errors';
import { BundleEndpointProfile } from '../../../src/gen/lanyard/v1/registration';
import { createHopTlsServer, tlsClientOptions } from '../../../src/hop/tls';
import type { HopPeer } from '../../../src/hop/peer';
import { authorizeId, verifyX509Svid } from '../../../src/verify';
import { encodeAgentContext } from '../../../src/x509/agent-context/codec';
import { DEFAULT_AGENT_CONTEXT_OID, readAgentContext } from '../../../src/x509/agent-context/oid';
import type { AgentContext } from '../../../src/x509/agent-context/types';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { DecisionLog, eventually } from '../../support/hop';
import { expectRefusal, rejectsWithCode } from '../../support/refusal';
import { baseContext, createPki, issueSvid, seconds } from '../../support/pki';
import type { TestServer } from '../../support/test-server';
import { A, B, bundleJson, federatedWorkload, rogueSvid, startFederatedServer, stolenCa } from './helpers';

const PLANNER = `spiffe://${A}/planner`;
const TOOL = `spiffe://${B}/tool-runner`;
const SVC = `spiffe://${B}/svc`;

describe('federation: the delegation chain across the trust-domain boundary', function () {
  this.timeout(90_000);
  let a: TestServer;
  let b: TestServer;
  let plannerWl: ServerX509Source;
  let toolWl: ServerX509Source;
  let svcWl: ServerX509Source;
  let planner: SessionX509Source;
  let delegated: StaticX509Source;
  let grant: ForeignGrant;
  let toolKey: HandoffKey;
  let bothBundles: BundleSet;
  const sources: { close(): unknown }[] = [];
  const closers: (() => Promise<unknown> | void)[] = [];

  /** Grants `scopes` from the planner's session to a fresh key of the tool-runner, registered at A. */
  const grantToTool = async (scopes = ['docs:read']) => {
    const key = HandoffKey.generate();
    const g = await grantAcross({
      server: a.running.publicAddress,
      source: planner,
      childId: TOOL,
      childKey: key.id,
      scopes,
    });
    return { key, grant: g };
  };
  const redeemAtB = (g: ForeignGrant, key: HandoffKey) =>
    redeemForeignGrant({ server: b.running.publicAddress, source: toolWl, key, grant: g });

  before(async () => {
    a = await startFederatedServer(A, { profile: 'https_spiffe' });
    b = await startFederatedServer(B, { profile: 'https_spiffe' });
    // B federates with A (A's server SVID pinned, A's bundle to bootstrap). A needs nothing of B for this.
    await b.client.createFederationRelationship({
      relationship: {
        trustDomain: A,
        bundleEndpointUrl: a.running.bundleEndpointUrl!,
        profile: BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_SPIFFE,
        endpointSpiffeId: `spiffe://${A}/lanyard/server`,
        bootstrapBundleJson: bundleJson(a),
      },
    });
    plannerWl = await federatedWorkload(a, 'planner', {
      allowedScopes: ['docs:read', 'tools:run'],
      allowedDelegates: [TOOL],
      canAssertPrincipal: true,
      maxDelegationDepth: 3,
    });
    // The tool-runner takes grants from A (federates_with): from no other domain.
    toolWl = await federatedWorkload(b, 'tool-runner', {
      federatesWith: [A],
      allowedScopes: ['docs:read', 'tools:run'],
      maxDelegationDepth: 3,
    });
    svcWl = await federatedWorkload(b, 'svc', { federatesWith: [A] });
    sources.push(plannerWl, toolWl, svcWl);
    planner = await startSession({
      server: a.running.publicAddress,
      source: plannerWl,
      principal: { evidence: { $case: 'assertedId', value: 'alice' } },
      intent: 'summarise the docs',
      scopes: ['docs:read', 'tools:run'],
    });
    sources.push(planner);
    bothBundles = new BundleSet([a.running.ca.bundle(), b.running.ca.bundle()]);
  });
  after(async () => {
    for (const c of closers.reverse()) await c();
    for (const s of sources) await s.close();
    await a?.stop();
    await b?.stop();
  });

  it("B's server issues the tool-runner an SVID whose A link carries the planner's A-signed SVID", async () => {
    ({ key: toolKey, grant } = await grantToTool());
    delegated = await redeemAtB(grant, toolKey);
    sources.push(delegated);
    const svid = delegated.getX509Svid();
    assert.equal(svid.id.toString(), TOOL);
    const v = verifyX509Svid(
      svid.chain.map((c) => c.der),
      bothBundles,
      { cache: null },
    );
    const ctx = v.context!;
    assert.equal(ctx.version, 2);
    assert.deepEqual(ctx.principal, {
      id: 'alice',
      issuer: PLANNER,
      provenance: `asserted-by:${PLANNER}`,
    });
    assert.equal(ctx.rootSessionId, planner.sessionId);
    assert.deepEqual(ctx.scopes, ['docs:read']);
    assert.deepEqual(
      ctx.delegation.map((l) => l.spiffeId),
      [PLANNER],
    );
    const parentDer = ctx.delegation[0]!.parentChain![0]!;
    assert.deepEqual(parentDer, Uint8Array.from(planner.getX509Svid().chain[0]!.der));
    // B's session ends within the cross-domain bound, and never after the grant (the planner's SVID).
    assert.ok(svid.notAfter.getTime() <= Date.now() + 300_000 + 1000);
    assert.ok(svid.notAfter.getTime() <= planner.getX509Svid().notAfter.getTime());
  });

  it("B's service verifies alice → A's planner → B's tool-runner over mTLS with A's and B's bundles", async () => {
    const decisions = new DecisionLog();
    const server = createHopTlsServer(
      {
        source: svcWl,
        federatedTrustDomains: [A],
        revocation: svcWl.revocations,
        authorize: authorizeId(TOOL),
        onDecision: decisions.listener,
      },
      (socket, peer: HopPeer) =>
        socket.end(
          JSON.stringify({
            principal: peer.context!.principal.id,
            chain: [...peer.context!.delegation.map((l) => l.spiffeId), peer.spiffeId, SVC],
          }),
        ),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => server.close(r)));
    const port = (server.address() as { port: number }).port;
    const reply = await call(port, delegated);
    assert.deepEqual(JSON.parse(reply), { principal: 'alice', chain: [PLANNER, TOOL, SVC] });
    assert.equal((await decisions.next((d) => d.decision === 'allow')).peerId, TOOL);

    // A service of B that does not list A serves no chain acting for A's agents, bundle or not.
    const closed = createHopTlsServer(
      { source: svcWl, authorize: authorizeId(TOOL), onDecision: decisions.listener },
      (socket) => socket.end('served'),
    );
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => closed.close(r)));
    await call((closed.address() as { port: number }).port, delegated).catch(() => '');
    assert.equal((await decisions.next((d) => d.decision === 'deny')).reason, ErrorCode.WRONG_TRUST_DOMAIN);
  });

  it("a verifier without A's bundle refuses the chain (a domain not federated): ERR_CONTEXT_FOREIGN_DOMAIN", () => {
    expectRefusal(
      () =>
        verifyX509Svid(
          delegated.getX509Svid().chain.map((c) => c.der),
          b.running.ca.bundle(),
          { cache: null },
        ),
      ErrorCode.CONTEXT_FOREIGN_DOMAIN,
      /not federated/,
    );
  });

  it('a foreign grant is single-use: redeemed again, ERR_GRANT_REPLAYED', async () => {
    await rejectsWithCode(redeemAtB(grant, toolKey), ErrorCode.GRANT_REPLAYED);
  });

  it("B's server refuses a widened scope across the boundary (the parent signed it, A's server never saw it)", async () => {
    const key = HandoffKey.generate();
    const svid = planner.getX509Svid();
    const signed = signGrant({
      parentCert: svid.chain[0]!,
      parentKey: svid.privateKey,
      childId: TOOL,
      childKey: key.id,
      scopes: ['docs:read', 'admin:all'],
    });
    await rejectsWithCode(
      redeemAtB(
        { binding: signed.bindingDer, signature: signed.signature, parentChain: [svid.chain[0]!.der] },
        key,
      ),
      ErrorCode.SCOPE_ESCALATION,
    );
    // A's own server refuses it too, at CreateGrant.
    await rejectsWithCode(grantToTool(['docs:read', 'admin:all']), ErrorCode.SCOPE_ESCALATION);
  });

  it("B's server refuses a parent of a domain it does not federate with: ERR_DELEGATE_NOT_ALLOWED", async () => {
    // c.test: a real CA and a session SVID for its planner, but B holds no bundle of c.test.
    const c = createPki('c.test');
    const cPlanner = issueSvid(c, 'spiffe://c.test/planner', {
      context: baseContext({
        agentId: 'planner',
        sessionId: 's-c-planner',
        scopes: ['docs:read'],
        provenance: {
          method: 'join_token',
          evidenceSha256: new Uint8Array(32).fill(7),
          issuer: 'spiffe://c.test/lanyard/server',
          issuedAt: seconds(Date.now() - 60_000),
        },
      }),
    });
    const key = HandoffKey.generate();
    const signed = signGrant({
      parentCert: cPlanner.cert,
      parentKey: cPlanner.key.privateKey,
      childId: TOOL,
      childKey: key.id,
      scopes: ['docs:read'],
    });
    await rejectsWithCode(
      redeemAtB(
        {
          binding: signed.bindingDer,
          signature: signed.signature,
          parentChain: cPlanner.chain.map((x) => x.der),
        },
        key,
      ),
      ErrorCode.DELEGATE_NOT_ALLOWED,
      /does not federate with "c\.test"/,
    );
  });

  describe("B's CA cannot forge what A vouches for", () => {
    const real = () => readAgentContext(delegated.getX509Svid().chain[0]!, DEFAULT_AGENT_CONTEXT_OID)!;
    /** B's real CA signs the tool-runner's key with `ctx`: what a compromised or malicious B could issue. */
    const mintB = async (ctx: AgentContext, spiffeId = TOOL) =>
      (
        await b.running.ca.signX509Svid({
          spiffeId,
          publicKey: delegated.getX509Svid().privateKey,
          ttlSeconds: 120,
          agentContextDer: encodeAgentContext(ctx),
        })
      ).chain;

    it('an A link without A proof (the issue 13 item 4 forgery): ERR_CONTEXT_FOREIGN_DOMAIN', async () => {
      const ctx = real();
      delete ctx.delegation[0]!.parentChain;
      ctx.version = 1;
      const chain = await mintB(ctx);
      expectRefusal(
        () => verifyX509Svid(chain, bothBundles, { cache: null }),
        ErrorCode.CONTEXT_FOREIGN_DOMAIN,
      );
    });

    it("an A link whose 'A certificate' B's CA signed for a key it invented: ERR_PARENT_CHAIN_INVALID", async () => {
      const fake = generateSigningKeyPair('ec-p256');
      const plannerCtx = readAgentContext(planner.getX509Svid().chain[0]!, DEFAULT_AGENT_CONTEXT_OID)!;
      const fakeParent = {
        chain: rogueSvid(stolenCa(b), PLANNER, fake.publicKey, {
          ...plannerCtx,
          scopes: ['docs:read', 'tools:run', 'admin:all'],
        }),
      };
      const signed = signGrant({
        parentCert: fakeParent.chain[0]!,
        parentKey: fake.privateKey,
        childId: TOOL,
        childKey: publicKeyOf(delegated),
        scopes: ['docs:read', 'admin:all'],
      });
      const parentCert = ParsedCertificate.fromDer(fakeParent.chain[0]!);
      const ctx = real();
      ctx.scopes = ['docs:read', 'admin:all'];
      ctx.delegation[0] = {
        ...ctx.delegation[0]!,
        scopes: ['docs:read', 'tools:run', 'admin:all'],
        notAfter: parentCert.notAfter,
        certSha256: parentCert.sha256,
        publicKey: parentCert.spkiDer,
        binding: signed.binding,
        signature: signed.signature,
        parentChain: fakeParent.chain,
      };
      const chain = await mintB(ctx);
      expectRefusal(
        () => verifyX509Svid(chain, bothBundles, { cache: null }),
        ErrorCode.PARENT_CHAIN_INVALID,
        new RegExp(`bundle of "${A.replace('.', '\\.')}"`),
      );
      // B's own server refuses the same parent when it is offered as a grant.
      const key = HandoffKey.generate();
      const g = signGrant({
        parentCert: fakeParent.chain[0]!,
        parentKey: fake.privateKey,
        childId: TOOL,
        childKey: key.id,
        scopes: ['docs:read'],
      });
      await rejectsWithCode(
        redeemAtB({ binding: g.bindingDer, signature: g.signature, parentChain: fakeParent.chain }, key),
        ErrorCode.UNKNOWN_AUTHORITY,
      );
    });

    it("the real A link with A's real certificate, but another principal or wider link scopes: refused", async () => {
      const otherPrincipal = real();
      otherPrincipal.principal = { ...otherPrincipal.principal, id: 'mallory' };
      const otherChain = await mintB(otherPrincipal);
      expectRefusal(() => verifyX509Svid(otherChain, bothBundles, { cache: null }), ErrorCode.ROOT_CHANGED);
      const wider = real();
      wider.delegation[0]!.scopes = ['docs:read', 'tools:run', 'admin:all'];
      // The link's bytes changed, so the parent's signature still verifies but the A certificate disagrees.
      const widerChain = await mintB(wider);
      expectRefusal(
        () => verifyX509Svid(widerChain, bothBundles, { cache: null }),
        ErrorCode.PARENT_CHAIN_INVALID,
        /other scopes/,
      );
      const widerLeaf = real();
      widerLeaf.scopes = ['docs:read', 'tools:run'];
      const widerLeafChain = await mintB(widerLeaf);
      expectRefusal(
        () => verifyX509Svid(widerLeafChain, bothBundles, { cache: null }),
        ErrorCode.SCOPE_ESCALATION,
      );
    });
  });

  describe("A's CA cannot mint B's identities", () => {
    it("an SVID for B's tool-runner signed by A's CA is refused by B's service and verifier", async () => {
      const ctx = readAgentContext(delegated.getX509Svid().chain[0]!, DEFAULT_AGENT_CONTEXT_OID)!;
      const minted = { chain: rogueSvid(stolenCa(a), TOOL, publicKeyOf(delegated), ctx, 120) };
      expectRefusal(
        () => verifyX509Svid(minted.chain, bothBundles, { cache: null }),
        ErrorCode.UNKNOWN_AUTHORITY,
      );
    });

    it("a link from B whose 'B certificate' A's CA signed: ERR_PARENT_CHAIN_INVALID", async () => {
      // A chain B → A: A's leaf names a B parent, proven by a certificate that A's CA (not B's) signed.
      // Even holding the tool-runner's own key (so key continuity from A's planner holds), A's CA cannot make
      // its own certificate stand for B's workload: the proof of a B link must verify with B's bundle.
      const toolKey = delegated.getX509Svid().privateKey;
      const fake = { privateKey: toolKey, publicKey: createPublicKey(toolKey) };
      const real = readAgentContext(delegated.getX509Svid().chain[0]!, DEFAULT_AGENT_CONTEXT_OID)!;
      const fakeB = { chain: rogueSvid(stolenCa(a), TOOL, fake.publicKey, real) };
      const leafKey = generateSigningKeyPair('ec-p256');
      const signed = signGrant({
        parentCert: fakeB.chain[0]!,
        parentKey: fake.privateKey,
        childId: `spiffe://${A}/reporter`,
        childKey: leafKey.publicKey,
        scopes: ['docs:read'],
      });
      const parentCert = ParsedCertificate.fromDer(fakeB.chain[0]!);
      const ctx: AgentContext = {
        ...real,
        agentId: 'reporter',
        sessionId: 's-reporter',
        provenance: { ...real.provenance, issuer: `spiffe://${A}/lanyard/server` },
        delegation: [
          ...real.delegation,
          {
            spiffeId: TOOL,
            agentId: real.agentId,
            sessionId: real.sessionId,
            scopes: real.scopes,
            notAfter: parentCert.notAfter,
            certSha256: parentCert.sha256,
            publicKey: parentCert.spkiDer,
            binding: signed.binding,
            signature: signed.signature,
            parentChain: fakeB.chain,
          },
        ],
      };
      const leaf = await a.running.ca.signX509Svid({
        spiffeId: `spiffe://${A}/reporter`,
        publicKey: leafKey.publicKey,
        ttlSeconds: 120,
        agentContextDer: encodeAgentContext(ctx),
      });
      expectRefusal(
        () => verifyX509Svid(leaf.chain, bothBundles, { cache: null }),
        ErrorCode.PARENT_CHAIN_INVALID,
        new RegExp(`bundle of "${B.replace('.', '\\.')}"`),
      );
    });
  });

  describe('an A session that ends', () => {
    it("A refuses new grants at once; B's SVID ends within its lifetime rules; ending it in B reaches B's verifiers", async () => {
      const { key, grant: g } = await grantToTool();
      const tool = await redeemAtB(g, key);
      sources.push(tool);
      const svid = tool.getX509Svid();
      await a.client.endSession({ sessionId: planner.sessionId, reason: 'task done' });
      await rejectsWithCode(grantToTool(), ErrorCode.SESSION_ENDED);
      // B cannot hear A's end: the delegated SVID is honoured only until its notAfter (at most five minutes
      // after redemption, never past the grant), then refused like any expired SVID.
      const der = svid.chain.map((c) => c.der);
      verifyX509Svid(der, bothBundles, { cache: null });
      expectRefusal(
        () => verifyX509Svid(der, bothBundles, { cache: null, at: new Date(svid.notAfter.getTime() + 1000) }),
        ErrorCode.SVID_EXPIRED,
      );
      // B's platform team ends B's half at once: B's revocation feed reaches B's service.
      const sessionId = readAgentContext(svid.chain[0]!, DEFAULT_AGENT_CONTEXT_OID)!.sessionId;
      await b.client.endSession({ sessionId, reason: 'parent ended in a.test' });
      await eventually(
        () =>
          svcWl.revocations.isRevoked({
            spiffeId: TOOL,
            sessionId,
            serialHex: '',
            certSha256Hex: '',
            delegationSessionIds: [],
          }) !== false,
        10_000,
        "the end of B's session reaching B's service",
      );
      expectRefusal(
        () => verifyX509Svid(der, bothBundles, { cache: null, revocation: svcWl.revocations }),
        ErrorCode.REVOKED,
      );
    });
  });
});

function publicKeyOf(source: X509Source) {
  return createPublicKey(source.getX509Svid().privateKey);
}

/** The tool-runner's delegated SVID over a real TLS connection to `port`; resolves with what the hop replied. */
function call(port: number, source: X509Source): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ...tlsClientOptions({ source, authorize: authorizeId(SVC) }),
    });
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString()));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}
