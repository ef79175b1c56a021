/**
 * The audit wrapper names the caller from the verification the call's own authentication made (resolveCaller
 * notes it, authenticated-peer.ts) instead of verifying the caller's SVID a second time; without one it verifies
 * the certificate itself as of the call's arrival, and a caller that does not verify is recorded as
 * `unverified:<what it claims>`, as before.
 *
 * Real CA and SQLite store (DataDir), real audit recorder and key, the real wrapper (auditService) around a
 * one-method service whose handler is called as grpc-js calls it. The call is a plain object with grpc-js's
 * getAuthContext shape (no TLS socket behind it, so the peer certificate is read from the auth context, as for a
 * call grpc-js authorized).
 *
 * To tell whether the wrapper verified again, its clock is set after the SVID's expiry: its own verification
 * then fails (`unverified:`), while the authentication's, made at a time inside the SVID's validity, passed.
 */
import assert from 'node:assert/strict';
import type * as grpc from '@grpc/grpc-js';
import type { CaManager } from '../../../src/ca';
import type { AuditEvent, AuditRecord } from '../../../src/audit/record';
import { RotatingAuditKey } from '../../../src/audit/rotating-key';
import { resolveCaller } from '../../../src/server/auth/resolve-caller';
import { auditService, type AuditCaller, type MethodAudit } from '../../../src/server/audit/audited-service';
import { authenticatedPeerOf, noteAuthenticatedPeer } from '../../../src/server/audit/authenticated-peer';
import { AuditRecorder } from '../../../src/server/audit/recorder';
import { verifyPeerSvid, type PeerCall } from '../../../src/server/tls/peer-svid';
import type { SqliteStore } from '../../../src/store';
import { encodeAgentContext } from '../../../src/x509/agent-context/codec';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { DataDir, TD } from '../../support/ca';
import { baseContext } from '../../support/pki';
import { removeDir, tempDir } from '../../support/tmp';

const CHAIN = `spiffe://${TD}/lanyard/server`;
const CALLER = `spiffe://${TD}/workload/caller`;
const TTL_SECONDS = 300;

type Call = PeerCall & { request: unknown };

function callWith(der: Uint8Array): Call {
  const raw = Buffer.from(der);
  return { request: {}, getAuthContext: () => ({ sslPeerCertificate: { raw } }) };
}

/** A one-method service definition: all the wrapper reads of it is the method's name, path and stream flags. */
const DEFINITION = {
  renew: {
    path: '/test.Audited/Renew',
    requestStream: false,
    responseStream: false,
    requestSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
    requestDeserialize: (b: Buffer): unknown => JSON.parse(b.toString()),
    responseSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
    responseDeserialize: (b: Buffer): unknown => JSON.parse(b.toString()),
  },
} as unknown as grpc.ServiceDefinition;

describe('the audit wrapper names the caller from the call’s own authentication', function () {
  this.timeout(30_000);
  const dirs: string[] = [];
  const data: DataDir[] = [];
  afterEach(async () => {
    for (const d of data.splice(0)) await d.stop();
    for (const d of dirs.splice(0)) removeDir(d);
  });

  const start = async (): Promise<{ dir: DataDir; ca: CaManager; store: SqliteStore }> => {
    const path = tempDir('caller-naming');
    dirs.push(path);
    const dir = new DataDir(path);
    data.push(dir);
    const { ca, store } = await dir.start();
    return { dir, ca, store };
  };

  /** A workload SVID with an agent context, issued by `ca` now, valid for TTL_SECONDS. */
  const svidOf = async (ca: CaManager): Promise<Uint8Array> =>
    (
      await ca.signX509Svid({
        spiffeId: CALLER,
        publicKey: generateSigningKeyPair().publicKey,
        ttlSeconds: TTL_SECONDS,
        agentContextDer: encodeAgentContext(
          baseContext({ sessionId: 'workload:caller', scopes: ['docs:read', 'docs:write'] }),
        ),
      })
    ).chain[0]!;

  /**
   * The wrapped method: `handler` plays the handler (it may note the peer), then refuses or answers. The wrapper
   * runs with `wrapperClock`. Resolves with the records the call left once the answer is out and they are stored.
   */
  const runCall = async (
    env: { dir: DataDir; ca: CaManager; store: SqliteStore },
    call: Call,
    wrapperClock: () => Date,
    handler: (call: Call) => void,
    refuse: boolean,
    describe: (caller: AuditCaller) => AuditEvent[] = (caller) => [
      { event: 'svid.renew', decision: 'allow', ...caller },
    ],
  ): Promise<{ records: AuditRecord[]; named: AuditCaller[] }> => {
    const keyDir = tempDir('caller-naming-key');
    dirs.push(keyDir);
    const recorder = new AuditRecorder({
      store: env.store,
      keys: RotatingAuditKey.open(keyDir, env.dir.clock.now),
      chain: CHAIN,
      clock: env.dir.clock.read,
      logger: env.dir.log.logger,
      checkpointIntervalSeconds: 3600,
    });
    const named: AuditCaller[] = [];
    const methods: Record<string, MethodAudit> = {
      renew: {
        event: 'svid.renew',
        allowed: (_req: never, _res: never, caller) => {
          named.push(caller);
          return describe(caller);
        },
      },
    };
    const wrapped = auditService(
      {
        name: 'test.Audited',
        definition: DEFINITION,
        implementation: {
          renew: ((c: Call, answer: grpc.sendUnaryData<unknown>) => {
            handler(c);
            if (refuse) answer({ code: 7, details: 'refused' });
            else answer(null, {});
          }) as unknown as grpc.UntypedHandleCall,
        },
      },
      { recorder, logger: env.dir.log.logger, ca: env.ca, clock: wrapperClock, methods, readOnly: [] },
    );
    const before = (await env.store.audit.head(CHAIN)).seq;
    const unary = wrapped.implementation.renew as unknown as grpc.handleUnaryCall<unknown, unknown>;
    await new Promise<void>((resolve) =>
      unary(call as unknown as grpc.ServerUnaryCall<unknown, unknown>, () => resolve()),
    );
    // A refusal's record is queued, not awaited before the answer: wait until it is stored.
    for (;;) {
      const head = await env.store.audit.head(CHAIN);
      if (head.seq > before) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const { records } = await env.store.audit.readRecords(CHAIN, before, 10);
    return { records, named };
  };

  /** A clock after the SVID's expiry: the wrapper's own verification at it fails. */
  const afterExpiry = (dir: DataDir): (() => Date) => {
    const late = new Date(dir.clock.now.getTime() + (TTL_SECONDS + 60) * 1000);
    return () => late;
  };

  it('a refusal names the caller the authentication verified, without verifying it again', async () => {
    const env = await start();
    const der = await svidOf(env.ca);
    const call = callWith(der);
    const authenticate = (c: Call): void =>
      noteAuthenticatedPeer(c, env.ca, verifyPeerSvid(c, env.ca, env.dir.clock.now));
    const { records } = await runCall(env, call, afterExpiry(env.dir), authenticate, true);
    assert.equal(records.length, 1);
    const r = records[0]!;
    assert.equal(r.decision, 'deny');
    assert.equal(r.actor, CALLER);
    assert.equal(r.serial, verifyPeerSvid(call, env.ca, env.dir.clock.now).chain[0]!.serialHex);
    assert.equal(r.sessionId, 'workload:caller');
    assert.deepEqual(r.scopes, ['docs:read', 'docs:write']);
  });

  it('without the authentication’s answer the wrapper verifies itself: an expired SVID is `unverified:`', async () => {
    const env = await start();
    const call = callWith(await svidOf(env.ca));
    const { records } = await runCall(env, call, afterExpiry(env.dir), () => undefined, true);
    assert.equal(records.length, 1);
    assert.equal(records[0]!.actor, `unverified:${CALLER}`);
    assert.equal(records[0]!.serial, undefined);
    assert.equal(records[0]!.sessionId, undefined);
  });

  it('an answer noted against another CA is not taken', async () => {
    const env = await start();
    const other = await start();
    const call = callWith(await svidOf(env.ca));
    // A verification that passed, but against a CaManager the wrapper does not use.
    const peer = verifyPeerSvid(call, env.ca, env.dir.clock.now);
    const { records } = await runCall(
      env,
      call,
      afterExpiry(env.dir),
      (c) => noteAuthenticatedPeer(c, other.ca, peer),
      true,
    );
    assert.equal(records[0]!.actor, `unverified:${CALLER}`);
  });

  it('an SVID of another CA is `unverified:` (nothing noted, the wrapper’s own check fails)', async () => {
    const env = await start();
    const other = await start();
    const call = callWith(await svidOf(other.ca));
    const { records } = await runCall(
      env,
      call,
      env.dir.clock.read,
      (c) => {
        // The authentication refuses: it notes nothing.
        assert.throws(() => verifyPeerSvid(c, env.ca, env.dir.clock.now));
      },
      true,
    );
    assert.equal(records[0]!.actor, `unverified:${CALLER}`);
    assert.equal(authenticatedPeerOf(call, env.ca), undefined);
  });

  it('the caller is named the same either way (allowed call, the describer’s caller and the record)', async () => {
    const env = await start();
    const der = await svidOf(env.ca);
    const noted = await runCall(
      env,
      callWith(der),
      env.dir.clock.read,
      (c) => noteAuthenticatedPeer(c, env.ca, verifyPeerSvid(c, env.ca, env.dir.clock.now)),
      false,
    );
    const own = await runCall(env, callWith(der), env.dir.clock.read, () => undefined, false);
    assert.deepEqual(noted.named, own.named);
    assert.equal(noted.named[0]!.actor, CALLER);
    const fields = (r: AuditRecord): Partial<AuditRecord> => {
      const { seq: _s, hash: _h, prevHash: _p, time: _t, ...rest } = r;
      return rest;
    };
    assert.deepEqual(fields(noted.records[0]!), fields(own.records[0]!));
    assert.equal(noted.records[0]!.decision, 'allow');
  });

  it('an allowed event gets the caller as actor and decision allow; an actor the describer set is kept', async () => {
    const env = await start();
    const der = await svidOf(env.ca);
    const authenticate = (c: Call): void =>
      noteAuthenticatedPeer(c, env.ca, verifyPeerSvid(c, env.ca, env.dir.clock.now));
    // The describer leaves the actor out and says deny: the record has the caller and allow (as the spread had).
    const plain = await runCall(env, callWith(der), env.dir.clock.read, authenticate, false, () => [
      { event: 'svid.renew', decision: 'deny', subject: 'spiffe://example.org/issued' },
    ]);
    assert.equal(plain.records[0]!.actor, CALLER);
    assert.equal(plain.records[0]!.decision, 'allow');
    assert.equal(plain.records[0]!.event, 'svid.renew');
    assert.equal(plain.records[0]!.subject, 'spiffe://example.org/issued');
    // Its own actor (an admin record naming another party) and its own event type win over the wrapper's.
    const own = await runCall(env, callWith(der), env.dir.clock.read, authenticate, false, () => [
      { event: 'svid.issue', decision: 'allow', actor: 'admin-socket' },
      { event: 'svid.issue', decision: 'allow', actor: undefined, serial: 'ab12' },
    ]);
    assert.deepEqual(
      own.records.map((r) => [r.event, r.actor, r.serial]),
      [
        ['svid.issue', 'admin-socket', undefined],
        ['svid.issue', undefined, 'ab12'],
      ],
    );
  });
});

describe('resolveCaller notes the peer it verified for the audit wrapper', function () {
  this.timeout(30_000);
  const dirs: DataDir[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) {
      await d.stop();
      removeDir(d.dir);
    }
  });

  it('after its verification passed (also when a later check refuses), and not when it failed', async () => {
    const dir = new DataDir(tempDir('caller-naming-resolve'));
    dirs.push(dir);
    const { ca, store } = await dir.start();
    const der = (
      await ca.signX509Svid({
        spiffeId: CALLER,
        publicKey: generateSigningKeyPair().publicKey,
        ttlSeconds: TTL_SECONDS,
        agentContextDer: encodeAgentContext(baseContext({ sessionId: 'workload:caller', scopes: [] })),
      })
    ).chain[0]!;

    // No registration entry is stored: the SVID verifies, then the entry check refuses.
    const call = callWith(der);
    await assert.rejects(resolveCaller({ ca, store }, call, 'workload', dir.clock.now));
    const noted = authenticatedPeerOf(call, ca);
    assert.equal(noted?.id.toString(), CALLER);

    // Expired: the verification itself fails, and nothing is noted.
    const late = callWith(der);
    const expired = new Date(dir.clock.now.getTime() + (TTL_SECONDS + 60) * 1000);
    await assert.rejects(resolveCaller({ ca, store }, late, 'workload', expired), {
      code: 'ERR_SVID_EXPIRED',
    });
    assert.equal(authenticatedPeerOf(late, ca), undefined);
  });
});
