/**
 * lanyardFastify per request on kept-alive connections: the authorizer runs for every request with that request's
 * route pattern and method, a refusal on a connection whose earlier requests were accepted is a refusal with its
 * record and no handler run, a 404 is authorized for its own path, and the service name follows the source's
 * current SVID. What any per-route or per-connection caching of the request info must keep.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { lanyardFastify, type HopFastifyOptions } from '../../../src/hop/fastify';
import type { HopDecision } from '../../../src/hop/decision';
import type { HopRequest } from '../../../src/hop/policy';
import { tlsServerOptions } from '../../../src/hop/tls';
import { AuthorizationError } from '../../../src/errors';
import type { Authorizer } from '../../../src/verify/authorize';
import { toX509Svid } from '../../../src/svid/x509-svid';
import type { StaticX509Source } from '../../../src/client/static-x509-source';
import { createPki, issueSvid } from '../../support/pki';
import { httpsCall, jsonOf, pkiSource, svidAgent } from '../../support/hop';

const TD = 'routes.test';
const sid = (name: string): string => `spiffe://${TD}/${name}`;

describe('hop: fastify, the request info of each route', function () {
  this.timeout(30_000);
  const pki = createPki(TD);
  const roots = pki.bundle.toPem();
  const closers: (() => unknown)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  /** A fastify app with the plugin, three routes (one under a prefix) and kept-alive connections. */
  async function app(
    source: StaticX509Source,
    options: Omit<HopFastifyOptions, 'source'>,
  ): Promise<{ app: FastifyInstance; port: number; ran: string[] }> {
    const ran: string[] = [];
    const a = Fastify({ https: tlsServerOptions(source), keepAliveTimeout: 60_000 });
    await a.register(lanyardFastify, { source, ...options });
    a.get('/docs/:id', async (request) => {
      ran.push(`GET ${request.url}`);
      return { agent: request.agent?.spiffeId };
    });
    a.delete('/docs/:id', async (request) => {
      ran.push(`DELETE ${request.url}`);
      return { deleted: true };
    });
    await a.register(
      async (v1) => {
        v1.get('/items/:n', async (request) => {
          ran.push(`GET ${request.url}`);
          return { ok: true };
        });
      },
      { prefix: '/v1' },
    );
    await a.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => a.close());
    return { app: a, port: (a.server.address() as AddressInfo).port, ran };
  }

  it('each request is authorized for its own route and method (HEAD as GET), a 404 for its own path', async () => {
    const source = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const seen: HopRequest[] = [];
    const { port } = await app(source, {
      authorize: (_peer, request) => {
        seen.push(request);
        return { allow: true };
      },
    });
    const agent = svidAgent(issueSvid(pki, sid('caller')), roots);
    closers.push(() => agent.destroy());
    const calls: [string, string][] = [
      ['GET', '/docs/1'],
      ['GET', '/docs/2'],
      ['DELETE', '/docs/1'],
      ['HEAD', '/docs/3'],
      ['GET', '/v1/items/7'],
      ['GET', '/Nothing/Here'],
      ['GET', '/nothing/there'],
      ['GET', '/docs/4'],
    ];
    const statuses: number[] = [];
    let socket: unknown;
    for (const [method, path] of calls) {
      const r = await httpsCall(port, { agent, method, path });
      statuses.push(r.status ?? 0);
      socket ??= r.socket;
      assert.equal(r.socket, socket, 'every request rides the first connection');
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 404, 404, 200]);
    assert.deepEqual(
      seen.map((r) => r.action),
      [
        'GET /docs/:id',
        'GET /docs/:id',
        'DELETE /docs/:id',
        'GET /docs/:id',
        'GET /v1/items/:n',
        'GET /Nothing/Here',
        'GET /nothing/there',
        'GET /docs/:id',
      ],
    );
    for (const r of seen) {
      assert.equal(r.transport, 'http');
      assert.equal(r.service, sid('api'));
    }
  });

  it('a route’s authorizer refusing on a kept-alive connection: 403 with its record, the handler never runs', async () => {
    const source = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const decisions: HopDecision[] = [];
    let calls = 0;
    const { port, ran } = await app(source, {
      // Changes its mind on the third request and back on the fourth: nothing of a verdict may stand in for it.
      authorize: ((peer) => {
        if (++calls === 3) throw new AuthorizationError(`${peer.id.toString()} is off duty`);
      }) satisfies Authorizer,
      onDecision: (d) => decisions.push(d),
    });
    const agent = svidAgent(issueSvid(pki, sid('caller')), roots);
    closers.push(() => agent.destroy());
    const replies = [];
    for (const n of [1, 2, 3, 4]) replies.push(await httpsCall(port, { agent, path: `/docs/${n}` }));
    assert.deepEqual(
      replies.map((r) => r.status),
      [200, 200, 403, 200],
    );
    assert.equal(replies[2]!.socket, replies[0]!.socket, 'the refusal came on the kept-alive connection');
    assert.equal(jsonOf(replies[2]!).error?.code, 'ERR_UNAUTHORIZED');
    assert.deepEqual(ran, ['GET /docs/1', 'GET /docs/2', 'GET /docs/4']);
    assert.deepEqual(
      decisions.map((d) => [d.decision, d.action, d.peerId, d.reason]),
      [
        ['allow', 'GET /docs/:id', sid('caller'), undefined],
        ['allow', 'GET /docs/:id', sid('caller'), undefined],
        ['deny', 'GET /docs/:id', sid('caller'), 'ERR_UNAUTHORIZED'],
        ['allow', 'GET /docs/:id', sid('caller'), undefined],
      ],
    );
  });

  it('the service name a route’s requests carry follows the source’s SVID to a new ID', async () => {
    const source = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const services: string[] = [];
    const { port } = await app(source, {
      authorize: (_peer, request) => {
        services.push(request.service);
        return { allow: true };
      },
    });
    const agent = svidAgent(issueSvid(pki, sid('caller')), roots);
    closers.push(() => agent.destroy());
    assert.equal((await httpsCall(port, { agent, path: '/docs/1' })).status, 200);
    const renamed = issueSvid(pki, sid('api-v2'));
    source.set(toX509Svid(renamed.chain, renamed.key.privateKey));
    const after = await httpsCall(port, { agent, path: '/docs/1' });
    assert.equal(after.status, 200);
    assert.deepEqual(services, [sid('api'), sid('api-v2')]);
  });
});
