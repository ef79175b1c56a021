/**
 * What the hop helpers keep per connection and per SVID, and what they must never keep: the peer's chain is read
 * once per connection (the leaf with the known intermediates first, the presented chain only when that does not
 * verify), the client's secure context is reused per SVID, the HopPeer per verified result. Each test shows a
 * trust decision still made afresh where it must be: per connection, per request, per policy answer, per SVID.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import express from 'express';
import Fastify from 'fastify';
import { StaticX509Source } from '../../../src/client/static-x509-source';
import { ErrorCode } from '../../../src/errors';
import { lanyardExpress, type HopExpressOptions } from '../../../src/hop/express';
import { lanyardFastify } from '../../../src/hop/fastify';
import { createHopTlsServer, peerOf, tlsClientOptions, tlsServerOptions } from '../../../src/hop/tls';
import { toX509Svid } from '../../../src/svid/x509-svid';
import { authorizeAny, authorizeId, type RevocationChecker, VerificationCache } from '../../../src/verify';
import { createPki, issueSvid, type Svid } from '../../support/pki';
import {
  closeServer,
  DecisionLog,
  eventually,
  httpsCall,
  jsonOf,
  listenHttps,
  listenLocal,
  pkiSource,
  svidAgent,
  tlsExchange,
} from '../../support/hop';

const TD = 'cache.test';
const sid = (name: string): string => `spiffe://${TD}/${name}`;

/** What the test services answer: the peer they saw, or the refusal. */
interface Seen {
  agent?: string;
  policyVersion?: string;
}

describe('hop: what is kept per connection and per SVID', function () {
  this.timeout(30_000);
  const pki = createPki(TD);
  // A second intermediate under the same root: the service holds only the first one.
  const sibling = createPki(TD, { root: pki.root });
  const roots = pki.bundle.toPem();
  const closers: (() => unknown)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  /** A hop TLS server answering each accepted peer with its ID; the reasons of its denials, in order. */
  async function echoTlsServer(
    options: Omit<Parameters<typeof createHopTlsServer>[0], 'authorize' | 'onDecision'>,
  ): Promise<{ port: number; denied: string[] }> {
    const denied: string[] = [];
    const server = createHopTlsServer(
      {
        ...options,
        authorize: authorizeAny(),
        onDecision: (d) => {
          if (d.decision === 'deny') denied.push(d.reason ?? '');
        },
      },
      (socket, peer) => socket.end(peer.spiffeId),
    );
    const port = await listenLocal(server);
    closers.push(() => closeServer(server));
    return { port, denied };
  }

  async function expressServer(options: Omit<HopExpressOptions, 'source'>): Promise<{
    port: number;
    connections: () => number;
    source: StaticX509Source;
  }> {
    const source = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const app = express();
    app.use(lanyardExpress({ source, ...options }));
    app.get('/', (req, res) => {
      res.json({ agent: req.agent?.spiffeId, policyVersion: req.agent?.policyVersion });
    });
    // Kept-alive connections outlive the waits of these tests (Node's default is 5 s).
    const { server, port } = await listenHttps(source, app, 60_000);
    let connections = 0;
    server.on('secureConnection', () => connections++);
    closers.push(() => closeServer(server));
    return { port, connections: () => connections, source };
  }

  async function fastifyServer(
    options: Omit<HopExpressOptions, 'source' | 'action'>,
  ): Promise<{ port: number; connections: () => number }> {
    const source = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const app = Fastify({ https: tlsServerOptions(source), keepAliveTimeout: 60_000 });
    await app.register(lanyardFastify, { source, ...options });
    app.get('/', async (request) => ({ agent: request.agent?.spiffeId }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    let n = 0;
    app.server.on('secureConnection', () => n++);
    closers.push(() => app.close());
    return { port: (app.server.address() as AddressInfo).port, connections: () => n };
  }

  it('a peer under an intermediate the service does not hold is verified by the chain it presented, on every request', async () => {
    const decisions = new DecisionLog();
    const { port } = await expressServer({ authorize: authorizeAny(), onDecision: decisions.listener });
    const agent = svidAgent(issueSvid(sibling, sid('sibling')), roots);
    closers.push(() => agent.destroy());
    const first = await httpsCall(port, { agent });
    const second = await httpsCall(port, { agent });
    assert.equal(first.status, 200, first.text);
    assert.equal(second.status, 200, second.text);
    assert.equal(jsonOf<Seen>(first).agent, sid('sibling'));
    assert.equal(second.socket, first.socket, 'the second request rode another connection');
    assert.deepEqual(
      decisions.all.map((d) => d.decision),
      ['allow', 'allow'],
    );
  });

  it('when neither chain verifies, the presented chain’s reason is reported, once per request', async () => {
    const decisions = new DecisionLog();
    const { port } = await expressServer({ authorize: authorizeAny(), onDecision: decisions.listener });
    // An expired leaf under the sibling intermediate: with the service's own intermediate its signature does not
    // check (ERR_SIGNATURE_INVALID), with its own chain the path holds and the expiry is the reason.
    const expired = issueSvid(sibling, sid('expired'), { now: new Date(Date.now() - 3 * 3600_000) });
    const agent = svidAgent(expired, roots);
    closers.push(() => agent.destroy());
    for (let i = 0; i < 2; i++) {
      const r = await httpsCall(port, { agent });
      assert.equal(r.status, 401);
      assert.equal(jsonOf<Seen>(r).error?.code, ErrorCode.SVID_EXPIRED);
    }
    // The shorter first try is not reported: one decision per request, naming the peer.
    assert.equal(decisions.all.length, 2);
    for (const d of decisions.all) {
      assert.equal(d.decision, 'deny');
      assert.equal(d.reason, ErrorCode.SVID_EXPIRED);
      assert.equal(d.peerId, sid('expired'));
    }
  });

  it('a connection’s accepted peer is never another connection’s: each request is answered for its own peer', async () => {
    const { port } = await expressServer({ authorize: authorizeId(sid('allowed')) });
    const allowed = svidAgent(issueSvid(pki, sid('allowed')), roots);
    const refused = svidAgent(issueSvid(sibling, sid('refused')), roots);
    closers.push(
      () => allowed.destroy(),
      () => refused.destroy(),
    );
    for (let i = 0; i < 2; i++) {
      const a = await httpsCall(port, { agent: allowed });
      assert.equal(a.status, 200);
      assert.equal(jsonOf<Seen>(a).agent, sid('allowed'));
      const r = await httpsCall(port, { agent: refused });
      assert.equal(r.status, 403);
      assert.equal(jsonOf<Seen>(r).error?.code, ErrorCode.UNAUTHORIZED);
    }
  });

  it('a revocation after the first request on a kept-alive connection refuses the next request on it', async () => {
    // A checker that cannot notify: nothing closes the connection, only the per-request check can refuse.
    const revoked = new Set<string>();
    const revocation: RevocationChecker = { isRevoked: (q) => revoked.has(q.serialHex) };
    for (const mount of ['express', 'fastify'] as const) {
      const client = issueSvid(pki, sid(`victim-${mount}`));
      const { port, connections } = await (mount === 'express' ? expressServer : fastifyServer)({
        authorize: authorizeAny(),
        revocation,
      });
      const agent = svidAgent(client, roots);
      closers.push(() => agent.destroy());
      const before = await httpsCall(port, { agent });
      assert.equal(before.status, 200, mount);
      revoked.add(client.cert.serialHex);
      const after = await httpsCall(port, { agent });
      assert.equal(after.socket, before.socket, `${mount}: the request rode a new connection`);
      assert.equal(connections(), 1);
      assert.equal(after.status, 401, mount);
      assert.equal(jsonOf<Seen>(after).error?.code, ErrorCode.REVOKED, mount);
    }
  });

  it('a connection’s later requests are answered by the verdict kept on it, without the chain memo', async () => {
    const cache = new VerificationCache();
    const { port } = await expressServer({ authorize: authorizeAny(), cache });
    const client = issueSvid(pki, sid('kept'));
    const agent = svidAgent(client, roots);
    closers.push(() => agent.destroy());
    const replies = [];
    for (let i = 0; i < 3; i++) replies.push(await httpsCall(port, { agent }));
    for (const r of replies) assert.equal(jsonOf<Seen>(r).agent, sid('kept'));
    assert.equal(replies[2]!.socket, replies[0]!.socket);
    // The first request verified the chain (a memo miss); the two after it never asked the memo.
    assert.deepEqual([cache.stats().chains.hits, cache.stats().chains.misses], [0, 1]);
    // Another connection presenting the same chain has no verdict of its own yet: verified in full once more,
    // which admits the chain to the memo (a chain is remembered from its second verification); a third answers.
    for (const [i, expected] of [
      [0, 2],
      [1, 2],
    ].entries()) {
      const other = svidAgent(client, roots);
      closers.push(() => other.destroy());
      assert.equal((await httpsCall(port, { agent: other })).status, 200);
      assert.deepEqual(
        [cache.stats().chains.hits, cache.stats().chains.misses],
        expected,
        `connection ${i + 2}`,
      );
    }
  });

  it('a cache without the chain memo keeps no verdict either: every request is verified in full', async () => {
    const cache = new VerificationCache({ chains: false });
    const { port } = await expressServer({ authorize: authorizeAny(), cache });
    const agent = svidAgent(issueSvid(pki, sid('full')), roots);
    closers.push(() => agent.destroy());
    const found: number[] = [];
    for (let i = 0; i < 3; i++) {
      assert.equal((await httpsCall(port, { agent })).status, 200);
      found.push(cache.stats().certificates.hits);
    }
    // Each full verification looks its certificates up again.
    assert.ok(found[0]! < found[1]! && found[1]! < found[2]!, `certificate lookups ${found.join(', ')}`);
  });

  it('a bundle that no longer holds the peer’s root refuses the next request on the kept-alive connection', async () => {
    const { port, source, connections } = await expressServer({ authorize: authorizeAny() });
    const agent = svidAgent(issueSvid(pki, sid('rooted')), roots);
    closers.push(() => agent.destroy());
    const before = await httpsCall(port, { agent });
    assert.equal(before.status, 200, before.text);
    // The same SVID of the service, a bundle of the same trust domain under another root.
    source.set(source.getX509Svid(), createPki(TD).bundle);
    const after = await httpsCall(port, { agent });
    assert.equal(after.socket, before.socket, 'the request rode a new connection');
    assert.equal(connections(), 1);
    assert.equal(after.status, 401, after.text);
    // The new root has the old one's name but not its key: the intermediate's signature no longer checks.
    assert.equal(jsonOf<Seen>(after).error?.code, ErrorCode.SIGNATURE_INVALID);
  });

  it('a peer whose SVID expires while its connection is kept alive is refused on the next request', async () => {
    // notAfter a couple of seconds from now (whole seconds in the certificate).
    const client = issueSvid(pki, sid('short'), { now: new Date(Date.now() - 3600_000 + 2500) });
    const servers = [
      await expressServer({ authorize: authorizeAny() }),
      await fastifyServer({ authorize: authorizeAny() }),
    ];
    const agents = servers.map(() => svidAgent(client, roots));
    closers.push(...agents.map((a) => () => a.destroy()));
    const before = await Promise.all(servers.map((s, i) => httpsCall(s.port, { agent: agents[i]! })));
    for (const r of before) assert.equal(r.status, 200, r.text);
    await eventually(() => Date.now() > client.cert.notAfter.getTime() + 1000, 10_000, 'the SVID expired');
    for (const [i, s] of servers.entries()) {
      const after = await httpsCall(s.port, { agent: agents[i]! });
      assert.equal(after.socket, before[i]!.socket, 'the request rode a new connection');
      assert.equal(s.connections(), 1);
      assert.equal(after.status, 401, after.text);
      assert.equal(jsonOf<Seen>(after).error?.code, ErrorCode.SVID_EXPIRED);
    }
  });

  it('the peer handed to a handler carries the policy version of its own request', async () => {
    let version = 'v1';
    const { port } = await expressServer({
      authorize: () => ({ allow: true, policyVersion: version }),
    });
    const agent = svidAgent(issueSvid(pki, sid('caller')), roots);
    closers.push(() => agent.destroy());
    const first = await httpsCall(port, { agent });
    version = 'v2';
    const second = await httpsCall(port, { agent });
    assert.equal(second.socket, first.socket);
    assert.equal(jsonOf<Seen>(first).policyVersion, 'v1');
    assert.equal(jsonOf<Seen>(second).policyVersion, 'v2');
  });

  it('createHopTlsServer verifies a peer under an unknown intermediate by its chain, and refuses an impostor', async () => {
    const source = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const server = createHopTlsServer({ source, authorize: authorizeAny() }, (socket, peer) =>
      socket.end(peer.spiffeId),
    );
    const port = await listenLocal(server);
    closers.push(() => closeServer(server));
    const talk = async (client: Svid): Promise<string> => (await tlsExchange(port, client, roots)).reply;
    assert.equal(await talk(issueSvid(sibling, sid('sibling'))), sid('sibling'));
    assert.equal(await talk(issueSvid(createPki(TD), sid('impostor'))), '');
  });

  it('createHopTlsServer completes a leaf-only peer with its current SVID’s intermediates, also after a rotation', async () => {
    // The service's own intermediates are taken out of each SVID object once: a rotation to an SVID under
    // another intermediate must complete peers with the new one, and rotating back must stop doing so.
    const first = issueSvid(pki, sid('api'));
    const source = new StaticX509Source(toX509Svid(first.chain, first.key.privateKey), pki.bundle);
    const { port, denied } = await echoTlsServer({ source });
    closers.push(() => source.close());
    const underSibling = issueSvid(sibling, sid('sibling'));
    // Only its leaf, as a client resuming a session presents it: the server must know the intermediate.
    const leafOnly: Svid = { ...underSibling, chain: underSibling.chain.slice(0, 1) };
    const talk = async (): Promise<string> => (await tlsExchange(port, leafOnly, roots)).reply;

    assert.equal(await talk(), '', 'a leaf under an intermediate the service does not hold was accepted');
    // Both intermediates have the same name: the leaf meets the wrong one's key.
    assert.deepEqual(denied, [ErrorCode.SIGNATURE_INVALID]);
    const rotated = issueSvid(sibling, sid('api'));
    source.set(toX509Svid(rotated.chain, rotated.key.privateKey));
    assert.equal(await talk(), sid('sibling'));
    source.set(toX509Svid(first.chain, first.key.privateKey));
    assert.equal(await talk(), '', 'the intermediate of a rotated-away SVID still completed the chain');
    assert.deepEqual(denied, [ErrorCode.SIGNATURE_INVALID, ErrorCode.SIGNATURE_INVALID]);
  });

  it('createHopTlsServer answers a leaf it accepted before by the verdict kept for it, without the chain memo', async () => {
    const cache = new VerificationCache();
    const source = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const server = createHopTlsServer({ source, authorize: authorizeAny(), cache }, (socket, peer) =>
      socket.end(peer.spiffeId),
    );
    const port = await listenLocal(server);
    closers.push(() => closeServer(server));
    const client = issueSvid(pki, sid('again'));
    for (let i = 0; i < 3; i++) assert.equal((await tlsExchange(port, client, roots)).reply, sid('again'));
    // The first handshake verified the chain (a memo miss); the two after it, each a connection of its own
    // with the same leaf, never asked the memo.
    assert.deepEqual([cache.stats().chains.hits, cache.stats().chains.misses], [0, 1]);
    // Another leaf of the same workload is verified in full.
    assert.equal((await tlsExchange(port, issueSvid(pki, sid('again')), roots)).reply, sid('again'));
    assert.deepEqual([cache.stats().chains.hits, cache.stats().chains.misses], [0, 2]);
  });

  it('createHopTlsServer refuses a leaf it accepted before once it is revoked, or its root leaves the bundle', async () => {
    // A checker that cannot notify: only the next handshake's check can refuse.
    const revoked = new Set<string>();
    const revocation: RevocationChecker = { isRevoked: (q) => revoked.has(q.serialHex) };
    const source = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const { port, denied } = await echoTlsServer({ source, revocation });
    const victim = issueSvid(pki, sid('victim'));
    const rooted = issueSvid(pki, sid('rooted'));
    for (let i = 0; i < 2; i++) {
      assert.equal((await tlsExchange(port, victim, roots)).reply, sid('victim'));
      assert.equal((await tlsExchange(port, rooted, roots)).reply, sid('rooted'));
    }
    revoked.add(victim.cert.serialHex);
    assert.equal((await tlsExchange(port, victim, roots)).reply, '', 'a revoked leaf was accepted again');
    assert.equal((await tlsExchange(port, rooted, roots)).reply, sid('rooted'));
    assert.deepEqual(denied, [ErrorCode.REVOKED]);
    // The same SVID of the service, a bundle of the same trust domain under another root.
    source.set(source.getX509Svid(), createPki(TD).bundle);
    assert.equal(
      (await tlsExchange(port, rooted, roots)).reply,
      '',
      'a leaf was accepted after its root left',
    );
    assert.deepEqual(denied, [ErrorCode.REVOKED, ErrorCode.SIGNATURE_INVALID]);
  });

  it('createHopTlsServer refuses a leaf it accepted before once its own SVID rotates to another trust domain', async () => {
    // Both domains' bundles stay: the leaf still verifies, only the service's own domain changed.
    const other = createPki('other.test');
    const source = pkiSource(issueSvid(pki, sid('api')), [pki.bundle, other.bundle]);
    const { port, denied } = await echoTlsServer({ source });
    const client = issueSvid(pki, sid('before'));
    for (let i = 0; i < 2; i++) assert.equal((await tlsExchange(port, client, roots)).reply, sid('before'));
    const moved = issueSvid(other, 'spiffe://other.test/api');
    source.set(toX509Svid(moved.chain, moved.key.privateKey));
    const bothRoots = `${roots}${other.bundle.toPem()}`;
    assert.equal(
      (await tlsExchange(port, client, bothRoots)).reply,
      '',
      'a leaf of the old domain was accepted',
    );
    assert.deepEqual(denied, [ErrorCode.WRONG_TRUST_DOMAIN]);
  });

  it('tlsClientOptions reuses its secure context but never a session, and a rotated SVID gets a new one', async () => {
    const serverSource = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const server = createHopTlsServer({ source: serverSource, authorize: authorizeAny() }, (socket) =>
      socket.end(`${peerOf(socket)?.serialHex}:${String(socket.isSessionReused())}`),
    );
    const port = await listenLocal(server);
    closers.push(() => closeServer(server));
    const first = issueSvid(pki, sid('client'));
    const clientSource = new StaticX509Source(toX509Svid(first.chain, first.key.privateKey), pki.bundle);
    const checked: string[] = [];
    const connect = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          ...tlsClientOptions({
            source: clientSource,
            authorize: authorizeId(sid('api')),
            onServer: (peer) => checked.push(peer.spiffeId),
          }),
        });
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (d: string) => (text += d));
        socket.on('error', reject);
        socket.on('close', () => resolve(text));
      });
    const a = await connect();
    const b = await connect();
    assert.equal(a, `${first.cert.serialHex}:false`);
    assert.equal(b, `${first.cert.serialHex}:false`, 'the second connection resumed a session');
    assert.deepEqual(checked, [sid('api'), sid('api')], 'the server was not checked on every connection');
    const renewed = issueSvid(pki, sid('client'));
    clientSource.set(toX509Svid(renewed.chain, renewed.key.privateKey));
    assert.equal(await connect(), `${renewed.cert.serialHex}:false`);
    await clientSource.close();
  });
});
