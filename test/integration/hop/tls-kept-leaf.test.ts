/**
 * createHopTlsServer answers a peer leaf it has verified before from the verdict it keeps per leaf
 * (connection-chain.ts HandshakeChains, kept-verdict.ts). Each test connects the same leaf more than once, so
 * every connection after the first is answered from the kept verdict, and holds that answer to what the full
 * path does: the authorizer asked for this connection with the service's current name, its refusal (or a
 * policy's) reported with its reason and version, and the revocation checker asked afresh, once.
 */
import assert from 'node:assert/strict';
import type * as tls from 'node:tls';
import { toX509Svid } from '../../../src/svid/x509-svid';
import { AuthorizationError, ErrorCode } from '../../../src/errors';
import { createHopTlsServer, type HopServerOptions } from '../../../src/hop/tls';
import type { HopRequest, PolicyDecision } from '../../../src/hop/policy';
import type { RevocationChecker, RevocationQuery } from '../../../src/verify';
import { createPki, issueSvid, type Svid } from '../../support/pki';
import { closeServer, DecisionLog, id, listenLocal, pkiSource, TD, tlsExchange } from '../../support/hop';

describe('hop TLS server: a kept peer leaf answered as the full path answers', function () {
  this.timeout(30_000);
  const pki = createPki(TD);
  const roots = pki.bundle.toPem();
  const client = issueSvid(pki, id('agents/planner'));
  const servers: tls.Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await closeServer(s);
  });

  /** A hop TLS server over `source` answering each accepted peer with its SPIFFE ID. */
  async function echo(options: Omit<HopServerOptions, 'onDecision'>, log: DecisionLog): Promise<number> {
    const server = createHopTlsServer({ ...options, onDecision: log.listener }, (socket, peer) =>
      socket.end(peer.spiffeId),
    );
    servers.push(server);
    return listenLocal(server);
  }

  const talk = async (port: number, peer: Svid = client): Promise<string> =>
    (await tlsExchange(port, peer, roots)).reply;

  it('names the service by its current own SVID on every connection, after a rotation to another ID too', async () => {
    const source = pkiSource(issueSvid(pki, id('api')), pki.bundle);
    const asked: HopRequest[] = [];
    const log = new DecisionLog();
    const port = await echo(
      {
        source,
        // A policy: the one kind of authorizer that is told the request, and so the service's name.
        authorize: (_peer, request: HopRequest): PolicyDecision => {
          asked.push({ ...request });
          return { allow: true };
        },
      },
      log,
    );
    assert.equal(await talk(port), client.id);
    assert.equal(await talk(port), client.id);
    const gateway = issueSvid(pki, id('gateway'));
    source.set(toX509Svid(gateway.chain, gateway.key.privateKey));
    assert.equal(await talk(port), client.id);
    assert.equal(await talk(port), client.id);
    assert.deepEqual(
      asked.map((r) => r.service),
      [id('api'), id('api'), id('gateway'), id('gateway')],
    );
    assert.deepEqual(
      asked.map((r) => r.transport),
      ['tls', 'tls', 'tls', 'tls'],
    );
    assert.deepEqual(
      log.all.map((d) => [d.decision, d.service, d.peerId]),
      [
        ['allow', id('api'), client.id],
        ['allow', id('api'), client.id],
        ['allow', id('gateway'), client.id],
        ['allow', id('gateway'), client.id],
      ],
    );
  });

  it('asks the authorizer for each connection of a kept leaf and reports its refusal', async () => {
    let allow = true;
    const log = new DecisionLog();
    const port = await echo(
      {
        source: pkiSource(issueSvid(pki, id('api')), pki.bundle),
        service: 'inventory',
        authorize: () => {
          if (!allow) throw new AuthorizationError('not today');
        },
      },
      log,
    );
    assert.equal(await talk(port), client.id);
    assert.equal(await talk(port), client.id);
    allow = false;
    assert.equal(await talk(port), '');
    allow = true;
    assert.equal(await talk(port), client.id);
    assert.deepEqual(
      log.all.map((d) => [d.decision, d.reason, d.service, d.peerId, d.peerSerial !== undefined]),
      [
        ['allow', undefined, 'inventory', client.id, true],
        ['allow', undefined, 'inventory', client.id, true],
        ['deny', ErrorCode.UNAUTHORIZED, 'inventory', client.id, true],
        ['allow', undefined, 'inventory', client.id, true],
      ],
    );
  });

  it('waits for an async policy on a kept leaf and reports its refusal with the policy version', async () => {
    let answer: PolicyDecision = { allow: true, policyVersion: 'v1' };
    const log = new DecisionLog();
    const port = await echo(
      {
        source: pkiSource(issueSvid(pki, id('api')), pki.bundle),
        authorize: async () => {
          await new Promise((r) => setImmediate(r));
          return answer;
        },
      },
      log,
    );
    assert.equal(await talk(port), client.id);
    assert.equal(await talk(port), client.id);
    answer = { allow: false, reason: 'closed for maintenance', policyVersion: 'v2' };
    assert.equal(await talk(port), '');
    assert.deepEqual(
      log.all.map((d) => [d.decision, d.reason, d.policyVersion]),
      [
        ['allow', undefined, 'v1'],
        ['allow', undefined, 'v1'],
        ['deny', 'closed for maintenance', 'v2'],
      ],
    );
  });

  it('asks the revocation checker afresh for each connection, once for a kept leaf that holds', async () => {
    const revoked = new Set<string>();
    const queries: RevocationQuery[] = [];
    const revocation: RevocationChecker = {
      isRevoked: (q) => {
        queries.push(q);
        return revoked.has(q.serialHex);
      },
    };
    const log = new DecisionLog();
    const port = await echo(
      { source: pkiSource(issueSvid(pki, id('api')), pki.bundle), authorize: () => undefined, revocation },
      log,
    );
    assert.equal(await talk(port), client.id);
    const first = queries.length;
    assert.ok(first >= 1);
    assert.equal(await talk(port), client.id);
    assert.equal(await talk(port), client.id);
    // The kept leaf: one question per connection, for this very leaf.
    assert.equal(queries.length, first + 2);
    const serial = queries[queries.length - 1]!.serialHex;
    assert.ok(queries.slice(first).every((q) => q.serialHex === serial));
    revoked.add(serial);
    const before = queries.length;
    assert.equal(await talk(port), '');
    // The kept verdict's question, then the full path's (the leaf's chain, then the presented chain, whose
    // refusal is the one reported): the kept verdict is not asked a second time on the way.
    assert.equal(queries.length - before, 3);
    const last = log.all[log.all.length - 1]!;
    assert.equal(last.decision, 'deny');
    assert.equal(last.reason, ErrorCode.REVOKED);
    assert.equal(last.peerId, client.id);
  });
});
