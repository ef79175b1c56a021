/**
 * Sessions, delegation and revocation end to end: a real server on 127.0.0.1:0, real SQLite, real crypto.
 * alice (OIDC token from a locally generated issuer key) -> planner session -> tool-runner -> retrieval,
 * verified offline with the bundle alone; every refusal with its code; EndSession cascades to Renew and to a
 * verifier holding a streamed RevocationCache; restart keeps sessions, grants and revocations.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, type KeyObject, sign } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import { signGrant, type GrantParams } from '../../../src/client/delegation';
import { watchRevocationsInto } from '../../../src/client/revocation-watch';
import {
  SessionServiceClient,
  type CreateGrantResponse,
  type PrincipalEvidence,
  type RedeemGrantResponse,
  StartSessionRequest,
  type StartSessionResponse,
} from '../../../src/gen/lanyard/v1/session';
import { TrustDomain } from '../../../src/spiffe';
import { RevocationCache, verifyX509Svid } from '../../../src/verify';
import { ParsedCertificate } from '../../../src/x509/certificate';
import {
  encodeDelegationBinding,
  signDelegationBinding,
  type DelegationBinding,
} from '../../../src/x509/agent-context';
import { createCsr } from '../../../src/x509/csr';
import { generateSigningKeyPair, spkiDer } from '../../../src/x509/keys';
import { encodePem } from '../../../src/x509/pem';
import { issuerKey, jwksOf, signJwt } from '../../support/jwt';
import { eventually } from '../../support/hop';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { attest, connectPublic, newKey, renewCall, type ClientIdentity } from '../../support/public-client';
import { BINDING, parseTlv, primitive, writeTlv } from '../../x509/agent-context/tlv';
import { rejectsWithWireCode } from '../../support/grpc-refusal';
import { unary as call, type Agent } from '../../support/sessions';

const TD = 'lanyard.local';
const IDP = 'https://idp.example.com';
const id = (p: string): string => `spiffe://${TD}/${p}`;

describe('sessions, delegation and revocation over mTLS', function () {
  this.timeout(60_000);
  const dir = tempDataDir();
  const files = tempDataDir();
  const idpKey = issuerKey('ES256');
  const jwksFile = path.join(files, 'idp.json');
  fs.writeFileSync(jwksFile, jwksOf(idpKey));
  let s: TestServer;
  let bundlePem: string;

  const start = async (): Promise<void> => {
    s = await startTestServer({
      dir,
      config: { principalIssuers: [{ issuer: IDP, audience: 'lanyard', jwksFile }] },
    });
    bundlePem = s.running.ca.bundle().toPem();
  };
  before(start);
  after(() => s.stop());

  const sessionClient = (who?: ClientIdentity): SessionServiceClient => {
    const pub = connectPublic(s.running.publicAddress, bundlePem, TD, who);
    pub.close();
    // The same credentials as the other public clients (server SPIFFE ID checked, optional client SVID).
    const serverId = `URI:spiffe://${TD}/lanyard/server`;
    const creds = grpc.credentials.createSsl(
      Buffer.from(bundlePem),
      who ? Buffer.from(who.key.export({ type: 'pkcs8', format: 'pem' })) : null,
      who ? Buffer.from(who.chain.map((d) => encodePem('CERTIFICATE', d)).join('')) : null,
      {
        checkServerIdentity: (_h, cert) =>
          (cert.subjectaltname ?? '').split(', ').includes(serverId)
            ? undefined
            : new Error('not the server'),
      },
    );
    return new SessionServiceClient(s.running.publicAddress, creds, {
      'grpc.ssl_target_name_override': 'lanyard-server',
    });
  };
  const bundle = (): X509Bundle => X509Bundle.fromPem(TrustDomain.parse(TD), s.running.ca.bundle().toPem());

  /** Registers an entry and attests it with a join token: the agent's workload SVID. */
  const register = async (name: string, fields: Record<string, unknown>): Promise<Agent> => {
    const spiffeId = id(name);
    await s.client.createEntry({
      entry: { spiffeId, selectors: [{ type: 'unix', value: `name:${name}` }], ...fields },
    });
    const { token } = await s.client.createJoinToken({ spiffeId });
    const { key, csr } = newKey();
    const pub = connectPublic(s.running.publicAddress, bundlePem, TD);
    try {
      const r = await attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(token),
        csr,
      });
      return { spiffeId, key, chain: r.svid!.certChain.map((b) => new Uint8Array(b)) };
    } finally {
      pub.close();
    }
  };

  const startSession = async (
    agent: Agent,
    req: { principal?: PrincipalEvidence; intent?: string; scopes?: string[]; ttlSeconds?: number },
  ): Promise<{ agent: Agent; res: StartSessionResponse }> => {
    const c = sessionClient(agent);
    try {
      const { key, csr } = newKey();
      const res = await call(c.startSession.bind(c), StartSessionRequest.fromPartial({ csr, ...req }));
      return { agent: { ...agent, key, chain: res.svid!.certChain.map((b) => new Uint8Array(b)) }, res };
    } finally {
      c.close();
    }
  };

  /** A grant the parent signs for a key the child generated first (`childKey`, fresh by default). */
  type Grant = CreateGrantResponse & { childKey: KeyObject };
  const createGrant = async (
    parent: Agent,
    params: Omit<GrantParams, 'parentCert' | 'parentKey' | 'childKey'> & { childKey?: KeyObject },
  ): Promise<Grant> => {
    const childKey = params.childKey ?? generateSigningKeyPair('ec-p256').privateKey;
    const signed = signGrant({
      parentCert: parent.chain[0]!,
      parentKey: parent.key,
      ...params,
      childKey: createPublicKey(childKey),
    });
    const c = sessionClient(parent);
    try {
      const res = await call(c.createGrant.bind(c), {
        binding: Buffer.from(signed.bindingDer),
        signature: Buffer.from(signed.signature),
      });
      return { ...res, childKey };
    } finally {
      c.close();
    }
  };

  /** Redeems `grant` with the key it names, or with `key` to try another. */
  const redeem = async (
    child: Agent,
    grant: Pick<Grant, 'grantId' | 'childKey'>,
    key = grant.childKey,
  ): Promise<{ agent: Agent; res: RedeemGrantResponse }> => {
    const c = sessionClient(child);
    try {
      const res = await call(c.redeemGrant.bind(c), {
        grantId: grant.grantId,
        foreignGrant: undefined,
        csr: Buffer.from(createCsr(key).der),
      });
      return { agent: { ...child, key, chain: res.svid!.certChain.map((b) => new Uint8Array(b)) }, res };
    } finally {
      c.close();
    }
  };

  let plannerWl: Agent;
  let toolWl: Agent;
  let retrievalWl: Agent;
  let strangerWl: Agent;
  let planner: Agent;
  let tool: Agent;
  let retrieval: Agent;
  const aliceToken = (): string =>
    signJwt(
      {
        iss: IDP,
        aud: 'lanyard',
        sub: 'alice',
        exp: Math.floor(Date.now() / 1000) + 300,
        iat: Math.floor(Date.now() / 1000),
      },
      idpKey,
    );

  it('registers and attests the planner, tool-runner, retrieval and a stranger', async () => {
    plannerWl = await register('planner', {
      allowedScopes: ['docs:read', 'docs:write', 'tools:run'],
      maxDelegationDepth: 2,
      allowedDelegates: [id('tool-runner')],
    });
    toolWl = await register('tool-runner', {
      allowedScopes: ['docs:read', 'tools:run'],
      maxDelegationDepth: 1,
      allowedDelegates: [id('retrieval')],
      x509SvidTtlSeconds: 1800,
    });
    retrievalWl = await register('retrieval', {
      allowedScopes: ['docs:read'],
      allowedDelegates: [id('planner')],
    });
    strangerWl = await register('stranger', { allowedScopes: ['docs:read'] });
  });

  it('alice -> planner -> tool-runner -> retrieval: the last SVID verifies offline with every link checked', async () => {
    const started = await startSession(plannerWl, {
      principal: { evidence: { $case: 'token', value: aliceToken() } },
      intent: 'summarise open tickets',
      scopes: ['docs:read', 'docs:write', 'tools:run', 'admin:all'],
    });
    planner = started.agent;
    assert.deepEqual(started.res.scopes, ['docs:read', 'docs:write', 'tools:run']);
    const pv = verifyX509Svid(planner.chain, bundle());
    assert.deepEqual(pv.context!.principal, { id: 'alice', issuer: IDP, provenance: 'verified' });
    assert.equal(pv.context!.rootSessionId, started.res.sessionId);
    assert.match(started.res.sessionId, /^s-[0-9a-f]{32}$/);

    // The child generates its key first; the parent's grant names it, and its id is the key's hash.
    const toolKey = generateSigningKeyPair('ec-p256').privateKey;
    const g1 = await createGrant(planner, {
      childId: id('tool-runner'),
      scopes: ['docs:read', 'tools:run'],
      childKey: toolKey,
    });
    assert.equal(
      g1.grantId,
      createHash('sha256')
        .update(spkiDer(createPublicKey(toolKey)))
        .digest('hex'),
    );
    tool = (await redeem(toolWl, g1)).agent;
    const g2 = await createGrant(tool, { childId: id('retrieval'), scopes: ['docs:read'] });
    const r = await redeem(retrievalWl, g2);
    retrieval = r.agent;

    const v = verifyX509Svid(retrieval.chain, bundle(), { cache: null });
    const ctx = v.context!;
    assert.equal(v.id.toString(), id('retrieval'));
    // Every hop's key is the one its parent's binding names: the tool-runner's and the leaf's.
    assert.deepEqual(
      Buffer.from(ctx.delegation[0]!.binding.childKeySha256),
      createHash('sha256').update(ctx.delegation[1]!.publicKey).digest(),
    );
    assert.equal(Buffer.from(ctx.delegation[1]!.binding.childKeySha256).toString('hex'), g2.grantId);
    assert.deepEqual(ctx.principal, { id: 'alice', issuer: IDP, provenance: 'verified' });
    assert.equal(ctx.rootSessionId, started.res.sessionId);
    assert.equal(ctx.intent, 'summarise open tickets');
    assert.deepEqual(ctx.scopes, ['docs:read']);
    assert.equal(ctx.sessionId, r.res.sessionId);
    assert.deepEqual(
      ctx.delegation.map((l) => [l.spiffeId, l.scopes]),
      [
        [id('planner'), ['docs:read', 'docs:write', 'tools:run']],
        [id('tool-runner'), ['docs:read', 'tools:run']],
      ],
    );
    assert.equal(ctx.delegation[0]!.sessionId, started.res.sessionId);
    assert.equal(ctx.provenance.method, 'delegation');
    const leaf = ParsedCertificate.fromDer(retrieval.chain[0]!);
    assert.ok(leaf.notAfter.getTime() <= ParsedCertificate.fromDer(tool.chain[0]!).notAfter.getTime());
  });

  it('refuses a child outside allowed_delegates, wider scopes, a longer lifetime, and a chain too deep', async () => {
    await rejectsWithWireCode(
      createGrant(planner, { childId: id('stranger'), scopes: [] }),
      'ERR_DELEGATE_NOT_ALLOWED',
    );
    await rejectsWithWireCode(
      createGrant(tool, { childId: id('retrieval'), scopes: ['docs:write'] }),
      'ERR_SCOPE_ESCALATION',
    );
    await rejectsWithWireCode(
      createGrant(tool, {
        childId: id('retrieval'),
        scopes: ['docs:read'],
        notAfter: new Date(Date.now() + 48 * 3600_000),
      }),
      'ERR_LIFETIME_ESCALATION',
    );
    // retrieval may delegate to the planner by its entry, but the chain is already 2 deep (the planner's limit).
    await rejectsWithWireCode(
      createGrant(retrieval, { childId: id('planner'), scopes: [] }),
      'ERR_DELEGATION_TOO_DEEP',
    );
    // A workload SVID is not a session.
    await rejectsWithWireCode(
      createGrant(plannerWl, { childId: id('tool-runner'), scopes: [] }),
      'ERR_NOT_A_SESSION',
    );
  });

  it("refuses a binding, signed by the parent's own key, that names another principal or provenance", async () => {
    // The parent signs what it likes; the server only turns into a link a binding that carries the caller's
    // own principal, all three fields (the verifier compares them along the chain again).
    const edited = async (edit: Partial<DelegationBinding>): Promise<CreateGrantResponse> => {
      const base = signGrant({
        parentCert: planner.chain[0]!,
        parentKey: planner.key,
        childId: id('tool-runner'),
        childKey: generateSigningKeyPair('ec-p256').publicKey,
        scopes: [],
      });
      const binding: DelegationBinding = { ...base.binding, ...edit };
      const c = sessionClient(planner);
      try {
        return await call(c.createGrant.bind(c), {
          binding: Buffer.from(encodeDelegationBinding(binding)),
          signature: Buffer.from(signDelegationBinding(binding, planner.key)),
        });
      } finally {
        c.close();
      }
    };
    for (const edit of [
      { principalProvenance: 'asserted-by:spiffe://example.org/gateway' as const },
      { principalProvenance: 'workload' as const },
      { principalId: 'mallory' },
      { principalIssuer: 'https://evil.example' },
    ]) {
      await rejectsWithWireCode(edited(edit), 'ERR_GRANT_BINDING_INVALID');
    }
    // Control: the unedited binding, signed the same way, is accepted.
    assert.ok((await edited({})).grantId.length > 0);
  });

  it('refuses a version-2 binding (no child key), signed by the parent, at CreateGrant', async () => {
    const base = signGrant({
      parentCert: planner.chain[0]!,
      parentKey: planner.key,
      childId: id('tool-runner'),
      childKey: generateSigningKeyPair('ec-p256').publicKey,
      scopes: ['docs:read'],
    });
    // The same fields in the version-2 form: version 2, no child key. The parent's signature over it is genuine.
    const v2 = parseTlv(base.bindingDer);
    v2.children![BINDING.version] = primitive(0x02, Uint8Array.of(2));
    v2.children!.splice(BINDING.childKeySha256, 1);
    const der = writeTlv(v2);
    const c = sessionClient(planner);
    try {
      const refused = call(c.createGrant.bind(c), {
        binding: Buffer.from(der),
        signature: Buffer.from(sign('sha256', der, planner.key)),
      });
      await rejectsWithWireCode(refused, 'ERR_GRANT_BINDING_INVALID');
      await assert.rejects(refused, (e: grpc.ServiceError) =>
        /binding\.version: 2 is not supported/.test(e.details),
      );
    } finally {
      c.close();
    }
  });

  it('refuses a grant redeemed by another identity, replayed, or expired', async () => {
    const g = await createGrant(planner, { childId: id('tool-runner'), scopes: ['docs:read'] });
    await rejectsWithWireCode(redeem(strangerWl, g), 'ERR_GRANT_WRONG_REDEEMER');
    await redeem(toolWl, g);
    await rejectsWithWireCode(redeem(toolWl, g), 'ERR_GRANT_REPLAYED');
    // Replayed with another key too: a used grant is reported as used, before anything else.
    await rejectsWithWireCode(
      redeem(toolWl, g, generateSigningKeyPair('ec-p256').privateKey),
      'ERR_GRANT_REPLAYED',
    );
    const short = await createGrant(planner, {
      childId: id('tool-runner'),
      scopes: ['docs:read'],
      redeemBy: new Date(Date.now() + 2500),
    });
    await new Promise((r) => setTimeout(r, 2600));
    await rejectsWithWireCode(redeem(toolWl, short), 'ERR_GRANT_EXPIRED');
    await rejectsWithWireCode(redeem(toolWl, { ...g, grantId: 'f'.repeat(64) }), 'ERR_GRANT_NOT_FOUND');
  });

  it('refuses a redemption with another key than the parent bound, and spends nothing', async () => {
    const g = await createGrant(planner, { childId: id('tool-runner'), scopes: ['docs:read'] });
    const other = generateSigningKeyPair('ec-p256').privateKey;
    await rejectsWithWireCode(redeem(toolWl, g, other), 'ERR_GRANT_KEY_MISMATCH');
    // The grant is unspent: the key the parent named still redeems it, once, into an SVID for that key.
    const redeemed = await redeem(toolWl, g);
    const leaf = ParsedCertificate.fromDer(redeemed.agent.chain[0]!);
    assert.deepEqual(Buffer.from(leaf.spkiDer), Buffer.from(spkiDer(createPublicKey(g.childKey))));
    await rejectsWithWireCode(redeem(toolWl, g), 'ERR_GRANT_REPLAYED');
  });

  it('refuses a second grant for a key already granted (a child key is granted once)', async () => {
    const childKey = generateSigningKeyPair('ec-p256').privateKey;
    await createGrant(planner, { childId: id('tool-runner'), scopes: ['docs:read'], childKey });
    await rejectsWithWireCode(
      createGrant(planner, { childId: id('tool-runner'), scopes: ['tools:run'], childKey }),
      'ERR_GRANT_REPLAYED',
    );
  });

  it('asserted principals only for entries allowed to assert them; unknown token issuers refused', async () => {
    await rejectsWithWireCode(
      startSession(strangerWl, { principal: { evidence: { $case: 'assertedId', value: 'bob' } } }),
      'ERR_PRINCIPAL_ASSERTION_NOT_ALLOWED',
    );
    const other = issuerKey('ES256');
    const forged = signJwt({ iss: 'https://evil.example', aud: 'lanyard', sub: 'alice', exp: 9e9 }, other);
    await rejectsWithWireCode(
      startSession(strangerWl, { principal: { evidence: { $case: 'token', value: forged } } }),
      'ERR_PRINCIPAL_ISSUER_UNKNOWN',
    );
    const wrongKey = signJwt({ iss: IDP, aud: 'lanyard', sub: 'alice', exp: 9e9 }, other);
    await rejectsWithWireCode(
      startSession(strangerWl, { principal: { evidence: { $case: 'token', value: wrongKey } } }),
      'ERR_SIGNATURE_INVALID',
    );
    const gateway = await register('gateway', { canAssertPrincipal: true, allowedScopes: ['docs:read'] });
    const asserted = await startSession(gateway, {
      principal: { evidence: { $case: 'assertedId', value: 'bob' } },
      scopes: ['docs:read'],
    });
    assert.deepEqual(verifyX509Svid(asserted.agent.chain, bundle()).context!.principal, {
      id: 'bob',
      issuer: id('gateway'),
      provenance: `asserted-by:${id('gateway')}`,
    });
    const own = await startSession(strangerWl, {});
    const ctx = verifyX509Svid(own.agent.chain, bundle()).context!;
    assert.deepEqual(ctx.principal.provenance, 'workload');
    assert.equal(ctx.principal.id, id('stranger'));
  });

  it('Renew keeps the session; EndSession cascades to Renew, grants and a streamed RevocationCache', async () => {
    const pub = connectPublic(s.running.publicAddress, bundlePem, TD, { key: tool.key, chain: tool.chain });
    try {
      // The tool-runner's grant bound its key: renewal of that session keeps the key.
      const csr = Buffer.from(createCsr(tool.key).der);
      const renewed = await renewCall(pub, csr);
      const rctx = verifyX509Svid(renewed.svid!.certChain, bundle()).context!;
      const before = verifyX509Svid(tool.chain, bundle()).context!;
      assert.equal(rctx.sessionId, before.sessionId);
      assert.equal(rctx.delegation.length, 1);
      await rejectsWithWireCode(renewCall(pub, newKey().csr), 'ERR_INVALID_ARGUMENT');
    } finally {
      pub.close();
    }

    const cache = new RevocationCache();
    const watcher = sessionClient(strangerWl);
    const watch = watchRevocationsInto(watcher, cache, { retryMs: 100 });
    await watch.ready;
    verifyX509Svid(retrieval.chain, bundle(), { revocation: cache });

    const plannerSession = verifyX509Svid(planner.chain, bundle()).context!.sessionId;
    const c = sessionClient(planner);
    const ended = await call(c.endSession.bind(c), { sessionId: plannerSession, reason: 'task done' });
    c.close();
    assert.equal(ended.endedSessionIds[0], plannerSession);
    assert.ok(ended.endedSessionIds.length >= 3);
    // The feed is asynchronous: poll until the cache refuses the chain. The bound is generous on purpose; how
    // fast revocation arrives is a benchmark's question, not a test's.
    await eventually(
      () => {
        try {
          verifyX509Svid(retrieval.chain, bundle(), { revocation: cache });
          return false;
        } catch {
          return true;
        }
      },
      10_000,
      'the streamed revocation reaching the cache',
    );
    assert.throws(
      () => verifyX509Svid(retrieval.chain, bundle(), { revocation: cache }),
      (e: unknown) => (e as { code?: string }).code === 'ERR_REVOKED',
    );
    assert.throws(() => verifyX509Svid(tool.chain, bundle(), { revocation: cache }), /ended/);
    watch.close();
    watcher.close();

    const toolPub = connectPublic(s.running.publicAddress, bundlePem, TD, {
      key: tool.key,
      chain: tool.chain,
    });
    await rejectsWithWireCode(renewCall(toolPub, Buffer.from(createCsr(tool.key).der)), 'ERR_SESSION_ENDED');
    toolPub.close();
    await rejectsWithWireCode(
      createGrant(tool, { childId: id('retrieval'), scopes: ['docs:read'] }),
      'ERR_SESSION_ENDED',
    );
    // Another agent may not end someone else's session.
    const other = await startSession(plannerWl, {});
    const sc = sessionClient(strangerWl);
    await rejectsWithWireCode(
      call(sc.endSession.bind(sc), { sessionId: other.res.sessionId, reason: '' }),
      'ERR_UNAUTHORIZED',
    );
    sc.close();
  });

  it('a grant whose parent session ended cannot be redeemed', async () => {
    const p = await startSession(plannerWl, { scopes: ['docs:read'] });
    const g = await createGrant(p.agent, { childId: id('tool-runner'), scopes: ['docs:read'] });
    const c = sessionClient(p.agent);
    await call(c.endSession.bind(c), { sessionId: p.res.sessionId, reason: '' });
    c.close();
    await rejectsWithWireCode(redeem(toolWl, g), 'ERR_SESSION_ENDED');
  });

  it('restart keeps sessions, grants and revocations', async () => {
    const p = await startSession(plannerWl, { scopes: ['docs:read'] });
    const g = await createGrant(p.agent, { childId: id('tool-runner'), scopes: ['docs:read'] });
    await s.stop();
    await start();
    // The grant survived and is still single use; the ended sessions stay ended; the feed has them all.
    await redeem(toolWl, g);
    await rejectsWithWireCode(redeem(toolWl, g), 'ERR_GRANT_REPLAYED');
    await rejectsWithWireCode(
      createGrant(tool, { childId: id('retrieval'), scopes: ['docs:read'] }),
      'ERR_SESSION_ENDED',
    );
    const cache = new RevocationCache();
    const watcher = sessionClient(strangerWl);
    const watch = watchRevocationsInto(watcher, cache);
    await watch.ready;
    assert.ok(cache.size >= 4);
    assert.throws(() => verifyX509Svid(retrieval.chain, bundle(), { revocation: cache }), /ended|revoked/);
    watch.close();
    watcher.close();
  });
});
