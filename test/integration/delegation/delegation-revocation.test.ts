/**
 * Issue 4's proof, end to end against one real server (127.0.0.1:0, SQLite in a temp dir, real crypto), as
 * a deployment would see it:
 *
 *   alice (an OIDC token from a locally generated IdP key) -> planner session -> tool-runner (delegated)
 *   -> retrieval service (delegated again), with a server restart in the middle (between a grant and its
 *   redemption).
 *
 * The retrieval service's certificate verifies offline with the bundle file alone and shows the full chain,
 * every link signature checked (a link the CA itself re-signs with a forged signature is refused). EndSession
 * on the planner then reaches (a) a verifier holding a RevocationCache fed by WatchRevocations, within a
 * second, and (b) `openssl verify -crl_check` with the CRL fetched from the server's CRL HTTP endpoint; an
 * unrelated SVID stays valid in both. A second restart keeps the revocations, sessions and grants.
 */
import assert from 'node:assert/strict';
import { createPublicKey, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import { watchRevocationsInto } from '../../../src/client/revocation-watch';
import { StartSessionRequest, type PrincipalEvidence } from '../../../src/gen/lanyard/v1/session';
import { ERROR_CODE_METADATA_KEY } from '../../../src/internal/grpc-call';
import { TrustDomain } from '../../../src/spiffe';
import { RevocationCache, verifyX509Svid } from '../../../src/verify';
import { delegationLinkSha256, encodeAgentContext } from '../../../src/x509/agent-context/codec';
import {
  buildDelegationLink,
  verifyDelegationLinkSignature,
} from '../../../src/x509/agent-context/delegation-signature';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { createCsr } from '../../../src/x509/csr';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { encodePem } from '../../../src/x509/pem';
import { issuerKey, jwksOf, signJwt } from '../../support/jwt';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { connectPublic, renewCall } from '../../support/public-client';
import {
  createGrant as createTestGrant,
  id,
  redeemGrant as redeemTestGrant,
  register,
  sessionClient,
  TD,
  unary,
  type Agent,
  type TestGrant,
} from '../../support/sessions';
import { openssl } from '../../support/x509';

const IDP = 'https://idp.example.com';

/** The stable Lanyard code of a failed call (trailing metadata), or of a thrown LanyardError. */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    const grpcCode = (e as grpc.ServiceError).metadata?.get(ERROR_CODE_METADATA_KEY)[0];
    return String(grpcCode ?? (e as { code?: unknown }).code);
  }
  return 'succeeded';
}

describe('e2e: alice -> planner -> tool-runner -> retrieval, revoked at task end', function () {
  this.timeout(120_000);
  const dir = tempDataDir();
  const files = tempDataDir();
  const idpKey = issuerKey('ES256');
  const jwksFile = path.join(files, 'idp-jwks.json');
  fs.writeFileSync(jwksFile, jwksOf(idpKey));
  let s: TestServer;

  const start = async (): Promise<void> => {
    s = await startTestServer({
      dir,
      config: {
        principalIssuers: [{ issuer: IDP, audience: 'lanyard', jwksFile }],
        crlListenAddress: { host: '127.0.0.1', port: 0 },
      },
    });
  };
  const restart = async (): Promise<void> => {
    await s.stop();
    await start();
  };
  before(start);
  after(async () => {
    await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(files, { recursive: true, force: true });
  });

  /** What a relying party has: the bundle, as a file, and nothing else from the server. */
  const bundleFile = (): string => {
    const f = path.join(files, 'bundle.pem');
    fs.writeFileSync(f, s.running.ca.bundle().toPem());
    return f;
  };
  const offlineBundle = (): X509Bundle =>
    X509Bundle.fromPem(TrustDomain.parse(TD), fs.readFileSync(bundleFile(), 'utf8'));

  const startSession = async (agent: Agent, principal?: PrincipalEvidence): Promise<Agent> => {
    const c = sessionClient(s, agent);
    try {
      const key = generateSigningKeyPair('ec-p256').privateKey;
      const res = await unary(
        c.startSession.bind(c),
        StartSessionRequest.fromPartial({
          csr: Buffer.from(createCsr(key).der),
          intent: 'summarise open tickets',
          scopes: ['docs:read', 'docs:write', 'tools:run'],
          ...(principal !== undefined && { principal }),
        }),
      );
      return { ...agent, key, chain: res.svid!.certChain.map((b) => new Uint8Array(b)) };
    } finally {
      c.close();
    }
  };
  // Signed by the parent's own key (signGrant): the server never holds a key that could invent a delegation.
  const createGrant = (parent: Agent, params: Parameters<typeof createTestGrant>[2]): Promise<TestGrant> =>
    createTestGrant(s, parent, params);
  const redeem = (child: Agent, grant: TestGrant): Promise<Agent> => redeemTestGrant(s, child, grant);

  /** openssl verify -crl_check with the CRL served over HTTP, the bundle as -CAfile, the chain as -untrusted. */
  const opensslWithServedCrl = async (
    agents: Record<string, Agent>,
  ): Promise<Record<string, { ok: boolean; output: string }>> => {
    const res = await fetch(`http://${s.running.crlAddress}/crl/${TD}.pem`);
    assert.equal(res.status, 200);
    const work = fs.mkdtempSync(path.join(files, 'openssl-'));
    const crlFile = path.join(work, 'crl.pem');
    fs.writeFileSync(crlFile, Buffer.from(await res.arrayBuffer()));
    const out: Record<string, { ok: boolean; output: string }> = {};
    for (const [name, agent] of Object.entries(agents)) {
      const leaf = path.join(work, `${name}.pem`);
      fs.writeFileSync(leaf, encodePem('CERTIFICATE', agent.chain[0]!));
      const chain = path.join(work, `${name}-chain.pem`);
      fs.writeFileSync(
        chain,
        agent.chain
          .slice(1)
          .map((d) => encodePem('CERTIFICATE', d))
          .join(''),
      );
      out[name] = openssl([
        'verify',
        '-crl_check',
        '-CRLfile',
        crlFile,
        '-CAfile',
        bundleFile(),
        '-untrusted',
        chain,
        leaf,
      ]);
    }
    return out;
  };

  let plannerWl: Agent;
  let toolWl: Agent;
  let retrievalWl: Agent;
  let unrelatedWl: Agent;
  let planner: Agent;
  let tool: Agent;
  let retrieval: Agent;
  let unrelated: Agent;
  let pendingGrant: TestGrant;

  it('alice starts the planner session; the planner delegates to the tool-runner, which grants retrieval', async () => {
    plannerWl = await register(s, 'planner', {
      allowedScopes: ['docs:read', 'docs:write', 'tools:run'],
      maxDelegationDepth: 2,
      allowedDelegates: [id('tool-runner')],
    });
    toolWl = await register(s, 'tool-runner', {
      allowedScopes: ['docs:read', 'tools:run'],
      maxDelegationDepth: 2,
      allowedDelegates: [id('retrieval')],
    });
    retrievalWl = await register(s, 'retrieval', { allowedScopes: ['docs:read'] });
    unrelatedWl = await register(s, 'unrelated', { allowedScopes: ['docs:read'] });

    const now = Math.floor(Date.now() / 1000);
    const aliceToken = signJwt({ iss: IDP, aud: 'lanyard', sub: 'alice', iat: now, exp: now + 300 }, idpKey);
    planner = await startSession(plannerWl, { evidence: { $case: 'token', value: aliceToken } });
    const g1 = await createGrant(planner, {
      childId: id('tool-runner'),
      scopes: ['docs:read', 'tools:run'],
    });
    tool = await redeem(toolWl, g1);
    pendingGrant = await createGrant(tool, { childId: id('retrieval'), scopes: ['docs:read'] });
    unrelated = await startSession(unrelatedWl);
  });

  it('restart in the middle: the pending grant survives and is redeemed once', async () => {
    await restart();
    retrieval = await redeem(retrievalWl, pendingGrant);
    assert.equal(await codeOf(redeem(retrievalWl, pendingGrant)), 'ERR_GRANT_REPLAYED');
  });

  it('the retrieval certificate verifies offline with the bundle alone and shows the full chain, every link checked', () => {
    const v = verifyX509Svid(retrieval.chain, offlineBundle(), { cache: null });
    const ctx = v.context!;
    assert.equal(v.id.toString(), id('retrieval'));
    assert.deepEqual(ctx.principal, { id: 'alice', issuer: IDP, provenance: 'verified' });
    assert.equal(ctx.intent, 'summarise open tickets');
    assert.deepEqual(ctx.scopes, ['docs:read']);
    const plannerCtx = verifyX509Svid(planner.chain, offlineBundle()).context!;
    const toolCtx = verifyX509Svid(tool.chain, offlineBundle()).context!;
    assert.equal(ctx.rootSessionId, plannerCtx.sessionId);
    assert.equal(toolCtx.rootSessionId, plannerCtx.sessionId);
    assert.equal(new Set([plannerCtx.sessionId, toolCtx.sessionId, ctx.sessionId]).size, 3);

    // The chain, root first: planner (alice's session) -> tool-runner, each link naming the parent's
    // certificate and key, signed by that key over the child's binding, and chained to the previous link.
    const parents = [planner, tool];
    assert.deepEqual(
      ctx.delegation.map((l) => [l.spiffeId, l.sessionId, l.scopes]),
      [
        [id('planner'), plannerCtx.sessionId, ['docs:read', 'docs:write', 'tools:run']],
        [id('tool-runner'), toolCtx.sessionId, ['docs:read', 'tools:run']],
      ],
    );
    ctx.delegation.forEach((link, i) => {
      const parentCert = ParsedCertificate.fromDer(parents[i]!.chain[0]!);
      assert.deepEqual(Buffer.from(link.certSha256), Buffer.from(parentCert.sha256));
      assert.deepEqual(Buffer.from(link.publicKey), Buffer.from(parentCert.spkiDer));
      assert.equal(link.binding.childId, i === 0 ? id('tool-runner') : id('retrieval'));
      assert.equal(verifyDelegationLinkSignature(link), true, `link ${i}`);
    });
    assert.equal(ctx.delegation[0]!.binding.prevLinkSha256.length, 0);
    assert.deepEqual(
      Buffer.from(ctx.delegation[1]!.binding.prevLinkSha256),
      Buffer.from(delegationLinkSha256(ctx.delegation[0]!)),
    );
  });

  it('a chain the CA itself re-signs with a forged, reordered, removed or re-keyed hop is refused (the CA cannot edit a hop its parent signed)', async () => {
    const ctx = verifyX509Svid(retrieval.chain, offlineBundle()).context!;
    const forgedSig = new Uint8Array(ctx.delegation[1]!.signature);
    forgedSig[forgedSig.length - 1]! ^= 1;
    assert.equal(verifyDelegationLinkSignature({ ...ctx.delegation[1]!, signature: forgedSig }), false);
    const widened = { ...ctx.delegation[1]!.binding, scopes: ['docs:read', 'tools:run'] };
    assert.equal(verifyDelegationLinkSignature({ ...ctx.delegation[1]!, binding: widened }), false);

    const key = generateSigningKeyPair('ec-p256').privateKey;
    const realLeafKey = createPublicKey(retrieval.key);
    const [link0, link1] = [ctx.delegation[0]!, ctx.delegation[1]!];
    // The tool-runner hop re-created by the CA without the tool-runner's key: a fresh key signs the same
    // binding, so link 1 verifies on its own; only the planner's signed childKeySha256 exposes it.
    const rekeyedTool = buildDelegationLink({
      ...link1,
      privateKey: generateSigningKeyPair('ec-p256').privateKey,
    });
    const cases: Record<string, { delegation: typeof ctx.delegation; leafKey: KeyObject }> = {
      forgedSignature: { delegation: [link0, { ...link1, signature: forgedSig }], leafKey: realLeafKey },
      reordered: { delegation: [link1, link0], leafKey: realLeafKey },
      rootLinkRemoved: { delegation: [link1], leafKey: realLeafKey },
      lastLinkRemoved: { delegation: [link0], leafKey: realLeafKey },
      leafKeySwapped: { delegation: [link0, link1], leafKey: key },
      middleHopKeySwapped: { delegation: [link0, rekeyedTool], leafKey: realLeafKey },
      control: { delegation: [link0, link1], leafKey: realLeafKey },
    };
    const codes: Record<string, string> = {};
    for (const [name, { delegation, leafKey }] of Object.entries(cases)) {
      // Signed by the server's real, active CA: the certificate path is perfect, only the context lies.
      const forged = await s.running.ca.signX509Svid({
        spiffeId: id('retrieval'),
        publicKey: leafKey,
        ttlSeconds: 300,
        agentContextDer: encodeAgentContext({ ...ctx, delegation }),
      });
      codes[name] = await codeOf(
        Promise.resolve().then(() => verifyX509Svid(forged.chain, offlineBundle(), { cache: null })),
      );
    }
    // Reordering or dropping the root link changes the chain's root, which the verifier checks first.
    assert.deepEqual(codes, {
      forgedSignature: 'ERR_DELEGATION_SIGNATURE_INVALID',
      reordered: 'ERR_ROOT_CHANGED',
      rootLinkRemoved: 'ERR_ROOT_CHANGED',
      lastLinkRemoved: 'ERR_DELEGATION_LINK_INVALID',
      leafKeySwapped: 'ERR_DELEGATION_LINK_INVALID',
      middleHopKeySwapped: 'ERR_DELEGATION_LINK_INVALID',
      control: 'succeeded',
    });
  });

  it('EndSession on the planner: a RevocationCache fed by WatchRevocations rejects tool-runner and retrieval within a second', async () => {
    const cache = new RevocationCache();
    const watcher = sessionClient(s, unrelatedWl);
    const watch = watchRevocationsInto(watcher, cache, { retryMs: 100 });
    try {
      await watch.ready;
      for (const a of [planner, tool, retrieval, unrelated]) {
        verifyX509Svid(a.chain, offlineBundle(), { revocation: cache });
      }
      const before = await opensslWithServedCrl({ tool, retrieval });
      assert.ok(before.tool!.ok && before.retrieval!.ok, `${before.tool!.output}${before.retrieval!.output}`);

      const c = sessionClient(s, planner);
      const plannerSession = verifyX509Svid(planner.chain, offlineBundle()).context!.sessionId;
      const ended = await unary(c.endSession.bind(c), { sessionId: plannerSession, reason: 'task done' });
      c.close();
      assert.equal(ended.endedSessionIds.length, 3);
      const endedAt = Date.now();

      // Poll the verifier as a service would on its next connections. The bound is generous on purpose (a
      // loaded machine must not fail it): a test proves that revocation arrives, a benchmark how fast.
      const rejected = (a: Agent): boolean => {
        try {
          verifyX509Svid(a.chain, offlineBundle(), { revocation: cache });
          return false;
        } catch (e) {
          assert.equal((e as { code?: string }).code, 'ERR_REVOKED');
          return true;
        }
      };
      while (!(rejected(tool) && rejected(retrieval))) {
        assert.ok(
          Date.now() - endedAt < 10_000,
          'the verifier still accepts a certificate of the ended chain',
        );
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(rejected(planner), true);
      verifyX509Svid(unrelated.chain, offlineBundle(), { revocation: cache });
    } finally {
      watch.close();
      watcher.close();
    }
  });

  it('openssl verify -crl_check with the served CRL rejects them ("certificate revoked") and accepts an unrelated SVID', async () => {
    // The CRL is regenerated from the committed revocation; wait for the served one to list the serials.
    const serials = [tool, retrieval].map((a) => ParsedCertificate.fromDer(a.chain[0]!).serialHex);
    const deadline = Date.now() + 10_000;
    let result = await opensslWithServedCrl({ tool, retrieval, planner, unrelated });
    while (!(
      /certificate revoked/.test(result.tool!.output) && /certificate revoked/.test(result.retrieval!.output)
    )) {
      assert.ok(Date.now() < deadline, `the served CRL does not list ${serials.join(', ')}`);
      await new Promise((r) => setTimeout(r, 50));
      result = await opensslWithServedCrl({ tool, retrieval, planner, unrelated });
    }
    for (const name of ['tool', 'retrieval', 'planner']) {
      assert.equal(result[name]!.ok, false, name);
      assert.match(result[name]!.output, /certificate revoked/, name);
    }
    assert.ok(result.unrelated!.ok, result.unrelated!.output);
  });

  it('restart after the end: revocations, ended sessions and spent grants all survive', async () => {
    await restart();
    const cache = new RevocationCache();
    const watcher = sessionClient(s, unrelatedWl);
    const watch = watchRevocationsInto(watcher, cache, { retryMs: 100 });
    try {
      await watch.ready;
      for (const a of [planner, tool, retrieval]) {
        assert.equal(
          await codeOf(
            Promise.resolve().then(() => verifyX509Svid(a.chain, offlineBundle(), { revocation: cache })),
          ),
          'ERR_REVOKED',
        );
      }
      verifyX509Svid(unrelated.chain, offlineBundle(), { revocation: cache });
    } finally {
      watch.close();
      watcher.close();
    }
    const served = await opensslWithServedCrl({ retrieval, unrelated });
    assert.match(served.retrieval!.output, /certificate revoked/);
    assert.ok(served.unrelated!.ok, served.unrelated!.output);

    const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD, tool);
    try {
      assert.equal(await codeOf(renewCall(pub, Buffer.from(createCsr(tool.key).der))), 'ERR_SESSION_ENDED');
    } finally {
      pub.close();
    }
    assert.equal(
      await codeOf(createGrant(tool, { childId: id('retrieval'), scopes: ['docs:read'] })),
      'ERR_SESSION_ENDED',
    );
    assert.equal(await codeOf(redeem(retrievalWl, pendingGrant)), 'ERR_GRANT_REPLAYED');
  });
});
