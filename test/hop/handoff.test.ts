/**
 * Handoff across hops against a real Lanyard server: alice (asserted principal) -> planner session -> tool-runner
 * (redeemed grant) calls service A over gRPC with a grant for A in the metadata; A redeems it against the caller it
 * verified and calls service B over https with the delegated SVID; B's express handler reads the whole chain from
 * req.agent. Then a grant relayed by another caller is refused, a replayed one too, and ending the planner's
 * session makes B refuse A's delegated SVID.
 */
import assert from 'node:assert/strict';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import express from 'express';
import type { ServerX509Source } from '../../src/client/server-x509-source';
import type { StaticX509Source } from '../../src/client/static-x509-source';
import { lanyardExpress } from '../../src/hop/express';
import {
  agentOf,
  HOP_CHANNEL_OPTIONS,
  hopChannelCredentials,
  hopServerCredentials,
  hopService,
} from '../../src/hop/grpc';
import {
  grantFor,
  HANDOFF_GRANT_HEADER,
  redeemFromCaller,
  redeemGrant,
  startSession,
} from '../../src/hop/handoff';
import { followSource, HopHttpsAgent, tlsServerOptions } from '../../src/hop/tls';
import { authorizeId, authorizeOneOf } from '../../src/verify';
import type { TestServer } from '../server/helpers';
import { EchoClient, type EchoClientApi, EchoService, type Msg } from './echo-service';
import { DecisionLog, eventually, id, startLanyard, workloadSource } from './helpers';

interface BView {
  caller: string;
  principal: string;
  chain: string[];
  scopes: string[];
}

function httpsGet(port: number, agent: https.Agent): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: '/docs', agent }, (res) => {
        let t = '';
        res.on('data', (d: Buffer) => (t += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(t) as unknown }));
      })
      .on('error', reject);
  });
}

describe('hop: handoff (grant by the caller, redeem by the service) across gRPC and https', function () {
  this.timeout(60_000);
  let s: TestServer;
  let plannerWl: ServerX509Source;
  let toolWl: ServerX509Source;
  let aWl: ServerX509Source;
  let bWl: ServerX509Source;
  let planner: StaticX509Source & { sessionId: string };
  let tool: StaticX509Source;
  let grpcServer: grpc.Server;
  let bServer: https.Server;
  let aAddress: string;
  let bPort: number;
  const bDecisions = new DecisionLog();
  const aRedeemed: StaticX509Source[] = [];
  const closers: (() => void)[] = [];

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
    bServer = https.createServer(tlsServerOptions(bWl), app);
    followSource(bServer, bWl);
    await new Promise<void>((r) => bServer.listen(0, '127.0.0.1', r));
    bPort = (bServer.address() as AddressInfo).port;

    // Service A: gRPC; redeems the caller's grant and calls B with the delegated SVID.
    grpcServer = new grpc.Server();
    grpcServer.addService(
      EchoService,
      hopService(
        EchoService,
        {
          echo: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
            const caller = agentOf(call)!;
            const grantId = String(call.metadata.get(HANDOFF_GRANT_HEADER)[0] ?? '');
            redeemFromCaller(caller, grantId, { server, source: aWl })
              .then(async (delegated) => {
                aRedeemed.push(delegated);
                const agent = new HopHttpsAgent({
                  source: delegated,
                  authorize: authorizeId(id('service-b')),
                });
                closers.push(() => agent.destroy());
                const r = await httpsGet(bPort, agent);
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
        { source: aWl, authorize: authorizeOneOf(id('tool-runner'), id('planner')) },
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
    const toTool = await grantFor({
      server,
      source: planner,
      childId: id('tool-runner'),
      scopes: ['docs:read', 'tools:run'],
    });
    tool = await redeemGrant({ server, source: toolWl, grantId: toTool.grantId });
  });
  after(async () => {
    for (const c of closers) c();
    grpcServer.forceShutdown();
    bServer.close();
    for (const r of aRedeemed) await r.close();
    await Promise.all([plannerWl, toolWl, aWl, bWl, planner, tool].map((x) => x.close()));
    await s.stop();
  });

  const callA = (text: string, grantId: string): Promise<Msg> => {
    const c = new EchoClient(
      aAddress,
      hopChannelCredentials({ source: tool, authorize: authorizeId(id('service-a')) }),
      { ...HOP_CHANNEL_OPTIONS, 'grpc.use_local_subchannel_pool': 1 },
    ) as unknown as EchoClientApi;
    closers.push(() => c.close());
    const md = new grpc.Metadata();
    md.set(HANDOFF_GRANT_HEADER, grantId);
    return new Promise((resolve, reject) =>
      c.echo({ text }, md, { deadline: Date.now() + 15_000 }, (e, r) => (e ? reject(e) : resolve(r!))),
    );
  };

  it('B sees alice -> planner (session) -> tool-runner -> A, with the narrowed scopes', async () => {
    const grant = await grantFor({
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
  });

  it('a replayed grant is refused by the server (ERR_GRANT_REPLAYED)', async () => {
    const grant = await grantFor({
      server: s.running.publicAddress,
      source: tool,
      childId: id('service-a'),
      scopes: ['docs:read'],
    });
    await callA('once', grant.grantId);
    await assert.rejects(callA('twice', grant.grantId), (e: grpc.ServiceError) =>
      /ERR_GRANT_REPLAYED/.test(e.details),
    );
  });

  it('a grant relayed by another caller is refused: it was not signed with the certificate that called', async () => {
    // The planner made a grant for A, but the tool-runner is the one calling A with it.
    const grant = await grantFor({
      server: s.running.publicAddress,
      source: planner,
      childId: id('service-a'),
      scopes: ['docs:read'],
    });
    await assert.rejects(callA('relayed', grant.grantId), (e: grpc.ServiceError) =>
      /ERR_UNAUTHORIZED/.test(e.details),
    );
  });

  it("ending the planner session makes B refuse A's delegated SVID (ERR_REVOKED)", async () => {
    const grant = await grantFor({
      server: s.running.publicAddress,
      source: tool,
      childId: id('service-a'),
      scopes: ['docs:read'],
    });
    const r = await callA('before end', grant.grantId);
    assert.equal((JSON.parse(r.text) as { status: number }).status, 200);
    const delegated = aRedeemed.at(-1)!;
    await s.client.endSession({ sessionId: planner.sessionId, reason: 'task done' });
    const agent = new HopHttpsAgent({ source: delegated, authorize: authorizeId(id('service-b')) });
    closers.push(() => agent.destroy());
    let last: { status: number; body: unknown } | undefined;
    await eventually(
      async () => {
        last = await httpsGet(bPort, agent);
        return last.status !== 200;
      },
      10_000,
      'B refusing after EndSession',
    );
    assert.equal(last?.status, 401);
    assert.equal((last?.body as { error: { code: string } }).error.code, 'ERR_REVOKED');
  });
});
