/**
 * grpc-js at a hop, against a real Lanyard server: server credentials and channel credentials from
 * ServerX509Sources, every call verified and authorized by hopService with the method as the action; refusals
 * with their gRPC status and stable code; rotation while a bidi stream stays open; revocation applying to the
 * next call on an open channel.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type { ServerX509Source } from '../../../src/client/server-x509-source';
import type { X509Source } from '../../../src/client/x509-source';
import {
  hopPeerOf,
  HOP_CHANNEL_OPTIONS,
  HOP_ERROR_CODE_METADATA_KEY,
  hopChannelCredentials,
  hopServerCredentials,
  hopService,
} from '../../../src/hop/grpc';
import type { HopPeer } from '../../../src/hop/peer';
import { authorizeId, authorizeOneOf } from '../../../src/verify';
import type { TestServer } from '../../support/test-server';
import { createPki, issueSvid } from '../../support/pki';
import { echo, EchoClient, type EchoClientApi, EchoService, type Msg } from '../../support/echo-service';
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
import { rejectsGrpcWithCode } from '../../support/grpc-refusal';

describe('hop: grpc-js server and channel credentials with X509Sources', function () {
  this.timeout(60_000);
  let s: TestServer;
  let service: ServerX509Source;
  let caller: ServerX509Source;
  let stranger: ServerX509Source;
  let grpcServer: grpc.Server;
  let address: string;
  const decisions = new DecisionLog();
  const seen: HopPeer[] = [];
  const clients: grpc.Client[] = [];

  const connect = (
    source: X509Source,
    expect = id('service-a'),
    extra: grpc.ChannelOptions = {},
  ): EchoClientApi => {
    const c = new EchoClient(
      address,
      hopChannelCredentials({
        source,
        authorize: authorizeId(expect),
        caTrustDomains: [TD],
        onDecision: decisions.listener,
      }),
      // A private subchannel pool: every client here gets its own connection (so its own handshake).
      { ...HOP_CHANNEL_OPTIONS, 'grpc.use_local_subchannel_pool': 1, ...extra },
    ) as unknown as EchoClientApi;
    clients.push(c);
    return c;
  };

  before(async () => {
    s = await startLanyard();
    service = await workloadSource(s, 'service-a');
    caller = await workloadSource(s, 'tool-runner', { allowedScopes: ['tools:run'] });
    stranger = await workloadSource(s, 'stranger');
    grpcServer = new grpc.Server();
    grpcServer.addService(
      EchoService,
      hopService(
        EchoService,
        {
          echo: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
            const peer = hopPeerOf(call)!;
            seen.push(peer);
            cb(null, {
              text: `${peer.spiffeId} ${peer.context?.scopes.join(',') ?? ''} ${call.request.text}`,
            });
          },
          chat: (call: grpc.ServerDuplexStream<Msg, Msg>) => {
            const peer = hopPeerOf(call)!;
            call.on('data', (m: Msg) => call.write({ text: `${peer.spiffeId} ${m.text}` }));
            call.on('end', () => call.end());
          },
        },
        {
          source: service,
          revocation: service.revocations,
          authorize: async (peer, req) => {
            await Promise.resolve();
            if (peer.id.toString() === id('stranger'))
              return { allow: false, reason: 'strangers may not call', policyVersion: 'v1' };
            return {
              allow: req.action === '/lanyard.test.Echo/Echo' || req.action === '/lanyard.test.Echo/Chat',
              policyVersion: 'v1',
            };
          },
          onDecision: decisions.listener,
        },
      ),
    );
    const port = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync('127.0.0.1:0', hopServerCredentials(service), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    address = `127.0.0.1:${port}`;
  });
  after(async () => {
    for (const c of clients) c.close();
    grpcServer.forceShutdown();
    await Promise.all([service.close(), caller.close(), stranger.close()]);
    await s.stop();
  });

  it('a verified caller reaches the handler, which reads its SPIFFE ID and context with hopPeerOf(call)', async () => {
    const r = await echo(connect(caller), 'hi');
    assert.equal(r.text, `${id('tool-runner')} tools:run hi`);
    assert.equal(seen.at(-1)?.policyVersion, 'v1');
    const d = await decisions.next(
      (x) => x.transport === 'grpc' && x.peerId === id('tool-runner') && x.action !== undefined,
    );
    assert.equal(d.decision, 'allow');
    assert.equal(d.action, '/lanyard.test.Echo/Echo');
    assert.equal(d.service, id('service-a'));
    // The caller's own check of the server, in the handshake, is reported too.
    const serverCheck = await decisions.next((x) => x.peerId === id('service-a'));
    assert.equal(serverCheck.decision, 'allow');
  });

  it('no client certificate: UNAUTHENTICATED, ERR_CLIENT_CERT_REQUIRED', async () => {
    const creds = grpc.credentials.createSsl(Buffer.from(serverBundle(s).toPem()), null, null, {
      checkServerIdentity: () => undefined,
    });
    const c = new EchoClient(address, creds, HOP_CHANNEL_OPTIONS) as unknown as EchoClientApi;
    clients.push(c);
    await rejectsGrpcWithCode(echo(c, 'x'), grpc.status.UNAUTHENTICATED, 'ERR_CLIENT_CERT_REQUIRED');
  });

  it('policy denial: PERMISSION_DENIED, ERR_POLICY_DENIED, with the policy reason and version recorded', async () => {
    const err = await rejectsGrpcWithCode(
      echo(connect(stranger), 'x'),
      grpc.status.PERMISSION_DENIED,
      'ERR_POLICY_DENIED',
    );
    assert.match(err.details, /strangers may not call/);
    const d = await decisions.next((x) => x.peerId === id('stranger') && x.decision === 'deny');
    assert.equal(d.reason, 'strangers may not call');
    assert.equal(d.policyVersion, 'v1');
  });

  it('foreign trust domain: UNAUTHENTICATED (grpc-js hides a certificate OpenSSL did not chain to the bundle)', async () => {
    const foreign = createPki('evil.test');
    const evil = pkiSource(issueSvid(foreign, 'spiffe://evil.test/tool-runner'), [
      serverBundle(s),
      foreign.bundle,
    ]);
    const err = await rejectsGrpcWithCode(
      echo(connect(evil), 'x'),
      grpc.status.UNAUTHENTICATED,
      'ERR_CLIENT_CERT_REQUIRED',
    );
    assert.match(err.details, /chains to this service's trust bundle/);
  });

  it('the caller refuses a server with another SPIFFE ID: the call never reaches it', async () => {
    const before = seen.length;
    try {
      await echo(connect(caller, id('service-b')), 'x');
      assert.fail('the call succeeded');
    } catch (e) {
      assert.equal((e as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
    }
    assert.equal(seen.length, before);
    const d = await decisions.next((x) => x.peerId === id('service-a') && x.decision === 'deny');
    assert.equal(d.reason, 'ERR_UNAUTHORIZED');
  });

  it('authorizers work on the server side too: one not listed is PERMISSION_DENIED, ERR_UNAUTHORIZED', async () => {
    const server2 = new grpc.Server();
    server2.addService(
      EchoService,
      hopService(
        EchoService,
        { echo: (_c: unknown, cb: grpc.sendUnaryData<Msg>) => cb(null, { text: 'ok' }) },
        { source: service, authorize: authorizeOneOf(id('tool-runner')) },
      ),
    );
    const port = await new Promise<number>((resolve, reject) =>
      server2.bindAsync('127.0.0.1:0', hopServerCredentials(service), (e, p) => (e ? reject(e) : resolve(p))),
    );
    try {
      const mk = (src: X509Source): EchoClientApi => {
        const c = new EchoClient(
          `127.0.0.1:${port}`,
          hopChannelCredentials({ source: src, authorize: authorizeId(id('service-a')) }),
          { ...HOP_CHANNEL_OPTIONS, 'grpc.use_local_subchannel_pool': 1 },
        ) as unknown as EchoClientApi;
        clients.push(c);
        return c;
      };
      assert.equal((await echo(mk(caller), 'x')).text, 'ok');
      await rejectsGrpcWithCode(echo(mk(stranger), 'x'), grpc.status.PERMISSION_DENIED, 'ERR_UNAUTHORIZED');
    } finally {
      server2.forceShutdown();
    }
  });

  it('rotation: new connections see the renewed server SVID while an open bidi stream keeps working', async () => {
    const long = connect(caller);
    const stream = long.chat();
    const replies: string[] = [];
    stream.on('data', (m: Msg) => replies.push(m.text));
    stream.write({ text: 'one' });
    await eventually(() => replies.length === 1, 10_000, 'first reply');
    const oldSerial = service.getX509Svid().chain[0]!.serialHex;

    await service.renewNow();
    await caller.renewNow();
    const newSerial = service.getX509Svid().chain[0]!.serialHex;
    assert.notEqual(newSerial, oldSerial);

    // A new connection: the client checks the server in its handshake and records the serial it saw.
    await echo(connect(caller), 'fresh');
    const d = await decisions.next((x) => x.peerId === id('service-a') && x.peerSerial === newSerial);
    assert.equal(d.decision, 'allow');
    // And the server saw the caller's renewed SVID on it.
    assert.equal(seen.at(-1)?.serialHex, caller.getX509Svid().chain[0]!.serialHex);

    stream.write({ text: 'two' });
    await eventually(() => replies.length === 2, 10_000, 'second reply on the old stream');
    assert.equal(replies[1], `${id('tool-runner')} two`);
    stream.end();
  });

  it('revocation: after RevokeSvid, the next call on an open channel is refused with ERR_REVOKED', async () => {
    const victim = await workloadSource(s, 'tool-runner-2');
    try {
      const c = connect(victim);
      assert.match((await echo(c, 'before')).text, /before$/);
      const serial = victim.getX509Svid().chain[0]!.serialHex;
      await s.client.revokeSvid({ serialHex: serial, reason: 'compromised' });
      // Poll with a generous bound: the revocation travels server -> WatchRevocations -> the service's cache.
      let last: unknown;
      await eventually(
        async () => {
          try {
            await echo(c, 'after');
            return false;
          } catch (e) {
            last = e;
            return true;
          }
        },
        10_000,
        'a refusal',
      );
      const err = last as grpc.ServiceError;
      assert.equal(err.code, grpc.status.UNAUTHENTICATED);
      assert.equal(err.metadata.get(HOP_ERROR_CODE_METADATA_KEY)[0], 'ERR_REVOKED');
    } finally {
      await victim.close();
    }
  });
});
