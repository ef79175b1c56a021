/**
 * Revocation by an admin: `lanyard session end` and `lanyard svid revoke` over the admin socket (the CLI as a
 * child process), RevokeSvid reaching a streamed RevocationCache, and the public listener's admin check.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import { EXIT_OK, EXIT_REJECTED, EXIT_USAGE } from '../../../src/cli/exit-codes';
import { watchRevocationsInto } from '../../../src/client/revocation-watch';
import { SessionServiceClient, StartSessionRequest } from '../../../src/gen/lanyard/v1/session';
import { TrustDomain } from '../../../src/spiffe';
import { RevocationCache, verifyX509Svid } from '../../../src/verify';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { startTestServer, type TestServer } from '../../support/test-server';
import { newKey } from '../../support/public-client';
import { BIN, runCli, type CliResult } from '../../support/server-process';
import {
  type Agent,
  delegate,
  id,
  register,
  sessionClient,
  startSession,
  TD,
  unary,
} from '../../support/sessions';
import { rejectsGrpc } from '../../support/grpc-refusal';

const lanyard = (args: string[]): Promise<CliResult> => runCli(args, {}, path.dirname(BIN));

const isCode = (code: string) => (e: unknown) => (e as { code?: string }).code === code;

describe('revocation by an admin', function () {
  this.timeout(60_000);
  let s: TestServer;
  let planner: Agent;
  let tool: Agent;
  let adminWl: Agent;
  let strangerWl: Agent;
  const bundle = (): X509Bundle => X509Bundle.fromPem(TrustDomain.parse(TD), s.running.ca.bundle().toPem());

  before(async () => {
    s = await startTestServer();
    planner = await register(s, 'planner', {
      allowedScopes: ['docs:read'],
      maxDelegationDepth: 1,
      allowedDelegates: [id('tool-runner')],
    });
    tool = await register(s, 'tool-runner', { allowedScopes: ['docs:read'] });
    adminWl = await register(s, 'ops', { admin: true });
    strangerWl = await register(s, 'stranger');
  });
  after(() => s.stop());

  /** planner session -> tool-runner delegated session. */
  const chain = async (): Promise<{ root: Agent; rootId: string; child: Agent; childId: string }> => {
    const root = await startSession(s, planner, { scopes: ['docs:read'] });
    const child = await delegate(s, root.agent, tool, ['docs:read']);
    return { root: root.agent, rootId: root.res.sessionId, child: child.agent, childId: child.sessionId };
  };

  it("`lanyard session end` ends someone else's session and, transitively, its delegated sessions", async () => {
    const c = await chain();
    const r = await lanyard(['session', 'end', c.rootId, '--socket', s.config.adminSocketPath, '--json']);
    assert.equal(r.code, EXIT_OK, r.stderr);
    const out = JSON.parse(r.stdout) as { endedSessionIds: string[] };
    assert.deepEqual(out.endedSessionIds, [c.rootId, c.childId]);
    const child = await s.running.store.getSession(c.childId);
    assert.match(child.endReason ?? '', /admin socket/);
    const again = await lanyard(['session', 'end', c.rootId, '--socket', s.config.adminSocketPath]);
    assert.equal(again.code, EXIT_OK, again.stderr);
    assert.match(again.stdout, /already ended/);
    const missing = await lanyard(['session', 'end', 's-nope', '--socket', s.config.adminSocketPath]);
    assert.equal(missing.code, EXIT_REJECTED);
    assert.match(missing.stderr, /ERR_NOT_FOUND/);
  });

  it('`lanyard svid revoke` reaches a streamed RevocationCache: that SVID fails ERR_REVOKED, a sibling verifies', async () => {
    const a = await startSession(s, planner, { scopes: ['docs:read'] });
    const sibling = await startSession(s, planner, { scopes: ['docs:read'] });
    const cache = new RevocationCache();
    const watcher = sessionClient(s, strangerWl);
    const watch = watchRevocationsInto(watcher, cache, { retryMs: 100 });
    try {
      await watch.ready;
      verifyX509Svid(a.agent.chain, bundle(), { revocation: cache });
      const delivered = new Promise<void>((resolve) => cache.onChange(() => resolve()));
      const serial = ParsedCertificate.fromDer(a.agent.chain[0]!).serialHex;
      // As openssl prints it: upper case with colons.
      const printed = serial
        .toUpperCase()
        .padStart(serial.length + (serial.length % 2), '0')
        .match(/../g)!
        .join(':');
      const r = await lanyard([
        'svid',
        'revoke',
        printed,
        '--reason',
        'key leaked',
        '--socket',
        s.config.adminSocketPath,
      ]);
      assert.equal(r.code, EXIT_OK, r.stderr);
      assert.match(r.stdout, new RegExp(`revoked serial ${serial}`));
      await delivered;
      assert.throws(
        () => verifyX509Svid(a.agent.chain, bundle(), { revocation: cache }),
        isCode('ERR_REVOKED'),
      );
      verifyX509Svid(sibling.agent.chain, bundle(), { revocation: cache });
      // The revoked certificate can no longer call the server either.
      const rc = sessionClient(s, a.agent);
      await assert.rejects(
        unary(rc.endSession.bind(rc), { sessionId: a.res.sessionId, reason: '' }),
        (e: grpc.ServiceError) =>
          e.code === grpc.status.UNAUTHENTICATED || e.code === grpc.status.PERMISSION_DENIED,
      );
      rc.close();
    } finally {
      watch.close();
      watcher.close();
    }
    const bad = await lanyard(['svid', 'revoke', 'not-hex', '--socket', s.config.adminSocketPath]);
    assert.equal(bad.code, EXIT_USAGE);
    assert.match(bad.stderr, /ERR_INVALID_ARGUMENT/);
  });

  it("over the public listener: RevokeSvid and ending others' sessions need an admin SVID", async () => {
    const victim = await startSession(s, planner, { scopes: ['docs:read'] });
    const serial = ParsedCertificate.fromDer(victim.agent.chain[0]!).serialHex;
    const stranger = sessionClient(s, strangerWl);
    await rejectsGrpc(
      unary(stranger.revokeSvid.bind(stranger), { serialHex: serial, reason: '' }),
      grpc.status.PERMISSION_DENIED,
    );
    // A session SVID of the victim's own agent is not an admin either.
    const own = sessionClient(s, victim.agent);
    await rejectsGrpc(
      unary(own.revokeSvid.bind(own), { serialHex: serial, reason: '' }),
      grpc.status.PERMISSION_DENIED,
    );
    own.close();
    stranger.close();
    assert.equal(await s.running.store.getRevocation('certificate', serial), undefined);

    const ops = sessionClient(s, adminWl);
    const ended = await unary(ops.endSession.bind(ops), {
      sessionId: victim.res.sessionId,
      reason: 'incident',
    });
    assert.deepEqual(ended.endedSessionIds, [victim.res.sessionId]);
    const revoked = await unary(ops.revokeSvid.bind(ops), { serialHex: serial, reason: 'incident' });
    assert.equal(revoked.revocation!.id, serial);
    ops.close();
  });

  it('the admin socket refuses the calls that act as an agent', async () => {
    const c = new SessionServiceClient(
      `unix://${s.config.adminSocketPath}`,
      grpc.credentials.createInsecure(),
    );
    await rejectsGrpc(
      unary(c.startSession.bind(c), StartSessionRequest.fromPartial({ csr: newKey().csr })),
      grpc.status.UNIMPLEMENTED,
    );
    c.close();
  });
});
