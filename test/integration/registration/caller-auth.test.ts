/**
 * One caller-authentication path (src/server/auth/resolve-caller.ts), proven on a real server over mTLS:
 * every mTLS call of the public listener × every way a caller must be refused, with the gRPC status and the
 * stable code each refusal gets. Cells where the caller is of the right kind are positive controls: the call
 * gets past authentication and fails (or succeeds) on its own request. Then the reproduction of issue 13.3:
 * an ended tool-runner session redeemed a planner's grant and got a fresh delegated SVID.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import * as grpc from '@grpc/grpc-js';
import { GetCaRequest, AdminServiceClient } from '../../../src/gen/lanyard/v1/admin';
import { AttestationServiceClient, RenewRequest } from '../../../src/gen/lanyard/v1/attestation';
import {
  AuditServiceClient,
  IngestAuditChainRequest,
  QueryAuditRecordsRequest,
} from '../../../src/gen/lanyard/v1/audit';
import {
  BatchNewX509SvidRequest,
  FetchEntriesRequest,
  NewJwtSvidRequest,
  NodeServiceClient,
} from '../../../src/gen/lanyard/v1/node';
import { ListEntriesRequest, RegistrationServiceClient } from '../../../src/gen/lanyard/v1/registration';
import {
  CreateGrantRequest,
  EndSessionRequest,
  GetSessionRequest,
  ListSessionsRequest,
  RedeemGrantRequest,
  RevokeSvidRequest,
  SessionServiceClient,
  StartSessionRequest,
} from '../../../src/gen/lanyard/v1/session';
import type { CallerKind } from '../../../src/server/auth/resolve-caller';
import { ERROR_CODE_METADATA_KEY } from '../../../src/internal/grpc-call';
import { verifyX509Svid } from '../../../src/verify';
import { SQLITE_FILE_NAME } from '../../../src/store/sqlite/sqlite-store';
import { startTestServer, type TestServer } from '../../support/test-server';
import { contextlessSvid, expiredSvid, foreignSvid } from '../../support/identities';
import {
  newKey,
  publicCredentials,
  PUBLIC_CHANNEL_OPTIONS,
  type ClientIdentity,
} from '../../support/public-client';
import {
  createGrant,
  id,
  redeemGrant as redeemGrantAs,
  register,
  serialOf,
  sessionClient,
  startSession,
  TD,
  unary,
  type Agent,
  type TestGrant,
} from '../../support/sessions';

type Unary<Req> = (
  req: Req,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (e: grpc.ServiceError | null, r: unknown) => void,
) => void;

interface Call {
  name: string;
  kind: CallerKind;
  invoke(s: TestServer, who: ClientIdentity | undefined): Promise<unknown>;
  /** The outcome of a call that got past authentication (the request itself is empty or made up). */
  passed: string;
}

/** One call on a fresh client of `Client` with `who`'s mTLS credentials (none: server-authenticated TLS). */
function callWith<C extends grpc.Client, Req>(
  Client: new (address: string, creds: grpc.ChannelCredentials, options: object) => C,
  method: (c: C) => Unary<Req>,
  req: () => Req,
): (s: TestServer, who: ClientIdentity | undefined) => Promise<unknown> {
  return async (s, who) => {
    const c = new Client(
      s.running.publicAddress,
      publicCredentials(s.running.ca.bundle().toPem(), TD, who),
      PUBLIC_CHANNEL_OPTIONS,
    );
    try {
      return await new Promise((resolve, reject) =>
        method(c).call(c, req(), new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e, r) =>
          e ? reject(e) : resolve(r),
        ),
      );
    } finally {
      c.close();
    }
  };
}

const CALLS: Call[] = [
  {
    name: 'AttestationService.Renew',
    kind: 'workload-or-session',
    invoke: callWith(
      AttestationServiceClient,
      (c) => c.renew,
      () => RenewRequest.fromPartial({ csr: newKey().csr }),
    ),
    passed: 'OK',
  },
  {
    name: 'SessionService.StartSession',
    kind: 'workload',
    invoke: callWith(
      SessionServiceClient,
      (c) => c.startSession,
      () => StartSessionRequest.fromPartial({ csr: newKey().csr }),
    ),
    passed: 'OK',
  },
  {
    name: 'SessionService.CreateGrant',
    kind: 'session',
    invoke: callWith(
      SessionServiceClient,
      (c) => c.createGrant,
      () => CreateGrantRequest.fromPartial({}),
    ),
    passed: 'ERR_GRANT_BINDING_INVALID',
  },
  {
    name: 'SessionService.RedeemGrant',
    kind: 'workload',
    invoke: callWith(
      SessionServiceClient,
      (c) => c.redeemGrant,
      () => RedeemGrantRequest.fromPartial({ grantId: 'f'.repeat(64), csr: newKey().csr }),
    ),
    passed: 'ERR_GRANT_NOT_FOUND',
  },
  {
    name: 'SessionService.EndSession',
    kind: 'workload-or-session',
    invoke: callWith(
      SessionServiceClient,
      (c) => c.endSession,
      () => EndSessionRequest.fromPartial({ sessionId: 's-no-such-session' }),
    ),
    passed: 'ERR_NOT_FOUND',
  },
  {
    name: 'SessionService.RevokeSvid',
    kind: 'admin',
    invoke: callWith(
      SessionServiceClient,
      (c) => c.revokeSvid,
      () => RevokeSvidRequest.fromPartial({ serialHex: 'abc', reason: 'table test' }),
    ),
    passed: 'OK',
  },
  {
    name: 'SessionService.GetSession',
    kind: 'admin',
    invoke: callWith(
      SessionServiceClient,
      (c) => c.getSession,
      () => GetSessionRequest.fromPartial({ sessionId: 's-no-such-session' }),
    ),
    passed: 'ERR_NOT_FOUND',
  },
  {
    name: 'SessionService.ListSessions',
    kind: 'admin',
    invoke: callWith(
      SessionServiceClient,
      (c) => c.listSessions,
      () => ListSessionsRequest.fromPartial({}),
    ),
    passed: 'OK',
  },
  {
    name: 'AuditService.IngestAuditChain',
    kind: 'workload-or-session',
    invoke: callWith(
      AuditServiceClient,
      (c) => c.ingestAuditChain,
      () => IngestAuditChainRequest.fromPartial({}),
    ),
    passed: 'ERR_AUDIT_RECORD_INVALID',
  },
  {
    name: 'AuditService.QueryAuditRecords',
    kind: 'admin',
    invoke: callWith(
      AuditServiceClient,
      (c) => c.queryAuditRecords,
      () => QueryAuditRecordsRequest.fromPartial({ key: { $case: 'principal', value: 'nobody' } }),
    ),
    passed: 'OK',
  },
  {
    name: 'NodeService.FetchEntries',
    kind: 'node',
    invoke: callWith(
      NodeServiceClient,
      (c) => c.fetchEntries,
      () => FetchEntriesRequest.fromPartial({}),
    ),
    passed: 'OK',
  },
  {
    name: 'NodeService.BatchNewX509Svid',
    kind: 'node',
    invoke: callWith(
      NodeServiceClient,
      (c) => c.batchNewX509Svid,
      () => BatchNewX509SvidRequest.fromPartial({}),
    ),
    passed: 'ERR_INVALID_ARGUMENT',
  },
  {
    name: 'NodeService.NewJwtSvid',
    kind: 'node',
    invoke: callWith(
      NodeServiceClient,
      (c) => c.newJwtSvid,
      () => NewJwtSvidRequest.fromPartial({ entryId: 'not-under-this-node', audience: ['a'] }),
    ),
    // The entitlement check after authentication: the entry is not under this "node".
    passed: 'ERR_UNAUTHORIZED',
  },
  {
    name: 'RegistrationService.ListEntries',
    kind: 'admin',
    invoke: callWith(
      RegistrationServiceClient,
      (c) => c.listEntries,
      () => ListEntriesRequest.fromPartial({}),
    ),
    passed: 'OK',
  },
  {
    name: 'AdminService.GetCa',
    kind: 'admin',
    invoke: callWith(
      AdminServiceClient,
      (c) => c.getCa,
      () => GetCaRequest.fromPartial({}),
    ),
    passed: 'OK',
  },
];

type Outcome = [keyof typeof grpc.status, string] | 'passes';
type Expectation = Outcome | (Partial<Record<CallerKind, Outcome>> & { other: Outcome });

interface Scenario {
  name: string;
  /** Built once the server runs; undefined = no client certificate. */
  who(): ClientIdentity | undefined;
  expect: Expectation;
}

const outcomeFor = (e: Expectation, kind: CallerKind): Outcome =>
  typeof e === 'string' || Array.isArray(e) ? e : (e[kind] ?? e.other);

async function outcomeOf(p: Promise<unknown>): Promise<[string, string, string]> {
  try {
    await p;
    return ['OK', 'OK', ''];
  } catch (e) {
    const err = e as grpc.ServiceError;
    const code = err.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
    return [grpc.status[err.code] ?? String(err.code), typeof code === 'string' ? code : 'none', err.details];
  }
}

/** Redeems `grant` as `child` (the CSR for the key the grant names): the delegated SVID and its session id. */
async function redeemGrant(
  s: TestServer,
  child: Agent,
  grant: TestGrant,
): Promise<{ agent: Agent; res: { sessionId: string } }> {
  const agent = await redeemGrantAs(s, child, grant);
  return { agent, res: { sessionId: verifyX509Svid(agent.chain, s.running.ca.bundle()).context!.sessionId } };
}

describe('caller authentication: every mTLS call × every refusal, one path', function () {
  this.timeout(180_000);
  let s: TestServer;
  let db: Database.Database;
  const ids: Record<string, ClientIdentity | undefined> = {};

  /** A registered agent that may delegate to `child` (when given). */
  const agent = (name: string, child?: string, fields: Record<string, unknown> = {}): Promise<Agent> =>
    register(s, name, {
      allowedScopes: ['x:y'],
      maxDelegationDepth: 2,
      allowedDelegates: child !== undefined ? [id(child)] : [],
      ...fields,
    });
  /** parent's session -> grant -> child's delegated session SVID; returns both sessions. */
  const delegated = async (parentName: string, childName: string) => {
    const parentWl = await agent(parentName, childName);
    const childWl = await agent(childName);
    const parent = await startSession(s, parentWl, { scopes: ['x:y'] });
    const grant = await createGrant(s, parent.agent, { childId: id(childName), scopes: ['x:y'] });
    const child = await redeemGrant(s, childWl, grant);
    return { parentWl, parent, childWl, child };
  };
  const entryIdOf = async (name: string): Promise<string> =>
    (await s.client.listEntries({ filter: { spiffeIdPrefix: id(name) } })).entries.find(
      (e) => e.spiffeId === id(name),
    )!.id;
  const revoke = (a: Agent): Promise<unknown> =>
    s.client.revokeSvid({ serialHex: serialOf(a), reason: 'test' });

  const SCENARIOS: Scenario[] = [
    {
      name: 'no client certificate',
      who: () => undefined,
      expect: ['UNAUTHENTICATED', 'ERR_CLIENT_CERT_REQUIRED'],
    },
    {
      name: 'an SVID of another CA',
      who: () => ids.foreign,
      expect: ['UNAUTHENTICATED', 'ERR_UNKNOWN_AUTHORITY'],
    },
    {
      name: 'an SVID of another trust domain',
      who: () => ids.otherDomain,
      expect: ['UNAUTHENTICATED', 'ERR_WRONG_TRUST_DOMAIN'],
    },
    {
      name: 'an expired SVID of this CA',
      who: () => ids.expired,
      expect: ['UNAUTHENTICATED', 'ERR_SVID_EXPIRED'],
    },
    {
      name: 'a revoked workload SVID',
      who: () => ids.revokedWorkload,
      expect: ['UNAUTHENTICATED', 'ERR_REVOKED'],
    },
    {
      name: 'an SVID of this CA without an agent context',
      who: () => ids.contextless,
      expect: ['PERMISSION_DENIED', 'ERR_NO_MATCHING_ENTRY'],
    },
    {
      name: 'a workload SVID whose entry was deleted',
      who: () => ids.deletedEntry,
      expect: {
        session: ['FAILED_PRECONDITION', 'ERR_NOT_A_SESSION'],
        other: ['PERMISSION_DENIED', 'ERR_NO_MATCHING_ENTRY'],
      },
    },
    {
      name: 'a (non-admin) workload SVID',
      who: () => ids.workload,
      expect: {
        session: ['FAILED_PRECONDITION', 'ERR_NOT_A_SESSION'],
        admin: ['PERMISSION_DENIED', 'ERR_UNAUTHORIZED'],
        other: 'passes',
      },
    },
    {
      name: "an admin entry's workload SVID",
      who: () => ids.admin,
      expect: { session: ['FAILED_PRECONDITION', 'ERR_NOT_A_SESSION'], other: 'passes' },
    },
    {
      name: 'a live session SVID',
      who: () => ids.liveSession,
      expect: {
        workload: ['PERMISSION_DENIED', 'ERR_UNAUTHORIZED'],
        node: ['PERMISSION_DENIED', 'ERR_NO_MATCHING_ENTRY'],
        admin: ['PERMISSION_DENIED', 'ERR_UNAUTHORIZED'],
        other: 'passes',
      },
    },
    {
      name: 'a live session SVID of an admin entry',
      who: () => ids.adminSession,
      expect: {
        workload: ['PERMISSION_DENIED', 'ERR_UNAUTHORIZED'],
        node: ['PERMISSION_DENIED', 'ERR_NO_MATCHING_ENTRY'],
        admin: ['PERMISSION_DENIED', 'ERR_UNAUTHORIZED'],
        other: 'passes',
      },
    },
    {
      name: 'an ended session',
      who: () => ids.endedSession,
      expect: ['PERMISSION_DENIED', 'ERR_SESSION_ENDED'],
    },
    {
      name: 'an expired session',
      who: () => ids.expiredSession,
      expect: ['PERMISSION_DENIED', 'ERR_SESSION_EXPIRED'],
    },
    {
      name: 'a session SVID revoked by serial',
      who: () => ids.revokedSessionSvid,
      expect: ['UNAUTHENTICATED', 'ERR_REVOKED'],
    },
    {
      name: 'a session whose workload SVID (that opened it) was revoked',
      who: () => ids.openerRevoked,
      expect: ['UNAUTHENTICATED', 'ERR_REVOKED'],
    },
    {
      name: 'a delegated session whose parent certificate was revoked',
      who: () => ids.parentCertRevoked,
      expect: ['UNAUTHENTICATED', 'ERR_REVOKED'],
    },
    {
      name: "a delegated session whose root's workload SVID was revoked",
      who: () => ids.rootOpenerRevoked,
      expect: ['UNAUTHENTICATED', 'ERR_REVOKED'],
    },
    {
      name: 'a delegated session (itself not marked ended) whose parent session ended',
      who: () => ids.ancestorEnded,
      expect: ['PERMISSION_DENIED', 'ERR_SESSION_ENDED'],
    },
    {
      name: 'a delegated session whose parent session expired',
      who: () => ids.ancestorExpired,
      expect: ['PERMISSION_DENIED', 'ERR_SESSION_EXPIRED'],
    },
    {
      name: 'a session SVID of a session this server does not know',
      who: () => ids.unknownSession,
      expect: ['PERMISSION_DENIED', 'ERR_SESSION_UNKNOWN'],
    },
    {
      name: 'a session stored before its opener was recorded',
      who: () => ids.legacySession,
      expect: ['PERMISSION_DENIED', 'ERR_SESSION_UNKNOWN'],
    },
    {
      name: 'a session SVID whose stored session belongs to another entry',
      who: () => ids.sessionOfOtherEntry,
      expect: ['PERMISSION_DENIED', 'ERR_UNAUTHORIZED'],
    },
    {
      name: 'a delegated session whose parent session is no longer stored',
      who: () => ids.parentForgotten,
      expect: ['PERMISSION_DENIED', 'ERR_SESSION_UNKNOWN'],
    },
    {
      name: 'a session whose ancestry loops (no root within the ancestor limit)',
      who: () => ids.loopedAncestry,
      expect: ['PERMISSION_DENIED', 'ERR_SESSION_UNKNOWN'],
    },
    {
      name: 'a live session whose entry was deleted',
      who: () => ids.sessionOfDeletedEntry,
      expect: {
        workload: ['PERMISSION_DENIED', 'ERR_UNAUTHORIZED'],
        admin: ['PERMISSION_DENIED', 'ERR_UNAUTHORIZED'],
        other: ['PERMISSION_DENIED', 'ERR_NO_MATCHING_ENTRY'],
      },
    },
  ];

  before(async () => {
    s = await startTestServer();
    db = new Database(path.join(s.config.dataDir, SQLITE_FILE_NAME), { timeout: 5000 });
    const sql = (q: string, ...args: unknown[]): void => void db.prepare(q).run(...args);

    ids.foreign = foreignSvid(TD, id('agents/foreign'));
    ids.otherDomain = foreignSvid('other.example', 'spiffe://other.example/agents/x');
    ids.expired = await expiredSvid(s, id('agents/expired'));
    ids.contextless = await contextlessSvid(s, id('agents/contextless'));

    const revokedWl = await agent('revoked-wl');
    await revoke(revokedWl);
    ids.revokedWorkload = revokedWl;

    ids.deletedEntry = await agent('deleted-wl');
    await s.client.deleteEntry({ id: await entryIdOf('deleted-wl') });

    const workload = await agent('plain');
    ids.workload = workload;
    ids.admin = await agent('admin', undefined, { admin: true });
    ids.liveSession = (await startSession(s, workload, { scopes: ['x:y'] })).agent;
    ids.adminSession = (await startSession(s, ids.admin as Agent)).agent;

    const ended = await startSession(s, workload);
    await s.client.endSession({ sessionId: ended.res.sessionId, reason: 'task done' });
    ids.endedSession = ended.agent;

    const expired = await startSession(s, workload);
    sql('UPDATE sessions SET expires_at = ? WHERE id = ?', Date.now() - 1000, expired.res.sessionId);
    ids.expiredSession = expired.agent;

    const revokedSession = await startSession(s, workload);
    await revoke(revokedSession.agent);
    ids.revokedSessionSvid = revokedSession.agent;

    const openerWl = await agent('opener');
    const opened = await startSession(s, openerWl);
    await revoke(openerWl);
    ids.openerRevoked = opened.agent;

    const d1 = await delegated('p1', 'c1');
    await revoke(d1.parent.agent);
    ids.parentCertRevoked = d1.child.agent;

    const d2 = await delegated('p2', 'c2');
    await revoke(d2.parentWl);
    ids.rootOpenerRevoked = d2.child.agent;

    const d3 = await delegated('p3', 'c3');
    sql(
      'UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?',
      Date.now(),
      'db edit',
      d3.parent.res.sessionId,
    );
    ids.ancestorEnded = d3.child.agent;

    const d4 = await delegated('p4', 'c4');
    sql('UPDATE sessions SET expires_at = ? WHERE id = ?', Date.now() - 1000, d4.parent.res.sessionId);
    ids.ancestorExpired = d4.child.agent;

    const unknown = await startSession(s, workload);
    sql('DELETE FROM session_certificates WHERE session_id = ?', unknown.res.sessionId);
    sql('DELETE FROM sessions WHERE id = ?', unknown.res.sessionId);
    ids.unknownSession = unknown.agent;

    const legacy = await startSession(s, workload);
    sql('UPDATE sessions SET opener_serial = NULL WHERE id = ?', legacy.res.sessionId);
    ids.legacySession = legacy.agent;

    const misfiled = await startSession(s, workload);
    sql('UPDATE sessions SET entry_id = ? WHERE id = ?', 'another-entry', misfiled.res.sessionId);
    ids.sessionOfOtherEntry = misfiled.agent;

    // The store keeps a parent while children name it; only a damaged store loses one, so this edit goes
    // around the foreign key on the test's own connection.
    const d5 = await delegated('p5', 'c5');
    db.pragma('foreign_keys = OFF');
    sql('DELETE FROM session_certificates WHERE session_id = ?', d5.parent.res.sessionId);
    sql('DELETE FROM sessions WHERE id = ?', d5.parent.res.sessionId);
    db.pragma('foreign_keys = ON');
    ids.parentForgotten = d5.child.agent;

    const looped = await startSession(s, workload);
    sql('UPDATE sessions SET parent_session_id = id WHERE id = ?', looped.res.sessionId);
    ids.loopedAncestry = looped.agent;

    const doomed = await agent('doomed');
    ids.sessionOfDeletedEntry = (await startSession(s, doomed)).agent;
    await s.client.deleteEntry({ id: await entryIdOf('doomed') });
  });
  after(async () => {
    db?.close();
    await s?.stop();
  });

  it('has a row for every scenario and a column for every kind of call', () => {
    const kinds = new Set(CALLS.map((c) => c.kind));
    assert.deepEqual([...kinds].sort(), ['admin', 'node', 'session', 'workload', 'workload-or-session']);
    assert.ok(SCENARIOS.length >= 20);
  });

  for (const call of CALLS) {
    it(`${call.name} (${call.kind}): every refusal, in one order`, async () => {
      const got: string[] = [];
      const want: string[] = [];
      for (const sc of SCENARIOS) {
        const expected = outcomeFor(sc.expect, call.kind);
        const [status, code, details] = await outcomeOf(call.invoke(s, sc.who()));
        if (expected === 'passes') {
          want.push(`${sc.name}: ${call.passed}`);
          got.push(`${sc.name}: ${code}`);
        } else {
          want.push(`${sc.name}: ${expected[0]} ${expected[1]}`);
          got.push(
            `${sc.name}: ${status} ${code}${status === expected[0] && code === expected[1] ? '' : ` (${details})`}`,
          );
        }
      }
      assert.deepEqual(got, want);
    });
  }

  it('the reproduction: an ended tool-runner session cannot redeem the planner’s grant; its workload SVID can', async () => {
    const plannerWl = await agent('repro-planner', 'repro-tool');
    const toolWl = await agent('repro-tool');
    const planner = await startSession(s, plannerWl, { scopes: ['x:y'] });
    const toolSession = await startSession(s, toolWl, { scopes: ['x:y'] });
    await s.client.endSession({ sessionId: toolSession.res.sessionId, reason: 'task done' });
    const grant = await createGrant(s, planner.agent, { childId: id('repro-tool'), scopes: ['x:y'] });

    const [status, code] = await outcomeOf(redeemGrant(s, toolSession.agent, grant));
    assert.deepEqual([status, code], ['PERMISSION_DENIED', 'ERR_SESSION_ENDED']);
    // A live session SVID redeems nothing either: the child redeems as itself (its workload SVID).
    const live = await startSession(s, toolWl, { scopes: ['x:y'] });
    assert.deepEqual((await outcomeOf(redeemGrant(s, live.agent, grant))).slice(0, 2), [
      'PERMISSION_DENIED',
      'ERR_UNAUTHORIZED',
    ]);
    // The refusals did not spend the grant.
    const ok = await redeemGrant(s, toolWl, grant);
    assert.ok(ok.res.sessionId.startsWith('s-'));
  });

  describe('EndSession: who may end which session', () => {
    it('a session ends itself and what was delegated from it, not its parent or a sibling', async () => {
      const d = await delegated('end-p', 'end-c');
      const sibling = await startSession(s, d.childWl);
      const c = sessionClient(s, d.child.agent);
      try {
        for (const target of [d.parent.res.sessionId, sibling.res.sessionId]) {
          const [, code] = await outcomeOf(unary(c.endSession.bind(c), { sessionId: target, reason: '' }));
          assert.equal(code, 'ERR_UNAUTHORIZED', target);
        }
      } finally {
        c.close();
      }
      // The parent's session SVID ends the child's session (delegated from it).
      const p = sessionClient(s, d.parent.agent);
      try {
        const r = (await unary(p.endSession.bind(p), { sessionId: d.child.res.sessionId, reason: '' })) as {
          endedSessionIds: string[];
        };
        assert.deepEqual(r.endedSessionIds, [d.child.res.sessionId]);
      } finally {
        p.close();
      }
    });

    it("an agent's workload SVID ends any session of its entry; another entry's only as an admin", async () => {
      const own = await agent('end-own');
      const other = await agent('end-other');
      const session = await startSession(s, own);
      const strangerClient = sessionClient(s, other);
      try {
        const [, code] = await outcomeOf(
          unary(strangerClient.endSession.bind(strangerClient), {
            sessionId: session.res.sessionId,
            reason: '',
          }),
        );
        assert.equal(code, 'ERR_UNAUTHORIZED');
      } finally {
        strangerClient.close();
      }
      const adminClient = sessionClient(s, ids.admin as Agent);
      try {
        await unary(adminClient.endSession.bind(adminClient), {
          sessionId: session.res.sessionId,
          reason: '',
        });
      } finally {
        adminClient.close();
      }
      const second = await startSession(s, own);
      const ownClient = sessionClient(s, own);
      try {
        await unary(ownClient.endSession.bind(ownClient), { sessionId: second.res.sessionId, reason: '' });
      } finally {
        ownClient.close();
      }
    });
  });
});
