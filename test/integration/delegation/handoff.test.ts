/**
 * Handoff across hops against a real Lanyard server: alice (asserted principal) -> planner session -> tool-runner
 * (a grant naming the key the tool-runner generated first) asks service A for a key over gRPC, grants to it and
 * calls A with the grant id in the metadata; A redeems it with the key it offered that caller, against the caller
 * it verified, and calls service B over https with the delegated SVID; B's express handler reads the whole chain
 * from req.agent, every key in it bound by the hop before. Then a grant for a key A never offered that caller, a
 * grant relayed by another caller and a replayed one are refused, and ending the planner's session makes B refuse
 * A's delegated SVID.
 */
import assert from 'node:assert/strict';
import * as https from 'node:https';
import * as grpc from '@grpc/grpc-js';
import express from 'express';
import { ServerX509Source } from '../../../src/client/server-x509-source';
import type { SessionX509Source } from '../../../src/client/handoff';
import { StaticX509Source } from '../../../src/client/static-x509-source';
import { lanyardExpress } from '../../../src/hop/express';
import {
  hopPeerOf,
  HOP_CHANNEL_OPTIONS,
  hopChannelCredentials,
  hopServerCredentials,
  hopService,
} from '../../../src/hop/grpc';
import {
  addHandoffService,
  grantFor,
  grantForPeer,
  HANDOFF_GRANT_HEADER,
  HandoffKey,
  HandoffKeys,
  offerKeyFrom,
  redeemFromCaller,
  redeemGrant,
  startSession,
} from '../../../src/hop/handoff';
import { createHash } from 'node:crypto';
import { followSource, HopHttpsAgent } from '../../../src/hop/tls';
import { authorizeId, authorizeOneOf } from '../../../src/verify';
import type { TestServer } from '../../support/test-server';
import { EchoClient, type EchoClientApi, EchoService, type Msg } from '../../support/echo-service';
import {
  closeServer,
  DecisionLog,
  eventually,
  httpsGetJson,
  id,
  listenHttps,
  serverBundle,
  startLanyard,
  workloadSource,
} from '../../support/hop';

interface BView {
  caller: string;
  principal: string;
  chain: string[];
  scopes: string[];
}

describe('hop: handoff (grant by the caller, redeem by the service) across gRPC and https', function () {
  this.timeout(60_000);
  let s: TestServer;
  let plannerWl: ServerX509Source;
  let toolWl: ServerX509Source;
  let aWl: ServerX509Source;
  let bWl: ServerX509Source;
  let planner: SessionX509Source;
  let tool: SessionX509Source;
  let grpcServer: grpc.Server;
  let bServer: https.Server;
  let aAddress: string;
  let bPort: number;
  const bDecisions = new DecisionLog();
  const aRedeemed: SessionX509Source[] = [];
  const closers: (() => void)[] = [];
  const aKeys = new HandoffKeys();

  before(async () => {
    s = await startLanyard();
    plannerWl = await workloadSource(s, 'planner', {
      allowedScopes: ['docs:read', 'tools:run'],
      maxDelegationDepth: 3,
      allowedDelegates: [id('tool-runner'), id('service-a')],
      canAssertPrincipal: true,
    });
    toolWl = await workloadSource(s, 'tool-runner', {
      allowedScopes: ['docs:read', 'tools:run'],
      maxDelegationDepth: 3,
      allowedDelegates: [id('service-a')],
    });
    aWl = await workloadSource(s, 'service-a', { allowedScopes: ['docs:read'], maxDelegationDepth: 3 });
    bWl = await workloadSource(s, 'service-b');
    const server = s.running.publicAddress;

    // Service B: express behind https, reads the chain.
    const app = express();
    app.use(
      lanyardExpress({
        source: bWl,
        revocation: bWl.revocations,
        authorize: authorizeOneOf(id('service-a')),
        onDecision: bDecisions.listener,
      }),
    );
    app.get('/docs', (req, res) => {
      const ctx = req.agent!.context!;
      const view: BView = {
        caller: req.agent!.spiffeId,
        principal: ctx.principal.id,
        chain: [...ctx.delegation.map((l) => l.spiffeId), req.agent!.spiffeId],
        scopes: ctx.scopes,
      };
      res.json(view);
    });
    ({ server: bServer, port: bPort } = await listenHttps(bWl, app));
    followSource(bServer, bWl);

    // Service A: gRPC; offers keys to its callers, redeems a caller's grant and calls B with the delegated SVID.
    grpcServer = new grpc.Server();
    const aOptions = { source: aWl, authorize: authorizeOneOf(id('tool-runner'), id('planner')) };
    addHandoffService(grpcServer, aKeys, aOptions);
    grpcServer.addService(
      EchoService,
      hopService(
        EchoService,
        {
          echo: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
            const caller = hopPeerOf(call)!;
            const grantId = String(call.metadata.get(HANDOFF_GRANT_HEADER)[0] ?? '');
            redeemFromCaller(caller, grantId, { server, source: aWl, keys: aKeys })
              .then(async (delegated) => {
                aRedeemed.push(delegated);
                const agent = new HopHttpsAgent({
                  source: delegated,
                  authorize: authorizeId(id('service-b')),
                });
                closers.push(() => agent.destroy());
                const r = await httpsGetJson<unknown>(bPort, '/docs', agent);
                cb(null, { text: JSON.stringify(r) });
              })
              .catch((e: Error & { code?: unknown }) =>
                cb({
                  code: grpc.status.FAILED_PRECONDITION,
                  details: `${String((e as { code?: unknown }).code)}: ${e.message}`,
                }),
              );
          },
        },
        aOptions,
      ),
    );
    const port = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync('127.0.0.1:0', hopServerCredentials(aWl), (e, p) => (e ? reject(e) : resolve(p))),
    );
    aAddress = `127.0.0.1:${port}`;

    // The chain's start: alice's planner session, delegated to the tool-runner.
    planner = await startSession({
      server,
      source: plannerWl,
      principal: { evidence: { $case: 'assertedId', value: 'alice' } },
      intent: 'summarise docs',
      scopes: ['docs:read', 'tools:run'],
    });
    // Out of band: the tool-runner generates its key and hands the planner only the key's hash.
    const toolKey = HandoffKey.generate();
    const toTool = await grantFor({
      server,
      source: planner,
      childId: id('tool-runner'),
      childKey: toolKey.id,
      scopes: ['docs:read', 'tools:run'],
    });
    assert.equal(toTool.grantId, toolKey.id);
    tool = await redeemGrant({ server, source: toolWl, key: toolKey });
  });
  after(async () => {
    for (const c of closers) c();
    grpcServer.forceShutdown();
    await closeServer(bServer);
    for (const r of aRedeemed) await r.close();
    await Promise.all([plannerWl, toolWl, aWl, bWl, planner, tool].map((x) => x.close()));
    await s.stop();
  });

  const clientA = (source = tool): EchoClientApi => {
    const c = new EchoClient(
      aAddress,
      hopChannelCredentials({ source, authorize: authorizeId(id('service-a')) }),
      { ...HOP_CHANNEL_OPTIONS, 'grpc.use_local_subchannel_pool': 1 },
    ) as unknown as EchoClientApi;
    closers.push(() => c.close());
    return c;
  };
  const callA = (text: string, grantId: string): Promise<Msg> => {
    const c = clientA();
    const md = new grpc.Metadata();
    md.set(HANDOFF_GRANT_HEADER, grantId);
    return new Promise((resolve, reject) =>
      c.echo({ text }, md, { deadline: Date.now() + 15_000 }, (e, r) => (e ? reject(e) : resolve(r!))),
    );
  };

  it('B sees alice -> planner (session) -> tool-runner -> A, with the narrowed scopes', async () => {
    const grant = await grantForPeer(clientA(), {
      server: s.running.publicAddress,
      source: tool,
      childId: id('service-a'),
      scopes: ['docs:read'],
    });
    const r = await callA('go', grant.grantId);
    const { status, body } = JSON.parse(r.text) as { status: number; body: BView };
    assert.equal(status, 200);
    assert.deepEqual(body, {
      caller: id('service-a'),
      principal: 'alice',
      chain: [id('planner'), id('tool-runner'), id('service-a')],
      scopes: ['docs:read'],
    });
    const d = await bDecisions.next((x) => x.decision === 'allow');
    assert.equal(d.context?.rootSessionId, planner.sessionId);
    // Every key after the first is bound by the hop before: the tool-runner's by the planner, A's by the
    // tool-runner (the key A offered, which the grant id names).
    const links = d.context!.delegation;
    const hash = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
    assert.equal(hash(links[1]!.publicKey), Buffer.from(links[0]!.binding.childKeySha256).toString('hex'));
    assert.equal(Buffer.from(links[1]!.binding.childKeySha256).toString('hex'), grant.grantId);
    assert.equal(aKeys.size, 0, 'the offered key was used once and forgotten');
  });

  it('a delegated session kept fresh by ServerX509Source renews with the key its parent bound', async () => {
    const own = tool.getX509Svid();
    const fresh = await ServerX509Source.fromSvid({
      server: s.running.publicAddress,
      bundle: serverBundle(s),
      svid: own,
    });
    try {
      await fresh.renewNow();
      const renewed = fresh.getX509Svid();
      assert.notEqual(renewed.chain[0]!.serialHex, own.chain[0]!.serialHex);
      assert.deepEqual(Buffer.from(renewed.chain[0]!.spkiDer), Buffer.from(own.chain[0]!.spkiDer));
      assert.equal(renewed.context?.sessionId, own.context?.sessionId);
    } finally {
      await fresh.close();
    }
  });

  it('a grant for a key A never offered this caller is refused before any redemption (ERR_HANDOFF_KEY_UNKNOWN)', async () => {
    // The tool-runner makes up a key: the grant is valid at the server, but A holds no such key.
    const madeUp = HandoffKey.generate();
    const grant = await grantFor({
      server: s.running.publicAddress,
      source: tool,
      childId: id('service-a'),
      childKey: madeUp.id,
      scopes: ['docs:read'],
    });
    await assert.rejects(callA('made up', grant.grantId), (e: grpc.ServiceError) =>
      /ERR_HANDOFF_KEY_UNKNOWN/.test(e.details),
    );
    // A key offered to the planner is not the tool-runner's to use either.
    const plannersOffer = await offerKeyFrom(clientA(planner));
    const onPlannersKey = await grantFor({
      server: s.running.publicAddress,
      source: tool,
      childId: id('service-a'),
      childKey: plannersOffer.keySha256,
      scopes: ['docs:read'],
    });
    await assert.rejects(callA('not yours', onPlannersKey.grantId), (e: grpc.ServiceError) =>
      /ERR_HANDOFF_KEY_UNKNOWN/.test(e.details),
    );
  });

  it('a replayed grant is refused: its key was used once (and the server spent the grant)', async () => {
    const grant = await grantForPeer(clientA(), {
      server: s.running.publicAddress,
      source: tool,
      childId: id('service-a'),
      scopes: ['docs:read'],
    });
    await callA('once', grant.grantId);
    await assert.rejects(callA('twice', grant.grantId), (e: grpc.ServiceError) =>
      /ERR_HANDOFF_KEY_UNKNOWN/.test(e.details),
    );
    assert.ok((await s.running.store.getGrant(grant.grantId)).redeemedAt !== undefined);
  });

  it('a grant relayed by another caller is refused: it was not signed with the certificate that called', async () => {
    // A offered the tool-runner a key; the planner made the grant for it, and the tool-runner calls A with it.
    const offer = await offerKeyFrom(clientA());
    const grant = await grantFor({
      server: s.running.publicAddress,
      source: planner,
      childId: id('service-a'),
      childKey: offer.keySha256,
      scopes: ['docs:read'],
    });
    await assert.rejects(callA('relayed', grant.grantId), (e: grpc.ServiceError) =>
      /ERR_UNAUTHORIZED/.test(e.details),
    );
  });

  it("ending the planner session makes B refuse A's delegated SVID (ERR_REVOKED)", async () => {
    const grant = await grantForPeer(clientA(), {
      server: s.running.publicAddress,
      source: tool,
      childId: id('service-a'),
      scopes: ['docs:read'],
    });
    const r = await callA('before end', grant.grantId);
    assert.equal((JSON.parse(r.text) as { status: number }).status, 200);
    const delegated = aRedeemed.at(-1)!;
    // Kept aside: the source itself stops serving it once it learns of the end, so B is shown it as it was.
    const held = new StaticX509Source(delegated.getX509Svid(), serverBundle(s));
    const ended = new Promise<unknown>((resolve) => delegated.on('ended', resolve));
    await s.client.endSession({ sessionId: planner.sessionId, reason: 'task done' });
    assert.equal(((await ended) as { code: string }).code, 'ERR_SESSION_ENDED');
    const agent = new HopHttpsAgent({ source: held, authorize: authorizeId(id('service-b')) });
    closers.push(() => agent.destroy());
    let last: { status: number; body: unknown } | undefined;
    await eventually(
      async () => {
        last = await httpsGetJson<unknown>(bPort, '/docs', agent);
        return last.status !== 200;
      },
      10_000,
      'B refusing after EndSession',
    );
    assert.equal(last?.status, 401);
    assert.equal((last?.body as { error: { code: string } }).error.code, 'ERR_REVOKED');
  });
});
