/**
 * Node tls at a hop, against a real Lanyard server on 127.0.0.1: both sides hold SVIDs from ServerX509Sources,
 * the server verifies the client in the handshake path, the client checks the server's SPIFFE ID in place of a
 * host name. Every refusal with its code; rotation without dropping the listener; revocation mid-connection.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { ServerX509Source } from '../../../src/client/server-x509-source';
import type { X509Source } from '../../../src/client/x509-source';
import { createHopTlsServer, peerOf, tlsClientOptions } from '../../../src/hop/tls';
import type { HopPeer } from '../../../src/hop/peer';
import { allOf, authorizeId, authorizeMemberOf, authorizeOneOf, requireScopes } from '../../../src/verify';
import type { TestServer } from '../../support/test-server';
import { createPki, issueSvid, type TrustDomainPki } from '../../support/pki';
import {
  DecisionLog,
  eventually,
  id,
  pkiSource,
  serverBundle,
  startLanyard,
  TD,
  workloadSource,
} from '../../support/hop';
import { assertRefusal } from '../../support/refusal';

interface Exchange {
  reply?: string;
  error?: Error;
  server?: HopPeer;
}

/** Connects with `source`'s SVID, sends one line, settles when the connection closes. */
function exchange(
  port: number,
  source: X509Source,
  expectServer: string,
  line = 'ping',
  caTrustDomains?: string[],
): Promise<Exchange> {
  const out: Exchange = {};
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ...tlsClientOptions({
        source,
        authorize: authorizeId(expectServer),
        onServer: (p) => (out.server = p),
        ...(caTrustDomains !== undefined ? { caTrustDomains } : {}),
      }),
    });
    socket.setEncoding('utf8');
    let data = '';
    socket.on('secureConnect', () => socket.write(`${line}\n`));
    socket.on('data', (d: string) => {
      data += d;
      if (data.endsWith('\n')) socket.end();
    });
    socket.on('error', (e) => (out.error ??= e));
    socket.on('close', () => {
      if (data !== '') out.reply = data.trim();
      resolve(out);
    });
  });
}

describe('hop: Node tls server and client with X509Sources', function () {
  this.timeout(60_000);
  let s: TestServer;
  let service: ServerX509Source;
  let client: ServerX509Source;
  let stranger: ServerX509Source;
  let foreign: TrustDomainPki;
  let partner: TrustDomainPki;
  const decisions = new DecisionLog();
  let server: tls.Server;
  let port: number;
  const policyCalls: string[] = [];

  before(async () => {
    s = await startLanyard();
    service = await workloadSource(s, 'tool-server');
    client = await workloadSource(s, 'planner', { allowedScopes: ['docs:read'] });
    stranger = await workloadSource(s, 'stranger');
    foreign = createPki('evil.test');
    partner = createPki('partner.test', { now: new Date(Date.now() - 3 * 3600_000) });
    server = createHopTlsServer(
      {
        source: service,
        // The service trusts its own domain (from the source) and a partner domain it federates with.
        bundles: {
          getX509BundleForTrustDomain: (td) =>
            td.name === 'partner.test' ? partner.bundle : service.getX509BundleForTrustDomain(td),
        },
        revocation: service.revocations,
        // Verifying a partner is not serving it: the hop names the federated domain it accepts.
        federatedTrustDomains: ['partner.test'],
        authorize: authorizeOneOf(id('planner'), 'spiffe://partner.test/agent', 'spiffe://evil.test/planner'),
        onDecision: decisions.listener,
      },
      (socket, peer) => {
        assert.equal(peerOf(socket), peer);
        socket.setEncoding('utf8');
        socket.on('data', (d: string) =>
          socket.write(`${peer.spiffeId} ${peer.context?.scopes.join(',') ?? ''} ${d}`),
        );
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.close();
    await Promise.all([service.close(), client.close(), stranger.close()]);
    await s.stop();
  });

  it('accepts a verified, authorized client and hands the handler its SPIFFE ID and context', async () => {
    const r = await exchange(port, client, id('tool-server'));
    assert.equal(r.error, undefined);
    assert.match(r.reply ?? '', new RegExp(`^${id('planner')} docs:read ping$`));
    assert.equal(r.server?.spiffeId, id('tool-server'));
    const d = await decisions.next((x) => x.peerId === id('planner') && x.decision === 'allow');
    assert.equal(d.transport, 'tls');
    assert.equal(d.service, id('tool-server'));
    assert.equal(d.context?.agentId !== undefined, true);
  });

  it('refuses a client without a certificate (ERR_CLIENT_CERT_REQUIRED), unread', async () => {
    const before = decisions.denials().length;
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: service.getX509BundleForTrustDomain(service.getX509Svid().id.trustDomain)!.toPem(),
      checkServerIdentity: () => undefined,
    });
    socket.on('error', () => undefined);
    socket.on('secureConnect', () => socket.write('hello\n'));
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString()));
    await new Promise((r) => socket.on('close', r));
    assert.equal(got, '');
    await eventually(() => decisions.denials().length > before);
    assert.equal(decisions.denials().at(-1)?.reason, 'ERR_CLIENT_CERT_REQUIRED');
  });

  it('refuses a peer the authorizer does not allow (ERR_UNAUTHORIZED)', async () => {
    const r = await exchange(port, stranger, id('tool-server'));
    assert.equal(r.reply, undefined);
    const d = await decisions.next((x) => x.peerId === id('stranger'));
    assert.equal(d.decision, 'deny');
    assert.equal(d.reason, 'ERR_UNAUTHORIZED');
  });

  it('refuses an SVID of a trust domain it has no bundle for, even with the right path (foreign domain)', async () => {
    const evil = pkiSource(issueSvid(foreign, 'spiffe://evil.test/planner'), [
      serverBundle(s),
      foreign.bundle,
    ]);
    const r = await exchange(port, evil, id('tool-server'), 'ping', [TD]);
    assert.equal(r.reply, undefined);
    const d = await decisions.next((x) => x.peerId === 'spiffe://evil.test/planner');
    assert.equal(d.reason, 'ERR_BUNDLE_NOT_FOUND');
  });

  it('refuses an impostor CA that claims the service trust domain (ERR_UNKNOWN_AUTHORITY)', async () => {
    const impostor = createPki(TD);
    const fake = pkiSource(issueSvid(impostor, id('planner')), [serverBundle(s)]);
    // The impostor's client trusts the real server bundle, so the handshake reaches the server's verifier.
    const r = await exchange(port, fake, id('tool-server'));
    assert.equal(r.reply, undefined);
    const d = await decisions.next((x) => x.peerId === id('planner') && x.decision === 'deny');
    assert.equal(d.reason, 'ERR_UNKNOWN_AUTHORITY');
  });

  it('accepts a federated partner, and refuses its expired SVID (ERR_SVID_EXPIRED)', async () => {
    const ok = pkiSource(issueSvid(partner, 'spiffe://partner.test/agent'), [
      serverBundle(s),
      partner.bundle,
    ]);
    const r = await exchange(port, ok, id('tool-server'), 'ping', [TD]);
    assert.match(r.reply ?? '', /^spiffe:\/\/partner\.test\/agent/);
    // Issued two hours ago for one hour. A StaticX509Source refuses to hand out an expired SVID, so the
    // client side presents it through a raw context.
    const old = issueSvid(partner, 'spiffe://partner.test/agent', {
      now: new Date(Date.now() - 2 * 3600_000),
      ttlSeconds: 3600,
    });
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      key: old.key.privateKey.export({ type: 'pkcs8', format: 'pem' }),
      cert: old.chain.map((c) => c.node.toString()).join('\n'),
      ca: serverBundle(s).toPem(),
      checkServerIdentity: () => undefined,
    });
    socket.on('error', () => undefined);
    await new Promise((r) => socket.on('close', r));
    const d = await decisions.next((x) => x.peerSerial === old.cert.serialHex);
    assert.equal(d.reason, 'ERR_SVID_EXPIRED');
  });

  it('the client refuses a server that is not the SPIFFE ID it expects, before sending anything', async () => {
    const r = await exchange(port, client, id('some-other-service'));
    assert.equal(r.reply, undefined);
    assertRefusal(r.error, 'ERR_UNAUTHORIZED');
    assert.match(r.error!.message, /tool-server is not SPIFFE ID .*some-other-service/);
  });

  it('a policy hook decides with the request and reports its version; a denial is ERR_POLICY_DENIED', async () => {
    const local = new DecisionLog();
    const policyServer = createHopTlsServer(
      {
        source: service,
        authorize: async (peer, req) => {
          policyCalls.push(`${peer.id.toString()} ${req.transport} ${req.service}`);
          await Promise.resolve();
          return peer.id.path === '/planner'
            ? { allow: true, policyVersion: 'sha256:abc' }
            : { allow: false, reason: 'not a planner', policyVersion: 'sha256:abc' };
        },
        onDecision: local.listener,
      },
      (socket) => socket.end('ok\n'),
    );
    await new Promise<void>((r) => policyServer.listen(0, '127.0.0.1', r));
    const p = (policyServer.address() as AddressInfo).port;
    try {
      const ok = await exchange(p, client, id('tool-server'));
      assert.equal(ok.reply, 'ok');
      const allow = await local.next((x) => x.peerId === id('planner'));
      assert.equal(allow.policyVersion, 'sha256:abc');
      const no = await exchange(p, stranger, id('tool-server'));
      assert.equal(no.reply, undefined);
      const deny = await local.next((x) => x.peerId === id('stranger'));
      assert.equal(deny.decision, 'deny');
      assert.equal(deny.reason, 'not a planner');
      assert.equal(deny.policyVersion, 'sha256:abc');
      assert.ok(policyCalls.includes(`${id('planner')} tls ${id('tool-server')}`));
    } finally {
      policyServer.close();
    }
  });

  it('rotation: after the service renews, new handshakes present the new SVID and an open connection keeps working', async () => {
    // A long-lived connection opened before the rotation.
    const opts = tlsClientOptions({ source: client, authorize: authorizeId(id('tool-server')) });
    const open = tls.connect({ host: '127.0.0.1', port, ...opts });
    open.setEncoding('utf8');
    await new Promise((r) => open.once('secureConnect', r));
    const firstSerial = (open.getPeerCertificate() as { serialNumber: string }).serialNumber.toLowerCase();
    const oldSerial = service.getX509Svid().chain[0]!.serialHex;
    assert.equal(firstSerial.replace(/^0+/, ''), oldSerial);

    await service.renewNow();
    const newSerial = service.getX509Svid().chain[0]!.serialHex;
    assert.notEqual(newSerial, oldSerial);

    const fresh = await exchange(port, client, id('tool-server'), 'after');
    assert.equal(fresh.server?.serialHex, newSerial);
    assert.match(fresh.reply ?? '', /after$/);

    const reply = new Promise<string>((r) => open.once('data', (d: string) => r(d)));
    open.write('still here\n');
    assert.match(await reply, /still here/);
    open.end();
  });

  it('revocation: once the client SVID is revoked, the next connection is refused with ERR_REVOKED', async () => {
    const victim = await workloadSource(s, 'planner-2', {}, {});
    const server2 = createHopTlsServer(
      {
        source: service,
        revocation: service.revocations,
        authorize: allOf(authorizeMemberOf(TD), authorizeOneOf(id('planner-2'))),
        onDecision: decisions.listener,
      },
      (socket) => socket.end('ok\n'),
    );
    await new Promise<void>((r) => server2.listen(0, '127.0.0.1', r));
    const p = (server2.address() as AddressInfo).port;
    try {
      assert.equal((await exchange(p, victim, id('tool-server'))).reply, 'ok');
      const serial = victim.getX509Svid().chain[0]!.serialHex;
      await s.client.revokeSvid({ serialHex: serial, reason: 'test' });
      await eventually(
        () =>
          service.revocations.isRevoked({
            serialHex: serial,
            certSha256Hex: '',
            spiffeId: '',
            delegationSessionIds: [],
          }) !== false,
        10_000,
        'the revocation reached the service',
      );
      const r = await exchange(p, victim, id('tool-server'));
      assert.equal(r.reply, undefined);
      const d = await decisions.next((x) => x.peerSerial === serial && x.decision === 'deny');
      assert.equal(d.reason, 'ERR_REVOKED');
    } finally {
      server2.close();
      await victim.close();
    }
  });

  it('a TLS 1.2 client cannot renegotiate (and so cannot swap its certificate) after it was verified', async () => {
    const svid = client.getX509Svid();
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      maxVersion: 'TLSv1.2',
      key: svid.privateKey.export({ type: 'pkcs8', format: 'pem' }),
      cert: svid.chain.map((c) => c.node.toString()).join('\n'),
      ca: serverBundle(s).toPem(),
      checkServerIdentity: () => undefined,
    });
    socket.setEncoding('utf8');
    await new Promise((r) => socket.once('secureConnect', r));
    const first = new Promise<string>((r) => socket.once('data', (d: string) => r(d)));
    socket.write('one\n');
    assert.match(await first, /one/);
    const outcome = await new Promise<string>((resolve) => {
      socket.once('error', (e) => resolve(`error: ${e.message}`));
      socket.once('close', () => resolve('closed'));
      socket.renegotiate({}, (err) => {
        if (err) resolve(`refused: ${err.message}`);
        else resolve('renegotiated');
      });
    });
    assert.notEqual(outcome, 'renegotiated');
    socket.destroy();
  });

  it('requireScopes composes: a client without the scope is refused', async () => {
    const server3 = createHopTlsServer(
      {
        source: service,
        authorize: requireScopes('docs:write'),
        onDecision: decisions.listener,
        service: 'scoped',
      },
      (socket) => socket.end('ok\n'),
    );
    await new Promise<void>((r) => server3.listen(0, '127.0.0.1', r));
    try {
      const r = await exchange((server3.address() as AddressInfo).port, client, id('tool-server'));
      assert.equal(r.reply, undefined);
      const d = await decisions.next((x) => x.service === 'scoped');
      assert.equal(d.reason, 'ERR_UNAUTHORIZED');
    } finally {
      server3.close();
    }
  });
});
