/**
 * peerOf for requests the HTTP helpers let through: the mark is per request, not per connection. A request the
 * helper refused reads undefined even on a connection whose previous request it accepted, a copy of an accepted
 * request is not accepted, and a request no helper saw reads undefined. The mark is a private field of the
 * request (object-slot.ts), no longer a WeakMap entry.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { lanyardExpress } from '../../../src/hop/express';
import { lanyardFastify } from '../../../src/hop/fastify';
import type { HopPeer } from '../../../src/hop/peer';
import type { HopPolicy } from '../../../src/hop/policy';
import { peerOf, tlsServerOptions } from '../../../src/hop/tls';
import { createPki, issueSvid } from '../../support/pki';
import { closeServer, httpsCall, jsonOf, listenHttps, pkiSource, svidAgent } from '../../support/hop';

const TD = 'mark.test';
const sid = (name: string): string => `spiffe://${TD}/${name}`;

/** Allows every peer except for the action `GET /refused`. */
const allowButRefused: HopPolicy = (_peer, request) =>
  request.action === 'GET /refused' ? { allow: false, reason: 'refused to everyone' } : { allow: true };

describe('hop: peerOf for HTTP requests', function () {
  this.timeout(30_000);
  const pki = createPki(TD);
  const roots = pki.bundle.toPem();
  const closers: (() => unknown)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  /** What each finished request's peerOf read, in order (the refused ones finish without a handler). */
  type Finished = { path: string; peer: HopPeer | undefined }[];

  it('express: the handler’s peerOf(req) is req.agent; a refused request on the same connection reads undefined', async () => {
    const source = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const finished: Finished = [];
    const app = express();
    // Before the helper, so it sees refused requests too, after their answer.
    app.use((req, res, next) => {
      res.once('finish', () => finished.push({ path: req.path, peer: peerOf(req) }));
      next();
    });
    app.use(lanyardExpress({ source, authorize: allowButRefused, caseSensitive: true }));
    app.get('/:name', (req, res) => {
      const copy = { ...req } as unknown as IncomingMessage;
      res.json({
        same: peerOf(req) !== undefined && peerOf(req) === req.agent,
        copyMarked: peerOf(copy) !== undefined,
      });
    });
    const { server, port } = await listenHttps(source, app, 60_000);
    closers.push(() => closeServer(server));
    const agent = svidAgent(issueSvid(pki, sid('caller')), roots);
    closers.push(() => agent.destroy());
    const ok = await httpsCall(port, { agent, path: '/accepted' });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(jsonOf(ok), { same: true, copyMarked: false });
    const refused = await httpsCall(port, { agent, path: '/refused' });
    assert.equal(refused.status, 403, refused.text);
    assert.equal(refused.socket, ok.socket, 'the refused request rode another connection');
    assert.equal(finished.length, 2);
    assert.equal(finished[0]!.peer?.spiffeId, sid('caller'));
    assert.equal(finished[1]!.path, '/refused');
    assert.equal(finished[1]!.peer, undefined);
  });

  it('express: a request on an app without the helper reads undefined', async () => {
    const source = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const app = express();
    app.get('/', (req, res) => {
      res.json({ marked: peerOf(req) !== undefined });
    });
    const { server, port } = await listenHttps(source, app);
    closers.push(() => closeServer(server));
    const agent = svidAgent(issueSvid(pki, sid('caller')), roots);
    closers.push(() => agent.destroy());
    const r = await httpsCall(port, { agent });
    assert.deepEqual(jsonOf(r), { marked: false });
  });

  it('fastify: peerOf(request.raw) is request.agent; a refused request on the same connection reads undefined', async () => {
    const source = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const finished: Finished = [];
    const app = Fastify({ https: tlsServerOptions(source), keepAliveTimeout: 60_000 });
    await app.register(lanyardFastify, { source, authorize: allowButRefused });
    app.addHook('onResponse', (request, _reply, done) => {
      finished.push({ path: request.url, peer: peerOf(request.raw) });
      done();
    });
    app.get('/accepted', async (request) => ({
      same: peerOf(request.raw) !== undefined && peerOf(request.raw) === request.agent,
      requestMarked: peerOf(request as unknown as IncomingMessage) !== undefined,
    }));
    app.get('/refused', async () => ({ ran: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => app.close());
    const port = (app.server.address() as AddressInfo).port;
    const agent = svidAgent(issueSvid(pki, sid('caller')), roots);
    closers.push(() => agent.destroy());
    const ok = await httpsCall(port, { agent, path: '/accepted' });
    assert.equal(ok.status, 200, ok.text);
    // The raw request is what carries the mark, as before; fastify's wrapper is not a request of Node's.
    assert.deepEqual(jsonOf(ok), { same: true, requestMarked: false });
    const refused = await httpsCall(port, { agent, path: '/refused' });
    assert.equal(refused.status, 403, refused.text);
    assert.equal(refused.socket, ok.socket, 'the refused request rode another connection');
    assert.deepEqual(
      finished.map((f) => [f.path, f.peer?.spiffeId]),
      [
        ['/accepted', sid('caller')],
        ['/refused', undefined],
      ],
    );
  });
});
