/**
 * A kept-alive HTTP connection's later requests are answered from the verdict kept on the connection
 * (http-peer.ts, recallHttpPeer): one look-up on the socket, one read of the service's own SVID, the kept
 * verdict's re-checks and the authorizer. Each test shows, for express and fastify alike, what that path must
 * still decide per request: a rotation of the service's own SVID (another trust domain, another name), the
 * authorizer's answer for this very request, and that it reads the own SVID once and not more.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { StaticX509Source } from '../../../src/client/static-x509-source';
import { AuthorizationError, ErrorCode } from '../../../src/errors';
import type { HopDecision } from '../../../src/hop/decision';
import { lanyardExpress, type HopExpressOptions } from '../../../src/hop/express';
import { lanyardFastify } from '../../../src/hop/fastify';
import { tlsServerOptions } from '../../../src/hop/tls';
import { toX509Svid, type X509Svid } from '../../../src/svid/x509-svid';
import { authorizeAny, type VerifyX509SvidResult } from '../../../src/verify';
import { createPki, issueSvid } from '../../support/pki';
import { closeServer, DecisionLog, httpsCall, jsonOf, listenHttps, svidAgent } from '../../support/hop';

const TD = 'kept.test';
const sid = (name: string): string => `spiffe://${TD}/${name}`;

/** A source that counts the reads of its own SVID. */
class CountingSource extends StaticX509Source {
  reads = 0;
  override getX509Svid(): X509Svid {
    this.reads++;
    return super.getX509Svid();
  }
}

type Mount = 'express' | 'fastify';
const MOUNTS: readonly Mount[] = ['express', 'fastify'];

interface Seen {
  agent?: string;
  error?: { code?: string };
}

describe('hop: a kept-alive request answered from its connection’s kept verdict', function () {
  this.timeout(30_000);
  const pki = createPki(TD);
  const other = createPki('elsewhere.test');
  const roots = pki.bundle.toPem();
  const closers: (() => unknown)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  /** One service on `mount` with `source`; its decisions are collected. */
  async function service(
    mount: Mount,
    source: StaticX509Source,
    options: Omit<HopExpressOptions, 'source' | 'action' | 'onDecision'>,
  ): Promise<{ port: number; decisions: DecisionLog }> {
    const decisions = new DecisionLog();
    const hop = { source, onDecision: decisions.listener, ...options };
    if (mount === 'express') {
      const app = express();
      app.use(lanyardExpress(hop));
      app.get('/', (req, res) => {
        res.json({ agent: req.agent?.spiffeId });
      });
      const { server, port } = await listenHttps(source, app, 60_000);
      closers.push(() => closeServer(server));
      return { port, decisions };
    }
    const app = Fastify({ https: tlsServerOptions(source), keepAliveTimeout: 60_000 });
    await app.register(lanyardFastify, hop);
    app.get('/', async (request) => ({ agent: request.agent?.spiffeId }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => app.close());
    return { port: (app.server.address() as AddressInfo).port, decisions };
  }

  const svidOf = (s: ReturnType<typeof issueSvid>): X509Svid => toX509Svid(s.chain, s.key.privateKey);

  it('reads the service’s own SVID once per request on a kept-alive connection', async () => {
    for (const mount of MOUNTS) {
      const source = new CountingSource(svidOf(issueSvid(pki, sid('api'))), pki.bundle);
      const { port } = await service(mount, source, { authorize: authorizeAny() });
      const agent = svidAgent(issueSvid(pki, sid(`counted-${mount}`)), roots);
      closers.push(() => agent.destroy());
      const first = await httpsCall(port, { agent });
      assert.equal(first.status, 200, first.text);
      const before = source.reads;
      for (let i = 0; i < 4; i++) {
        const r = await httpsCall(port, { agent });
        assert.equal(r.socket, first.socket, `${mount}: the request rode a new connection`);
        assert.equal(jsonOf<Seen>(r).agent, sid(`counted-${mount}`));
      }
      // The one read notices a rotation; the chain, the name and the domain all follow that object.
      assert.equal(source.reads - before, 4, `${mount}: own SVID reads for 4 kept-alive requests`);
    }
  });

  it('refuses the next kept-alive request once the service’s own SVID moves to another trust domain', async () => {
    for (const mount of MOUNTS) {
      // Both domains' bundles stay: the peer still verifies, only the service's own domain changed.
      const source = new StaticX509Source(svidOf(issueSvid(pki, sid('api'))), [pki.bundle, other.bundle]);
      const { port, decisions } = await service(mount, source, { authorize: authorizeAny() });
      const agent = svidAgent(issueSvid(pki, sid(`stays-${mount}`)), roots);
      closers.push(() => agent.destroy());
      const kept = [await httpsCall(port, { agent }), await httpsCall(port, { agent })];
      for (const r of kept) assert.equal(r.status, 200, `${mount}: ${r.text}`);
      source.set(svidOf(issueSvid(other, 'spiffe://elsewhere.test/api')));
      const after = await httpsCall(port, { agent });
      assert.equal(after.socket, kept[0]!.socket, `${mount}: the request rode a new connection`);
      assert.equal(after.status, 401, `${mount}: ${after.text}`);
      assert.equal(jsonOf<Seen>(after).error?.code, ErrorCode.WRONG_TRUST_DOMAIN, mount);
      assert.deepEqual(
        decisions.denials().map((d) => [d.reason, d.peerId]),
        [[ErrorCode.WRONG_TRUST_DOMAIN, sid(`stays-${mount}`)]],
        mount,
      );
    }
  });

  it('names the service by its current SVID in the decisions of a kept-alive connection', async () => {
    for (const mount of MOUNTS) {
      const source = new StaticX509Source(svidOf(issueSvid(pki, sid('api'))), pki.bundle);
      const { port, decisions } = await service(mount, source, { authorize: authorizeAny() });
      const agent = svidAgent(issueSvid(pki, sid(`named-${mount}`)), roots);
      closers.push(() => agent.destroy());
      const first = await httpsCall(port, { agent });
      await httpsCall(port, { agent });
      source.set(svidOf(issueSvid(pki, sid('api-renamed'))));
      const after = await httpsCall(port, { agent });
      assert.equal(after.socket, first.socket, `${mount}: the request rode a new connection`);
      assert.equal(after.status, 200, `${mount}: ${after.text}`);
      assert.deepEqual(
        decisions.all.map((d: HopDecision) => d.service),
        [sid('api'), sid('api'), sid('api-renamed')],
        mount,
      );
    }
  });

  it('asks the authorizer for every kept-alive request: a refusal there is a 403 and the next may pass', async () => {
    for (const mount of MOUNTS) {
      const source = new StaticX509Source(svidOf(issueSvid(pki, sid('api'))), pki.bundle);
      let calls = 0;
      const { port, decisions } = await service(mount, source, {
        authorize: (peer: VerifyX509SvidResult): void => {
          calls++;
          if (calls === 3) throw new AuthorizationError(`not now, ${peer.id.toString()}`);
        },
      });
      const agent = svidAgent(issueSvid(pki, sid(`asked-${mount}`)), roots);
      closers.push(() => agent.destroy());
      const replies = [];
      for (let i = 0; i < 4; i++) replies.push(await httpsCall(port, { agent }));
      assert.deepEqual(
        replies.map((r) => r.status),
        [200, 200, 403, 200],
        mount,
      );
      for (const r of replies) assert.equal(r.socket, replies[0]!.socket, mount);
      assert.equal(calls, 4, mount);
      assert.deepEqual(
        decisions.all.map((d) => d.decision),
        ['allow', 'allow', 'deny', 'allow'],
        mount,
      );
      assert.equal(decisions.denials()[0]!.peerId, sid(`asked-${mount}`), mount);
    }
  });
});
