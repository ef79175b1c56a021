/**
 * Sessions that outlive their first SVID, against a real server with short SVID TTLs: the sources startSession
 * and redeemGrant return renew at about half-life into the same session and delegation chain, and a hop keeps
 * accepting them for more than two SVID lifetimes. When the session is over (ended, revoked parent, its end
 * reached) the source says so once ('ended', typed reason), stops, and never reissues.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as https from 'node:https';
import express from 'express';
import * as grpc from '@grpc/grpc-js';
import type { ServerX509Source } from '../../../src/client/server-x509-source';
import { startSession } from '../../../src/hop/handoff';
import type { SessionX509Source } from '../../../src/client/handoff';
import { lanyardExpress } from '../../../src/hop/express';
import { followSource, HopHttpsAgent } from '../../../src/hop/tls';
import { authorizeOneOf } from '../../../src/verify';
import { startTestServer, type TestServer } from '../../support/test-server';
import { connectPublic, newKey, renewCall, type ClientIdentity } from '../../support/public-client';
import { rejectsGrpcWithCode } from '../../support/grpc-refusal';
import { createCsr } from '../../../src/x509/csr';
import { ParsedCertificate } from '../../../src/x509/certificate';
import {
  assertSourceEnded,
  closeServer,
  endOf,
  handOff,
  httpsGetJson,
  id,
  listenHttps,
  TD,
  workloadSource,
} from '../../support/hop';

/** Each session SVID lives this long (the entries' x509SvidTtlSeconds): short, so renewals happen in the test. */
const SVID_TTL = 3;

interface Seen {
  caller: string;
  sessionId: string;
  rootSessionId: string;
  chain: string[];
  linkCerts: string[];
  serial: string;
}

describe('sessions: the session sources renew within the session and end with it', function () {
  this.timeout(120_000);
  let s: TestServer;
  let plannerWl: ServerX509Source;
  let toolWl: ServerX509Source;
  let hopWl: ServerX509Source;
  let hop: https.Server;
  let port: number;
  const open: { close(): Promise<void> }[] = [];

  before(async () => {
    s = await startTestServer({
      config: {
        limits: {
          liveSessionsPerAgent: 1000,
          endedSessionsPerAgent: 3600,
          endedSessionsWindowSeconds: 3600,
          maxSessionTtlSeconds: 600,
          watchers: 4096,
          watchersPerConnection: 4,
          watchersPerIdentity: 256,
        },
      },
    });
    const retry = { retry: { initialMs: 100, maxMs: 500 } };
    plannerWl = await workloadSource(
      s,
      'planner',
      {
        allowedScopes: ['docs:read', 'tools:run'],
        maxDelegationDepth: 2,
        allowedDelegates: [id('tool-runner')],
        x509SvidTtlSeconds: 4 * SVID_TTL,
      },
      retry,
    );
    toolWl = await workloadSource(
      s,
      'tool-runner',
      { allowedScopes: ['docs:read'], maxDelegationDepth: 1, x509SvidTtlSeconds: SVID_TTL },
      retry,
    );
    hopWl = await workloadSource(s, 'docs-service', {}, retry);
    const app = express();
    app.use(
      lanyardExpress({
        source: hopWl,
        revocation: hopWl.revocations,
        authorize: authorizeOneOf(id('planner'), id('tool-runner')),
      }),
    );
    app.get('/whoami', (req, res) => {
      const ctx = req.agent!.context!;
      const seen: Seen = {
        caller: req.agent!.spiffeId,
        sessionId: ctx.sessionId,
        rootSessionId: ctx.rootSessionId,
        chain: ctx.delegation.map((l) => l.spiffeId),
        linkCerts: ctx.delegation.map((l) => Buffer.from(l.certSha256).toString('hex')),
        serial: req.agent!.chain[0]!.serialHex,
      };
      res.json(seen);
    });
    ({ server: hop, port } = await listenHttps(hopWl, app));
    followSource(hop, hopWl);
  });
  after(async () => {
    await closeServer(hop);
    for (const o of open) await o.close();
    await Promise.all([plannerWl, toolWl, hopWl].map((x) => x.close()));
    await s.stop();
  });

  /** One request to the hop as `source`, on a fresh connection (so the current SVID is the one presented). */
  async function callHop(source: SessionX509Source): Promise<Seen> {
    const agent = new HopHttpsAgent({ source, authorize: authorizeOneOf(id('docs-service')) });
    try {
      const r = await httpsGetJson<Seen>(port, '/whoami', agent);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body;
    } finally {
      agent.destroy();
    }
  }

  /**
   * Calls the hop until the task has outlived two lifetimes of the first SVID (renewals in between), checking
   * every answer with `check`; returns every serial the hop saw.
   */
  async function runLongTask(source: SessionX509Source, check: (seen: Seen) => void): Promise<Set<string>> {
    const first = source.getX509Svid();
    // What is left of it now (its notBefore is backdated for clock skew, which is not lifetime it serves).
    const lifetime = first.notAfter.getTime() - Date.now();
    const serials = new Set<string>();
    for (;;) {
      const seen = await callHop(source);
      check(seen);
      serials.add(seen.serial);
      if (Date.now() > first.notAfter.getTime() + lifetime && serials.size >= 3) return serials;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it('a root session longer than two SVID lifetimes keeps its session id at the hop while its SVID renews', async () => {
    const session = await startSession({
      server: s.running.publicAddress,
      source: toolWl,
      scopes: ['docs:read'],
      intent: 'a long task',
      ttlSeconds: 120,
      retry: { initialMs: 100, maxMs: 500 },
    });
    open.push(session);
    const updates: number[] = [];
    session.on('update', () => updates.push(Date.now()));
    const first = session.getX509Svid();
    assert.ok(first.notAfter.getTime() - Date.now() <= SVID_TTL * 1000, 'each SVID lives the entry TTL only');
    assert.ok(session.sessionExpiresAt.getTime() > Date.now() + 100_000, 'the session lasts what was asked');
    const serials = await runLongTask(session, (seen) => {
      assert.equal(seen.caller, id('tool-runner'));
      assert.equal(seen.sessionId, session.sessionId);
      assert.equal(seen.rootSessionId, session.sessionId);
    });
    assert.ok(serials.size >= 3, 'the hop saw renewed SVIDs');
    assert.ok(updates.length >= 2, 'each renewal was an update event');
    assert.equal(session.ended, undefined);
  });

  it('a delegated session renews with the key its parent bound, keeps its chain, and ends with its grant', async () => {
    const planner = await startSession({
      server: s.running.publicAddress,
      source: plannerWl,
      scopes: ['docs:read', 'tools:run'],
      intent: 'delegate a long read',
    });
    open.push(planner);
    const { child, key } = await handOff(s, planner, 'tool-runner', toolWl, ['docs:read'], {
      retry: { initialMs: 100, maxMs: 500 },
    });
    open.push(child);
    const ended = endOf(child);
    const firstLink = child.getX509Svid().context!.delegation[0]!;
    assert.ok(child.sessionExpiresAt.getTime() <= planner.getX509Svid().notAfter.getTime());
    const serials = await runLongTask(child, (seen) => {
      assert.equal(seen.sessionId, child.sessionId);
      assert.equal(seen.rootSessionId, planner.sessionId);
      assert.deepEqual(seen.chain, [id('planner')]);
      assert.deepEqual(seen.linkCerts, [Buffer.from(firstLink.certSha256).toString('hex')]);
    });
    assert.ok(serials.size >= 3, 'the hop saw renewed SVIDs');
    // Every renewal kept the key the parent's binding names.
    assert.equal(createHash('sha256').update(child.getX509Svid().chain[0]!.spkiDer).digest('hex'), key.id);
    // No renewal reaches past the grant: at its end the source ends, and serves nothing after.
    await assertSourceEnded(ended, child, 'ERR_SESSION_EXPIRED');
    assert.ok(Date.now() >= child.sessionExpiresAt.getTime() - 1000);
  });

  it('refuses: a delegated session renewed with a CSR for another key is ERR_INVALID_ARGUMENT', async () => {
    const planner = await startSession({
      server: s.running.publicAddress,
      source: plannerWl,
      scopes: ['docs:read', 'tools:run'],
      intent: 'delegate, then renew with another key',
    });
    open.push(planner);
    const { child, key } = await handOff(s, planner, 'tool-runner', toolWl, ['docs:read'], {
      retry: { initialMs: 100, maxMs: 500 },
    });
    open.push(child);
    const presented = child.getX509Svid();
    const identity: ClientIdentity = { key: key.privateKey, chain: presented.chain.map((c) => c.der) };
    const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD, identity);
    try {
      // The CA checks the CSR where it signs (one signing-pool request), and refuses it for another key.
      await rejectsGrpcWithCode(
        renewCall(pub, newKey().csr),
        grpc.status.INVALID_ARGUMENT,
        'ERR_INVALID_ARGUMENT',
        `session ${child.sessionId} was delegated to this key`,
      );
      // A CSR for the bound key renews into the same session, for that key.
      const renewed = await renewCall(pub, Buffer.from(createCsr(key.privateKey).der));
      const leaf = ParsedCertificate.fromDer(renewed.svid!.certChain[0]!);
      assert.ok(Buffer.from(leaf.spkiDer).equals(Buffer.from(presented.chain[0]!.spkiDer)));
    } finally {
      pub.close();
    }
  });

  it('refuses: an ended session ends its source at once (revocation feed) with ERR_SESSION_ENDED, no reissue', async () => {
    const session = await startSession({
      server: s.running.publicAddress,
      source: toolWl,
      scopes: ['docs:read'],
      ttlSeconds: 120,
    });
    open.push(session);
    const ended = endOf(session);
    let updates = 0;
    session.on('update', () => (updates += 1));
    await s.client.endSession({ sessionId: session.sessionId, reason: 'task done' });
    await assertSourceEnded(ended, session, 'ERR_SESSION_ENDED');
    // Past the point it would have renewed: nothing new arrived.
    await new Promise((r) => setTimeout(r, SVID_TTL * 1000));
    assert.equal(updates, 0);
    assert.equal(session.ended?.code, 'ERR_SESSION_ENDED');
  });

  it('refuses: without a revocation feed, the refused renewal of an ended session ends the source', async () => {
    const session = await startSession({
      server: s.running.publicAddress,
      source: toolWl,
      scopes: ['docs:read'],
      ttlSeconds: 120,
      revocations: false,
      retry: { initialMs: 100, maxMs: 500 },
    });
    open.push(session);
    const ended = endOf(session);
    await s.client.endSession({ sessionId: session.sessionId });
    await assertSourceEnded(ended, session, 'ERR_SESSION_ENDED');
  });

  it("refuses: revoking the parent's SVID that signed the grant ends the delegated session's source (ERR_REVOKED)", async () => {
    const planner = await startSession({
      server: s.running.publicAddress,
      source: plannerWl,
      scopes: ['docs:read'],
    });
    open.push(planner);
    const { child } = await handOff(s, planner, 'tool-runner', toolWl, ['docs:read'], {
      revocations: false,
      retry: { initialMs: 100, maxMs: 500 },
    });
    open.push(child);
    const ended = endOf(child);
    await s.client.revokeSvid({
      serialHex: planner.getX509Svid().chain[0]!.serialHex,
      reason: 'compromised',
    });
    const reason = await assertSourceEnded(ended, child, 'ERR_REVOKED');
    assert.match(reason.message, /revoked/);
  });

  it('refuses: a session TTL past limits.max_session_ttl is cut to it', async () => {
    const session = await startSession({
      server: s.running.publicAddress,
      source: toolWl,
      scopes: ['docs:read'],
      ttlSeconds: 100_000,
    });
    open.push(session);
    assert.ok(session.sessionExpiresAt.getTime() <= Date.now() + 600_000);
    assert.ok(session.sessionExpiresAt.getTime() > Date.now() + 500_000);
  });
});
