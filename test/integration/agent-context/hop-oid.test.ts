/**
 * The hop helpers' `agentContextOid`: checked when a helper is made (a malformed OID or one with an arc of 2^28
 * or more never gets as far as a peer), and applied to every peer over real TLS on 127.0.0.1: a peer whose
 * context sits under the configured OID is accepted with its context, one under another OID is refused with
 * ERR_AGENT_CONTEXT_OID_MISMATCH, on the server side and on the client side.
 */
import assert from 'node:assert/strict';
import * as https from 'node:https';
import * as tls from 'node:tls';
import { StaticX509Source } from '../../../src/client/static-x509-source';
import { toX509Svid } from '../../../src/svid/x509-svid';
import { ErrorCode } from '../../../src/errors';
import { lanyardExpress } from '../../../src/hop/express';
import { lanyardFastify } from '../../../src/hop/fastify';
import { hopChannelCredentials, hopService } from '../../../src/hop/grpc';
import {
  createHopHttpsServer,
  createHopTlsServer,
  HopHttpsAgent,
  tlsClientOptions,
} from '../../../src/hop/tls';
import { authorizeAny } from '../../../src/verify';
import { DEFAULT_AGENT_CONTEXT_OID } from '../../../src/x509/agent-context/oid';
import { baseContext, createPki, issueSvid, type TrustDomainPki } from '../../support/pki';
import { closeServer, DecisionLog, listenHttps, listenLocal } from '../../support/hop';
import { expectRefusal } from '../../support/refusal';

const TD = 'example.org';
const CUSTOM = '1.3.6.1.4.1.99999.3.1';

function sourceFor(pki: TrustDomainPki, name: string, agentContextOid?: string): StaticX509Source {
  const context = baseContext({ agentId: name, sessionId: `session-${name}`, scopes: ['docs:read'] });
  const svid = issueSvid(pki, `spiffe://${TD}/agent/${name}`, {
    context,
    ...(agentContextOid !== undefined ? { agentContextOid } : {}),
  });
  return new StaticX509Source(
    toX509Svid(svid.chain, svid.key.privateKey, agentContextOid !== undefined ? { agentContextOid } : {}),
    pki.bundle,
  );
}

describe('hop: agentContextOid', function () {
  this.timeout(30_000);
  const pki = createPki(TD);
  const service = sourceFor(pki, 'tool-server', CUSTOM);
  const custom = sourceFor(pki, 'planner', CUSTOM);
  const plain = sourceFor(pki, 'stranger');

  it('every helper refuses a malformed OID, or one with an arc of 2^28 or more, when it is made', () => {
    for (const agentContextOid of [
      '1.3.6.1.4.1.268435456.1',
      'not-an-oid',
      '2.25.31710684403515015008777295008216665364',
    ]) {
      const base = { source: service, authorize: authorizeAny(), agentContextOid };
      const makers: [string, () => unknown][] = [
        ['createHopTlsServer', () => createHopTlsServer(base, () => undefined)],
        ['createHopHttpsServer', () => createHopHttpsServer(base, () => undefined)],
        ['tlsClientOptions', () => tlsClientOptions(base)],
        ['HopHttpsAgent', () => new HopHttpsAgent(base)],
        ['hopService', () => hopService({}, {}, base)],
        ['hopChannelCredentials', () => hopChannelCredentials(base)],
        ['lanyardExpress', () => lanyardExpress(base)],
      ];
      for (const [name, make] of makers) {
        const e = expectRefusal(make, ErrorCode.INVALID_AGENT_CONTEXT_OID);
        assert.ok(e.message.includes('agentContextOid'), `${name}: ${e.message}`);
      }
      // A rejected server left nothing behind on the source.
      assert.equal(service.listenerCount('update'), 0);
    }
  });

  it('the fastify plugin refuses it when registered', async () => {
    const { default: fastify } = await import('fastify');
    const app = fastify();
    app.register(lanyardFastify, { source: service, authorize: authorizeAny(), agentContextOid: '1.3.6.x' });
    await assert.rejects(
      async () => {
        await app.ready();
      },
      (e: unknown) => (e as { code?: string }).code === ErrorCode.INVALID_AGENT_CONTEXT_OID,
    );
    await app.close().catch(() => undefined);
  });

  describe('over TLS', () => {
    const decisions = new DecisionLog();
    let server: tls.Server;
    let port: number;

    before(async () => {
      server = createHopTlsServer(
        {
          source: service,
          authorize: authorizeAny(),
          agentContextOid: CUSTOM,
          onDecision: decisions.listener,
        },
        (socket, peer) => socket.end(`${peer.spiffeId} ${peer.context?.sessionId ?? '-'}\n`),
      );
      port = await listenLocal(server);
    });
    after(() => closeServer(server));

    function connect(
      source: StaticX509Source,
      clientOid?: string,
    ): Promise<{ reply: string; error?: Error }> {
      return new Promise((resolve) => {
        let reply = '';
        let error: Error | undefined;
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          ...tlsClientOptions({
            source,
            authorize: authorizeAny(),
            ...(clientOid !== undefined ? { agentContextOid: clientOid } : {}),
          }),
        });
        socket.setEncoding('utf8');
        socket.on('data', (d: string) => (reply += d));
        socket.on('error', (e) => (error ??= e));
        socket.on('close', () => resolve({ reply: reply.trim(), ...(error !== undefined ? { error } : {}) }));
      });
    }

    it('accepts a peer whose context is under the configured OID, with its context', async () => {
      const r = await connect(custom, CUSTOM);
      assert.equal(r.reply, `spiffe://${TD}/agent/planner session-planner`);
    });

    it('refuses a peer whose context is under another OID, naming both', async () => {
      const r = await connect(plain, CUSTOM);
      assert.equal(r.reply, '');
      const d = await decisions.next(
        (x) => x.decision === 'deny' && x.peerId === `spiffe://${TD}/agent/stranger`,
      );
      assert.equal(d.reason, ErrorCode.AGENT_CONTEXT_OID_MISMATCH);
    });

    it('a client on another OID than its server refuses the server before sending anything', async () => {
      const r = await connect(custom, DEFAULT_AGENT_CONTEXT_OID);
      assert.equal(r.reply, '');
      assert.equal((r.error as { code?: string } | undefined)?.code, ErrorCode.AGENT_CONTEXT_OID_MISMATCH);
      assert.ok(r.error?.message.includes(CUSTOM) && r.error.message.includes(DEFAULT_AGENT_CONTEXT_OID));
    });

    it('the https agent and an express app apply the same rule per request', async () => {
      const express = (await import('express')).default;
      const app = express();
      app.use(lanyardExpress({ source: service, authorize: authorizeAny(), agentContextOid: CUSTOM }));
      app.get('/who', (req, res) => {
        res.json({
          session: (req as unknown as { agent: { context?: { sessionId: string } } }).agent.context
            ?.sessionId,
        });
      });
      const { server: httpsServer, port: httpsPort } = await listenHttps(service, app);
      const get = (source: StaticX509Source): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
          const agent = new HopHttpsAgent({ source, authorize: authorizeAny(), agentContextOid: CUSTOM });
          https
            .get({ host: '127.0.0.1', port: httpsPort, path: '/who', agent }, (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (d: string) => (body += d));
              res.on('end', () => {
                agent.destroy();
                resolve({ status: res.statusCode ?? 0, body });
              });
            })
            .on('error', reject);
        });
      try {
        const ok = await get(custom);
        assert.equal(ok.status, 200);
        assert.deepEqual(JSON.parse(ok.body), { session: 'session-planner' });
        const refused = await get(plain);
        assert.equal(refused.status, 401);
        assert.equal(
          (JSON.parse(refused.body) as { error: { code: string } }).error.code,
          ErrorCode.AGENT_CONTEXT_OID_MISMATCH,
        );
      } finally {
        await closeServer(httpsServer);
      }
    });
  });
});
