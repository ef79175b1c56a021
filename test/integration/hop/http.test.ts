/**
 * HTTP at a hop, against a real Lanyard server: the https server helper, the express middleware and the fastify
 * plugin, each with real https clients on 127.0.0.1 (HopHttpsAgent presenting a ServerX509Source's SVID).
 * Accepts with `req.agent`; 401 without or with an invalid certificate; 403 when the authorizer or the policy
 * refuses; JSON error bodies naming the code; revocation closing a kept-alive connection; rotation of the server's SVID without re-binding.
 */
import assert from 'node:assert/strict';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type * as tls from 'node:tls';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import type { ServerX509Source } from '../../../src/client/server-x509-source';
import type { X509Source } from '../../../src/client/x509-source';
import { lanyardExpress } from '../../../src/hop/express';
import { lanyardFastify } from '../../../src/hop/fastify';
import type { HopPeer } from '../../../src/hop/peer';
import {
  createHopHttpsServer,
  followSource,
  HopHttpsAgent,
  peerOf,
  tlsServerOptions,
} from '../../../src/hop/tls';
import { authorizeId, authorizeOneOf } from '../../../src/verify';
import type { TestServer } from '../../support/test-server';
import { createPki, issueSvid } from '../../support/pki';
import {
  closeServer,
  DecisionLog,
  id,
  listenHttps,
  listenLocal,
  pkiSource,
  serverBundle,
  startLanyard,
  TD,
  workloadSource,
} from '../../support/hop';

interface Answer {
  status: number;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
  serverSerial?: string;
}

function get(
  port: number,
  path: string,
  agent: https.Agent | undefined,
  extra: https.RequestOptions = {},
  method = 'GET',
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, method, ...(agent !== undefined ? { agent } : {}), ...extra },
      (res) => {
        const cert = (res.socket as tls.TLSSocket | null)?.getPeerCertificate?.();
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(text) as Answer['body'],
            ...(cert?.serialNumber !== undefined
              ? { serverSerial: cert.serialNumber.toLowerCase().replace(/^0+/, '') }
              : {}),
          });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const agentFor = (source: X509Source, server = id('api')): HopHttpsAgent =>
  new HopHttpsAgent({ source, authorize: authorizeId(server), caTrustDomains: [TD] });

function describeAgent(peer: HopPeer | undefined): Record<string, unknown> {
  return {
    spiffeId: peer?.spiffeId,
    principal: peer?.context?.principal.id,
    scopes: peer?.context?.scopes,
    policyVersion: peer?.policyVersion,
  };
}

describe('hop: https server, express middleware and fastify plugin', function () {
  this.timeout(60_000);
  let s: TestServer;
  let api: ServerX509Source;
  let caller: ServerX509Source;
  let stranger: ServerX509Source;
  const agents: https.Agent[] = [];
  const agent = (source: X509Source): HopHttpsAgent => {
    const a = agentFor(source);
    agents.push(a);
    return a;
  };

  before(async () => {
    s = await startLanyard();
    api = await workloadSource(s, 'api');
    caller = await workloadSource(s, 'planner', { allowedScopes: ['docs:read'] });
    stranger = await workloadSource(s, 'stranger');
  });
  after(async () => {
    for (const a of agents) a.destroy();
    await Promise.all([api.close(), caller.close(), stranger.close()]);
    await s.stop();
  });

  /** The refusals every HTTP helper must make, in the same words. */
  async function refusals(port: number, decisions: DecisionLog): Promise<void> {
    // No client certificate.
    const none = await get(port, '/docs/1', undefined, {
      ca: serverBundle(s).toPem(),
      checkServerIdentity: () => undefined,
    });
    assert.equal(none.status, 401);
    assert.equal(none.body.error?.code, 'ERR_CLIENT_CERT_REQUIRED');
    // A foreign trust domain.
    const foreign = createPki('evil.test');
    const evil = new HopHttpsAgent({
      source: pkiSource(issueSvid(foreign, 'spiffe://evil.test/planner'), [serverBundle(s), foreign.bundle]),
      authorize: authorizeId(id('api')),
      caTrustDomains: [TD],
    });
    agents.push(evil);
    const f = await get(port, '/docs/1', evil);
    assert.equal(f.status, 401);
    assert.equal(f.body.error?.code, 'ERR_BUNDLE_NOT_FOUND');
    // Authorized by nobody.
    const no = await get(port, '/docs/1', agent(stranger));
    assert.equal(no.status, 403);
    assert.equal(no.body.error?.code, 'ERR_UNAUTHORIZED');
    assert.match(no.body.error?.message ?? '', /stranger/);
    const d = await decisions.next((x) => x.peerId === id('stranger'));
    assert.equal(d.decision, 'deny');
    assert.equal(d.transport, 'http');
  }

  it('https server helper: accepts with the peer, refuses with 401/403 JSON', async () => {
    const decisions = new DecisionLog();
    const server = createHopHttpsServer(
      {
        source: api,
        authorize: authorizeOneOf(id('planner'), 'spiffe://evil.test/planner'),
        onDecision: decisions.listener,
      },
      (req, res, peer) => {
        assert.equal(peerOf(req), peer);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(describeAgent(peer)));
      },
    );
    const port = await listenLocal(server);
    try {
      const ok = await get(port, '/docs/1?x=1', agent(caller));
      assert.equal(ok.status, 200);
      assert.equal(ok.body.spiffeId, id('planner'));
      assert.deepEqual(ok.body.scopes, ['docs:read']);
      const d = await decisions.next((x) => x.decision === 'allow');
      assert.equal(d.action, 'GET /docs/1');
      await refusals(port, decisions);
    } finally {
      await closeServer(server);
    }
  });

  it('express: req.agent in handlers, refusals before any route runs, revocation on a kept-alive connection', async () => {
    const victim = await workloadSource(s, 'planner-2');
    const decisions = new DecisionLog();
    let routeRuns = 0;
    const app = express();
    app.use(
      lanyardExpress({
        source: api,
        revocation: api.revocations,
        authorize: authorizeOneOf(id('planner'), id('planner-2'), 'spiffe://evil.test/planner'),
        onDecision: decisions.listener,
      }),
    );
    app.get('/docs/:id', (req, res) => {
      routeRuns += 1;
      res.json({ ...describeAgent(req.agent), doc: req.params.id });
    });
    const { server, port } = await listenHttps(api, app);
    followSource(server, api);
    try {
      const ok = await get(port, '/docs/7', agent(caller));
      assert.equal(ok.status, 200);
      assert.equal(ok.body.spiffeId, id('planner'));
      assert.equal(ok.body.doc, '7');
      const runsBefore = routeRuns;
      await refusals(port, decisions);
      assert.equal(routeRuns, runsBefore, 'no route ran for a refused request');

      // One kept-alive connection: the revocation closes it, and the next request (on a new one) is refused.
      const keep = agent(victim);
      assert.equal((await get(port, '/docs/1', keep)).status, 200);
      const pooled = Object.values(keep.freeSockets).flat()[0];
      assert.ok(pooled, 'the connection is kept alive');
      const closed = new Promise((r) => pooled.once('close', r));
      const serial = victim.getX509Svid().chain[0]!.serialHex;
      await s.client.revokeSvid({ serialHex: serial, reason: 'test' });
      await closed;
      const last = await get(port, '/docs/1', keep);
      assert.equal(last.status, 401);
      assert.equal(last.body.error?.code, 'ERR_REVOKED');
    } finally {
      await closeServer(server);
      await victim.close();
    }
  });

  describe('fastify', () => {
    let app: FastifyInstance;
    let port: number;
    const decisions = new DecisionLog();
    const actions: string[] = [];

    before(async () => {
      app = Fastify({ https: tlsServerOptions(api) });
      await app.register(lanyardFastify, {
        source: api,
        revocation: api.revocations,
        authorize: async (peer, req) => {
          actions.push(req.action ?? '');
          await Promise.resolve();
          if (peer.id.toString() === id('stranger'))
            return { allow: false, reason: 'not on the list', policyVersion: 'p1' };
          if (req.action === 'DELETE /docs/:id')
            return { allow: false, reason: 'read only', policyVersion: 'p1' };
          return { allow: true, policyVersion: 'p1' };
        },
        onDecision: decisions.listener,
      });
      app.get('/docs/:id', async (request) => ({ ...describeAgent(request.agent) }));
      app.delete('/docs/:id', async () => ({ deleted: true }));
      await app.listen({ port: 0, host: '127.0.0.1' });
      followSource(app.server as unknown as tls.Server, api);
      port = (app.server.address() as AddressInfo).port;
    });
    after(() => app.close());

    it('sets request.agent and the policy sees the route pattern', async () => {
      const ok = await get(port, '/docs/42', agent(caller));
      assert.equal(ok.status, 200);
      assert.equal(ok.body.spiffeId, id('planner'));
      assert.equal(ok.body.policyVersion, 'p1');
      assert.ok(actions.includes('GET /docs/:id'));
    });

    it('403 with the policy reason for a denied route, 401 without a certificate, 403 for a denied peer', async () => {
      const del = await get(port, '/docs/42', agent(caller), {}, 'DELETE');
      assert.equal(del.status, 403);
      assert.equal(del.body.error?.code, 'ERR_POLICY_DENIED');
      assert.match(del.body.error?.message ?? '', /read only/);
      const d = await decisions.next((x) => x.action === 'DELETE /docs/:id');
      assert.equal(d.reason, 'read only');
      assert.equal(d.policyVersion, 'p1');

      const none = await get(port, '/docs/1', undefined, {
        ca: serverBundle(s).toPem(),
        checkServerIdentity: () => undefined,
      });
      assert.equal(none.status, 401);
      assert.equal(none.body.error?.code, 'ERR_CLIENT_CERT_REQUIRED');
      const no = await get(port, '/docs/1', agent(stranger));
      assert.equal(no.status, 403);
      assert.equal(no.body.error?.code, 'ERR_POLICY_DENIED');
    });

    it('rotation: after the service renews, a new connection gets the new certificate from the same listener', async () => {
      const before = await get(port, '/docs/1', agent(caller));
      const oldSerial = api.getX509Svid().chain[0]!.serialHex;
      assert.equal(before.serverSerial, oldSerial);
      await api.renewNow();
      const after = await get(port, '/docs/1', agent(caller));
      assert.equal(after.status, 200);
      assert.equal(after.serverSerial, api.getX509Svid().chain[0]!.serialHex);
      assert.notEqual(after.serverSerial, oldSerial);
    });
  });
});
