/**
 * Revocation reaches open connections (issue 13.8): a raw TLS connection was checked once and a gRPC stream ran
 * on its first check, so an ended task kept talking on a connection it already had. Against a real Lanyard
 * server, with the service's revocation state fed by WatchRevocations: EndSession closes an open TLS
 * connection, an open gRPC stream (UNAUTHENTICATED, ERR_REVOKED) and kept-alive HTTP connections (https helper,
 * fastify) of that session, and of a session delegated from it; connections of other sessions stay open. A
 * revocation state that turns stale closes the session connections it can no longer vouch for.
 */
import assert from 'node:assert/strict';
import type * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import Fastify from 'fastify';
import type { ServerX509Source } from '../../../src/client/server-x509-source';
import { StaticX509Source } from '../../../src/client/static-x509-source';
import { toX509Svid } from '../../../src/svid/x509-svid';
import { lanyardFastify } from '../../../src/hop/fastify';
import {
  hopPeerOf,
  HOP_CHANNEL_OPTIONS,
  HOP_ERROR_CODE_METADATA_KEY,
  hopChannelCredentials,
  hopServerCredentials,
  hopService,
} from '../../../src/hop/grpc';
import { liveConnectionCount } from '../../../src/hop/live-peers';
import {
  createHopHttpsServer,
  createHopTlsServer,
  followSource,
  HopHttpsAgent,
  tlsClientOptions,
  tlsServerOptions,
} from '../../../src/hop/tls';
import { authorizeId, authorizeMemberOf, RevocationCache, StaticRevocationList } from '../../../src/verify';
import type { TestServer } from '../../support/test-server';
import { type Agent, delegate, endSession, register, startSession } from '../../support/sessions';
import { EchoClient, type EchoClientApi, EchoService, type Msg } from '../../support/echo-service';
import {
  closeServer,
  DecisionLog,
  id,
  listenLocal,
  serverBundle,
  startLanyard,
  TD,
  workloadSource,
} from '../../support/hop';
import { FakeClock, T0 } from '../../support/clock';

const SERVICE = id('tool-server');

/** An open TLS connection to a hop TLS server that echoes lines; resolves once the first echo came back. */
async function openTls(
  port: number,
  who: Agent,
  bundleOf: () => ReturnType<typeof serverBundle>,
): Promise<{ socket: tls.TLSSocket; closed: Promise<void>; echo(line: string): Promise<string> }> {
  const source = new StaticX509Source(toX509Svid(who.chain, who.key), bundleOf());
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    ...tlsClientOptions({ source, authorize: authorizeId(SERVICE) }),
  });
  socket.setEncoding('utf8');
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  const echo = (line: string): Promise<string> =>
    new Promise((resolve, reject) => {
      socket.once('data', (d: string) => resolve(d.trim()));
      socket.once('close', () => reject(new Error('closed')));
      socket.write(`${line}\n`);
    });
  await new Promise<void>((r) => socket.once('secureConnect', () => r()));
  assert.equal(await echo('hello'), 'hello');
  return { socket, closed, echo };
}

describe('hop: a revocation closes what is already open', function () {
  this.timeout(120_000);
  let s: TestServer;
  let service: ServerX509Source;
  let planner: Agent;
  let tool: Agent;
  const decisions = new DecisionLog();
  const closers: (() => unknown)[] = [];
  const bundle = (): ReturnType<typeof serverBundle> => serverBundle(s);
  const sessionOf = async (wl: Agent = planner): Promise<{ agent: Agent; sessionId: string }> => {
    const { agent, res } = await startSession(s, wl, { scopes: ['docs:read'] });
    return { agent, sessionId: res.sessionId };
  };

  before(async () => {
    s = await startLanyard();
    service = await workloadSource(s, 'tool-server');
    planner = await register(s, 'planner', {
      allowedScopes: ['docs:read'],
      maxDelegationDepth: 1,
      allowedDelegates: [id('tool-runner')],
    });
    tool = await register(s, 'tool-runner', { allowedScopes: ['docs:read'] });
    // The service's revocation state is fed by the server before anything connects.
    await new Promise<void>((resolve) => {
      if (service.revocations.lastSyncAt !== undefined) resolve();
      else service.revocations.once('synced', () => resolve());
    });
  });
  after(async () => {
    for (const c of closers.reverse()) await c();
    await service.close();
    await s.stop();
  });

  const tlsServer = async (revocation = service.revocations): Promise<number> => {
    const server = createHopTlsServer(
      { source: service, revocation, authorize: authorizeMemberOf(TD), onDecision: decisions.listener },
      (socket) => socket.pipe(socket),
    );
    const port = await listenLocal(server);
    closers.push(() => closeServer(server));
    return port;
  };

  it('TLS: EndSession closes the open connection of that session and of one delegated from it, not others', async () => {
    const port = await tlsServer();
    const ended = await sessionOf();
    const child = await delegate(s, ended.agent, tool, ['docs:read']);
    const other = await sessionOf();
    const conn = await openTls(port, ended.agent, bundle);
    const childConn = await openTls(port, child.agent, bundle);
    const otherConn = await openTls(port, other.agent, bundle);

    await endSession(s, ended.agent, ended.sessionId, 'task done');
    await Promise.all([conn.closed, childConn.closed]);
    assert.equal(conn.socket.destroyed, true);
    // A live session's connection keeps working.
    assert.equal(await otherConn.echo('still here'), 'still here');
    const closedDecision = await decisions.next(
      (d) => d.decision === 'deny' && d.transport === 'tls' && d.context?.sessionId === ended.sessionId,
    );
    assert.equal(closedDecision.reason, 'ERR_REVOKED');
    otherConn.socket.end();
  });

  it('gRPC: EndSession ends an open stream with UNAUTHENTICATED, ERR_REVOKED', async () => {
    const grpcServer = new grpc.Server();
    grpcServer.addService(
      EchoService,
      hopService(
        EchoService,
        {
          echo: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => cb(null, call.request),
          chat: (call: grpc.ServerDuplexStream<Msg, Msg>) => {
            const peer = hopPeerOf(call)!;
            call.on('data', (m: Msg) => call.write({ text: `${peer.spiffeId} ${m.text}` }));
          },
        },
        {
          source: service,
          revocation: service.revocations,
          authorize: authorizeMemberOf(TD),
          onDecision: decisions.listener,
        },
      ),
    );
    const port = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync('127.0.0.1:0', hopServerCredentials(service), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    closers.push(() => grpcServer.forceShutdown());
    const ended = await sessionOf();
    const source = new StaticX509Source(toX509Svid(ended.agent.chain, ended.agent.key), bundle());
    const client = new EchoClient(
      `127.0.0.1:${port}`,
      hopChannelCredentials({ source, authorize: authorizeId(SERVICE) }),
      HOP_CHANNEL_OPTIONS,
    ) as unknown as EchoClientApi;
    closers.push(() => client.close());
    const stream = client.chat();
    const failed = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    const first = new Promise<Msg>((resolve) => stream.once('data', resolve));
    stream.write({ text: 'hi' });
    assert.equal((await first).text, `${id('planner')} hi`);

    await endSession(s, ended.agent, ended.sessionId);
    const err = await failed;
    assert.equal(err.code, grpc.status.UNAUTHENTICATED);
    assert.equal(err.metadata.get(HOP_ERROR_CODE_METADATA_KEY)[0], 'ERR_REVOKED');
    assert.match(err.details, /has ended/);
  });

  it('HTTP: EndSession closes kept-alive connections (https helper and fastify); the next request is refused', async () => {
    const httpsServer = createHopHttpsServer(
      { source: service, revocation: service.revocations, authorize: authorizeMemberOf(TD) },
      (_req, res) => res.end('ok'),
    );
    const app = Fastify({ https: tlsServerOptions(service) });
    await app.register(lanyardFastify, {
      source: service,
      revocation: service.revocations,
      authorize: authorizeMemberOf(TD),
    });
    app.get('/docs', () => ({ ok: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    followSource(app.server as tls.Server, service);
    closers.push(() => app.close());
    const httpsPort = await listenLocal(httpsServer);
    closers.push(() => closeServer(httpsServer));
    const ports = [httpsPort, (app.server.address() as AddressInfo).port];

    for (const port of ports) {
      const ended = await sessionOf();
      const source = new StaticX509Source(toX509Svid(ended.agent.chain, ended.agent.key), bundle());
      const agent = new HopHttpsAgent({ source, authorize: authorizeId(SERVICE) });
      closers.push(() => agent.destroy());
      const get = (): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
          https
            .get({ host: '127.0.0.1', port, path: '/docs', agent }, (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (d: string) => (body += d));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
            })
            .on('error', reject);
        });
      assert.equal((await get()).status, 200);
      const pooled = Object.values(agent.freeSockets).flat()[0];
      assert.ok(pooled, 'kept alive');
      const closed = new Promise((r) => pooled.once('close', r));
      await endSession(s, ended.agent, ended.sessionId);
      await closed;
      const refused = await get();
      assert.equal(refused.status, 401);
      assert.match(refused.body, /ERR_REVOKED/);
    }
  });

  it('client side: a HopHttpsAgent connection to a server revoked since is cut mid-response', async () => {
    const server = createHopHttpsServer(
      { source: service, revocation: service.revocations, authorize: authorizeMemberOf(TD) },
      // A response that never ends: only the revocation stops it.
      (_req, res) => res.write('first chunk'),
    );
    const port = await listenLocal(server);
    closers.push(() => closeServer(server));
    const caller = await sessionOf();
    const list = new StaticRevocationList();
    const source = new StaticX509Source(toX509Svid(caller.agent.chain, caller.agent.key), bundle());
    const agent = new HopHttpsAgent({ source, authorize: authorizeId(SERVICE), revocation: list });
    closers.push(() => agent.destroy());
    const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
      https.get({ host: '127.0.0.1', port, path: '/', agent }, resolve).on('error', reject),
    );
    await new Promise((r) => res.once('data', r));
    const cut = new Promise((r) => res.once('close', r));
    list.revokeSerial(service.getX509Svid().chain[0]!.serialHex);
    await cut;
    assert.equal(res.complete, false);
    assert.equal(res.socket?.destroyed ?? true, true);
  });

  it('a revocation state that turns stale closes the open session connections, not workload ones', async () => {
    const clock = new FakeClock(T0);
    const cache = new RevocationCache({ clock: clock.read, checkIntervalMs: 0 });
    cache.applyFullState([], 0);
    const port = await tlsServer(cache);
    const live = await sessionOf();
    const sessionConn = await openTls(port, live.agent, bundle);
    const workloadConn = await openTls(port, planner, bundle);
    assert.equal(liveConnectionCount(cache), 2);

    clock.set(new Date(T0.getTime() + 61_000));
    assert.equal(cache.checkStaleness(), true);
    await sessionConn.closed;
    assert.equal(await workloadConn.echo('workload'), 'workload');
    const d = await decisions.next(
      (x) =>
        x.decision === 'deny' &&
        x.context?.sessionId === live.sessionId &&
        x.reason === 'ERR_REVOCATION_STALE',
    );
    assert.equal(d.transport, 'tls');
    workloadConn.socket.end();
    await workloadConn.closed;
    assert.equal(liveConnectionCount(cache), 0);
    cache.close();
  });
});
