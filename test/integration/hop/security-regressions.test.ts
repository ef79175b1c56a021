/**
 * Regressions for the hop helpers' security review, each reproducing a finding on real servers on 127.0.0.1:
 *  - HIGH: a TLS client check that a pooled socket or a resumed session skipped (the request went to a server
 *    its authorizer refuses), and a pooled HopHttpsAgent connection to a server revoked since;
 *  - MEDIUM: request targets a router dispatches to a forbidden route under another spelling (case, trailing
 *    slash, escapes) or that mean different things to different parsers (dot segments, encoded `/`,
 *    absolute-form);
 *  - LOW: a client resuming its TLS session presents only its leaf and was refused as ERR_UNKNOWN_AUTHORITY.
 */
import assert from 'node:assert/strict';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import type { StaticX509Source } from '../../../src/client/static-x509-source';
import { ErrorCode } from '../../../src/errors';
import { lanyardExpress } from '../../../src/hop/express';
import { lanyardFastify } from '../../../src/hop/fastify';
import { canonicalRequestPath } from '../../../src/hop/http-action';
import type { HopPolicy } from '../../../src/hop/policy';
import {
  createHopHttpsServer,
  createHopTlsServer,
  followSource,
  HopHttpsAgent,
  tlsClientOptions,
  tlsServerOptions,
} from '../../../src/hop/tls';
import { SpiffeId } from '../../../src/spiffe';
import { authorizeAny, authorizeId } from '../../../src/verify/authorize';
import { StaticRevocationList } from '../../../src/verify/revocation';
import { createPki, issueSvid, type TrustDomainPki } from '../../support/pki';
import {
  closeServer,
  DecisionLog,
  httpsCall,
  jsonOf,
  listenHttps,
  listenLocal,
  pkiSource,
  svidClientOptions,
  tlsExchange,
  type TlsExchange,
} from '../../support/hop';
import { assertRefusal } from '../../support/refusal';

const TD = 'td.test';
const sid = (name: string): string => `spiffe://${TD}/${name}`;

describe('hop security regressions', () => {
  let pki: TrustDomainPki;
  let servers: https.Server[];
  const source = (name: string): StaticX509Source => pkiSource(issueSvid(pki, sid(name)), pki.bundle);

  beforeEach(() => {
    pki = createPki(TD);
    servers = [];
  });
  afterEach(async () => {
    await Promise.all(servers.map(closeServer));
  });

  async function hopServer(
    name: string,
    options: Partial<Parameters<typeof createHopHttpsServer>[0]> = {},
  ): Promise<{ port: number; source: StaticX509Source }> {
    const src = source(name);
    const server = createHopHttpsServer(
      { source: src, authorize: authorizeAny(), ...options },
      (req, res, p) => res.end(`${name} serves ${p.spiffeId} ${req.method} ${req.url}`),
    );
    servers.push(server);
    return { port: await listenLocal(server), source: src };
  }

  describe('HIGH: the TLS client check is never skipped', () => {
    it('tlsClientOptions never rides a pooled socket a check for another identity accepted', async () => {
      const evil = await hopServer('evil');
      const client = source('client');
      const first = await httpsCall(
        evil.port,
        tlsClientOptions({ source: client, authorize: authorizeAny() }),
      );
      assert.equal(first.status, 200, first.error?.message);
      const billing = authorizeId(SpiffeId.parse(sid('billing')));
      const second = await httpsCall(evil.port, tlsClientOptions({ source: client, authorize: billing }));
      assert.equal(second.status, undefined, `evil answered: ${second.text}`);
      assertRefusal(second.error, ErrorCode.UNAUTHORIZED);
    });

    it('a caller-supplied keep-alive agent shares neither sockets nor TLS sessions between checks', async () => {
      const evil = await hopServer('evil');
      const client = source('client');
      const shared = new https.Agent({ keepAlive: true });
      try {
        const any = (): https.RequestOptions => ({
          ...tlsClientOptions({ source: client, authorize: authorizeAny() }),
          agent: shared,
        });
        const first = await httpsCall(evil.port, any());
        assert.equal(first.status, 200, first.error?.message);
        const billing = authorizeId(SpiffeId.parse(sid('billing')));
        const pooled = await httpsCall(evil.port, {
          ...tlsClientOptions({ source: client, authorize: billing }),
          agent: shared,
        });
        assertRefusal(pooled.error, ErrorCode.UNAUTHORIZED);
        // The reproduction's second step: the pool gone, a cached session would have skipped the check.
        shared.destroy();
        const fresh = await httpsCall(evil.port, {
          ...tlsClientOptions({ source: client, authorize: billing }),
          agent: shared,
        });
        assertRefusal(fresh.error, ErrorCode.UNAUTHORIZED);
        const again = await httpsCall(evil.port, any());
        assert.equal(again.status, 200);
        assert.equal(again.reused, false, 'a TLS session was resumed');
      } finally {
        shared.destroy();
      }
    });

    it('HopHttpsAgent re-verifies a pooled connection per request: a server revoked since is refused', async () => {
      const api = await hopServer('api');
      const revocation = new StaticRevocationList();
      const decisions = new DecisionLog();
      const agent = new HopHttpsAgent({
        source: source('client'),
        authorize: authorizeId(SpiffeId.parse(sid('api'))),
        revocation,
        onDecision: decisions.listener,
      });
      try {
        const first = await httpsCall(api.port, { agent });
        assert.equal(first.status, 200, first.error?.message);
        const second = await httpsCall(api.port, { agent });
        assert.equal(second.status, 200, 'a pooled connection to a good server keeps serving');
        revocation.revokeSerial(api.source.getX509Svid().chain[0]!.serialHex);
        const third = await httpsCall(api.port, { agent });
        assert.equal(third.status, undefined, `the revoked server answered: ${third.text}`);
        assertRefusal(third.error, ErrorCode.REVOKED);
        assert.ok(decisions.denials().some((d) => d.reason === ErrorCode.REVOKED));
      } finally {
        agent.destroy();
      }
    });

    it('HopHttpsAgent never offers a TLS session, so every connection is a full, checked handshake', async () => {
      const api = await hopServer('api');
      const agent = new HopHttpsAgent(
        { source: source('client'), authorize: authorizeId(SpiffeId.parse(sid('api'))) },
        { keepAlive: false },
      );
      try {
        for (let i = 0; i < 3; i++) {
          const r = await httpsCall(api.port, { agent });
          assert.equal(r.status, 200, r.error?.message);
          assert.equal(r.reused, false);
        }
      } finally {
        agent.destroy();
      }
    });
  });

  describe('MEDIUM: the policy action is the route a router dispatches to', () => {
    const forbidAdmin: HopPolicy = (_peer, request) => ({
      allow: request.action !== 'DELETE /admin/users' && request.action !== 'GET /secret',
      reason: 'admin is forbidden',
    });

    async function serve(app: express.Express, src: StaticX509Source): Promise<number> {
      const { server, port } = await listenHttps(src, app);
      followSource(server, src);
      servers.push(server);
      return port;
    }

    it('express: other spellings of a forbidden route are refused, unclear targets are 400', async () => {
      const src = source('api');
      const app = express();
      app.use(lanyardExpress({ source: src, authorize: forbidAdmin }));
      app.delete('/admin/users', (_req, res) => res.send('ALL USERS DELETED'));
      app.get('/secret', (_req, res) => res.send('the secret'));
      app.use((_req, res) => res.send('other'));
      const port = await serve(app, src);
      const agent = new HopHttpsAgent({ source: source('intern'), authorize: authorizeAny() });
      try {
        for (const path of [
          '/admin/users',
          '/Admin/users',
          '/ADMIN/USERS',
          '/admin/users/',
          '/admin/%75sers?x=1',
        ]) {
          const r = await httpsCall(port, { agent, method: 'DELETE', path });
          assert.equal(r.status, 403, `${path}: ${r.status} ${r.text}`);
          assert.equal(jsonOf(r).error?.code, ErrorCode.POLICY_DENIED);
        }
        for (const path of [
          '/public/../admin/users',
          '/admin%2fusers',
          '/admin/./users',
          '/admin//users',
          '/x/%2e%2E/admin/users',
        ]) {
          const r = await httpsCall(port, { agent, method: 'DELETE', path });
          assert.equal(r.status, 400, `${path}: ${r.status} ${r.text}`);
          assert.equal(jsonOf(r).error?.code, ErrorCode.INVALID_REQUEST_TARGET);
        }
        // express answers HEAD with the GET handler: the policy sees GET.
        const head = await httpsCall(port, { agent, method: 'HEAD', path: '/Secret' });
        assert.equal(head.status, 403);
        const other = await httpsCall(port, { agent, method: 'DELETE', path: '/admin/groups' });
        assert.equal(other.status, 200);
      } finally {
        agent.destroy();
      }
    });

    it('express: under a mounted router the action is the whole path; as route middleware, the route pattern', async () => {
      const src = source('api');
      const seen: string[] = [];
      const record: HopPolicy = (peer, request) => {
        seen.push(request.action ?? '');
        return forbidAdmin(peer, request);
      };
      const router = express.Router();
      router.use(lanyardExpress({ source: src, authorize: record }));
      router.delete('/users', (_req, res) => res.send('ALL USERS DELETED'));
      const app = express();
      app.use('/admin', router);
      app.delete('/docs/:id', lanyardExpress({ source: src, authorize: record }), (_req, res) =>
        res.send('ok'),
      );
      const port = await serve(app, src);
      const agent = new HopHttpsAgent({ source: source('intern'), authorize: authorizeAny() });
      try {
        const mounted = await httpsCall(port, { agent, method: 'DELETE', path: '/Admin/Users/' });
        assert.equal(mounted.status, 403, mounted.text);
        const route = await httpsCall(port, { agent, method: 'DELETE', path: '/docs/42' });
        assert.equal(route.status, 200, route.text);
        assert.deepEqual(seen, ['DELETE /admin/users', 'DELETE /docs/:id']);
      } finally {
        agent.destroy();
      }
    });

    it('createHopHttpsServer: dot segments and absolute-form targets are 400 before any policy runs', async () => {
      const decisions = new DecisionLog();
      const api = await hopServer('api', { authorize: forbidAdmin, onDecision: decisions.listener });
      const agent = new HopHttpsAgent({ source: source('intern'), authorize: authorizeAny() });
      try {
        for (const path of [
          '/public/../admin/users',
          `https://127.0.0.1:${api.port}/admin/users`,
          '/public\\..\\admin',
        ]) {
          const r = await httpsCall(api.port, { agent, method: 'DELETE', path });
          assert.equal(r.status, 400, `${path}: ${r.status} ${r.text}`);
          assert.equal(jsonOf(r).error?.code, ErrorCode.INVALID_REQUEST_TARGET);
        }
        assert.equal(decisions.all.length, 0, 'no policy decision on a refused target');
        const denied = await httpsCall(api.port, { agent, method: 'DELETE', path: '/ADMIN/users/' });
        assert.equal(denied.status, 403);
        const allowed = await httpsCall(api.port, { agent, method: 'GET', path: '/admin/users?page=2' });
        assert.equal(allowed.status, 200);
      } finally {
        agent.destroy();
      }
    });

    it('fastify: the route pattern when one matched, else the canonical path (unclear targets 400)', async () => {
      const src = source('api');
      const seen: string[] = [];
      const app = Fastify({ https: tlsServerOptions(src), routerOptions: { ignoreTrailingSlash: true } });
      await app.register(lanyardFastify, {
        source: src,
        authorize: (peer, request) => {
          seen.push(request.action ?? '');
          return forbidAdmin(peer, request);
        },
      });
      app.delete('/admin/users', () => 'ALL USERS DELETED');
      await app.listen({ port: 0, host: '127.0.0.1' });
      const port = (app.server.address() as AddressInfo).port;
      const agent = new HopHttpsAgent({ source: source('intern'), authorize: authorizeAny() });
      try {
        const slash = await httpsCall(port, { agent, method: 'DELETE', path: '/admin/users/' });
        assert.equal(slash.status, 403, slash.text);
        const dots = await httpsCall(port, { agent, method: 'DELETE', path: '/x/../admin/users' });
        assert.equal(dots.status, 400, dots.text);
        const unknown = await httpsCall(port, { agent, method: 'GET', path: '/Nothing/' });
        assert.equal(unknown.status, 404, unknown.text);
        assert.deepEqual(seen, ['DELETE /admin/users', 'GET /Nothing']);
      } finally {
        agent.destroy();
        await app.close();
      }
    });

    it('canonicalRequestPath: one form per meaning, refusal for anything ambiguous', () => {
      assert.equal(canonicalRequestPath('/'), '/');
      assert.equal(canonicalRequestPath('/A/b/?q=/../'), '/a/b');
      assert.equal(canonicalRequestPath('/A/%7e%41%3a', { caseSensitive: true }), '/A/~A%3A');
      assert.equal(canonicalRequestPath('/a/%3A'), '/a/%3a');
      for (const bad of [
        '',
        '*',
        'example.com:443',
        'http://x/a',
        '/a/..',
        '/a/%2E',
        '/%2F',
        '/%5c',
        '/a\\b',
        '/a//b',
        '/a%',
        '/a%g0',
        '/a#f',
        '/a b',
      ]) {
        assert.throws(
          () => canonicalRequestPath(bad),
          (e: unknown) => {
            assertRefusal(e, ErrorCode.INVALID_REQUEST_TARGET);
            return true;
          },
          bad,
        );
      }
    });
  });

  describe('LOW: a resumed client session (only the leaf presented)', () => {
    it('createHopTlsServer accepts a resumed session and still refuses it once revoked', async () => {
      const revocation = new StaticRevocationList();
      const src = source('api');
      const server = createHopTlsServer(
        { source: src, authorize: authorizeAny(), revocation },
        (socket, peer) => socket.end(`hello ${peer.spiffeId}\n`),
      );
      const port = await listenLocal(server);
      const client = issueSvid(pki, sid('client'));
      const connect = (session?: Buffer): Promise<TlsExchange> =>
        tlsExchange(port, client, pki.bundle.toPem(), session);
      try {
        const first = await connect();
        assert.equal(first.reply, `hello ${sid('client')}\n`);
        assert.ok(first.session !== undefined, 'the server issued no session ticket');
        const resumed = await connect(first.session);
        assert.equal(resumed.reused, true, 'the session was not resumed');
        assert.equal(resumed.reply, `hello ${sid('client')}\n`);
        revocation.revokeSerial(client.cert.serialHex);
        const revoked = await connect(first.session);
        assert.equal(revoked.reused, true);
        assert.equal(revoked.reply, '', 'a revoked client was served');
      } finally {
        await closeServer(server);
      }
    });

    it('is accepted with the service intermediates; a revoked one is still refused', async () => {
      const revocation = new StaticRevocationList();
      const decisions = new DecisionLog();
      const api = await hopServer('api', { revocation, onDecision: decisions.listener });
      const client = issueSvid(pki, sid('client'));
      // A plain Node client with session caching, as any https client would be.
      const agent = new https.Agent({ keepAlive: false });
      const options: https.RequestOptions = { agent, ...svidClientOptions(client, pki.bundle.toPem()) };
      try {
        const first = await httpsCall(api.port, options);
        assert.equal(first.status, 200, first.text ?? first.error?.message);
        assert.equal(first.reused, false);
        const resumed = await httpsCall(api.port, options);
        assert.equal(resumed.reused, true, 'the client did not resume its session');
        assert.equal(resumed.status, 200, resumed.text);
        revocation.revokeSerial(client.cert.serialHex);
        const revoked = await httpsCall(api.port, options);
        assert.equal(revoked.reused, true);
        assert.equal(revoked.status, 401, revoked.text);
        assert.equal(jsonOf(revoked).error?.code, ErrorCode.REVOKED);
        assert.ok(decisions.denials().some((d) => d.reason === ErrorCode.REVOKED));
      } finally {
        agent.destroy();
      }
    });
  });
});
