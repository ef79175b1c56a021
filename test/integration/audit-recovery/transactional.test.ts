/**
 * Allow records commit in the same SQLite transaction as the state change they describe. A trigger created
 * by the test (on a second connection to the server's database file) makes every insert into audit_records
 * fail; each state-changing call then answers UNAVAILABLE (ERR_AUDIT_WRITE_FAILED) and its change is rolled
 * back. With the trigger gone, each call leaves exactly one allow record per thing it changed (the audit
 * wrapper adds none of its own), and the chain stays linear.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import * as grpc from '@grpc/grpc-js';
import type { AuditRecord } from '../../../src/audit/record';
import { genesisHash } from '../../../src/audit/chain';
import { SQLITE_FILE_NAME } from '../../../src/store';
import type { NewSession } from '../../../src/store/types';
import { signGrant } from '../../../src/client/delegation';
import { ERROR_CODE_METADATA_KEY } from '../../../src/internal/grpc-call';
import { createCsr } from '../../../src/x509/csr';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { startTestServer, type TestServer } from '../../support/test-server';
import { id, register, sessionClient, startSession, unary } from '../../support/sessions';
import { rejectsWithStatus } from '../../support/grpc-refusal';

const TD = 'spiffe://lanyard.local';
const SELECTOR = (uid: number) => [{ type: 'unix', value: `uid:${uid}` }];

describe('audit: allow records commit with the state change', function () {
  this.timeout(60_000);
  let s: TestServer;
  let db: Database.Database;

  const failAppends = (): void => {
    db.exec(`CREATE TRIGGER test_fail_audit BEFORE INSERT ON audit_records
             BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END`);
  };
  const allowAppends = (): void => {
    db.exec('DROP TRIGGER IF EXISTS test_fail_audit');
  };
  const trail = async (): Promise<AuditRecord[]> =>
    (await s.running.store.audit.readRecords(s.running.audit.chain, 0, 100_000)).records;
  const allows = async (event: string): Promise<AuditRecord[]> =>
    (await trail()).filter((r) => r.event === event && r.decision === 'allow');
  const auditFails = (p: Promise<unknown>) =>
    rejectsWithStatus(p, grpc.status.UNAVAILABLE, 'audit trail could not be written').then((e) =>
      assert.equal(e.lanyardCode, 'ERR_AUDIT_WRITE_FAILED'),
    );
  const session = (id: string, parent?: string): NewSession => ({
    id,
    entryId: 'e-agent',
    spiffeId: `${TD}/agents/a`,
    rootSessionId: parent === undefined ? id : 'root-' + id.split('-')[1],
    ...(parent !== undefined && { parentSessionId: parent }),
    principal: { id: 'alice', issuer: 'https://idp.example', provenance: 'workload' },
    intent: 'test',
    scopes: [],
    depth: parent === undefined ? 0 : 1,
    depthLimit: 2,
    expiresAt: new Date(Date.now() + 3600_000),
  });

  before(async () => {
    s = await startTestServer();
    db = new Database(path.join(s.config.dataDir, SQLITE_FILE_NAME), { timeout: 5000 });
  });
  afterEach(allowAppends);
  after(async () => {
    db.close();
    await s.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
  });

  it('entry create, batch create, update, delete and join-token create change nothing when the record fails', async () => {
    const kept = await s.client.createEntry({
      entry: { spiffeId: `${TD}/agents/kept`, selectors: SELECTOR(1) },
    });
    const entriesBefore = (await s.client.listEntries({})).entries;
    const tokensBefore = db.prepare('SELECT count(*) AS n FROM join_tokens').get() as { n: number };
    // Admin reads (the listEntries and getEntry checks here) have records of their own: not counted.
    const changes = async (): Promise<number> =>
      (await trail()).filter((r) => r.event !== 'admin.read').length;
    const recordsBefore = await changes();
    failAppends();

    await auditFails(
      s.client.createEntry({ entry: { spiffeId: `${TD}/agents/new`, selectors: SELECTOR(2) } }),
    );
    await auditFails(
      s.client.batchCreateEntry({
        entries: [
          { spiffeId: `${TD}/agents/b1`, selectors: SELECTOR(3) },
          { spiffeId: `${TD}/agents/b2`, selectors: SELECTOR(4) },
        ],
      }),
    );
    await auditFails(
      s.client.updateEntry({
        entry: { ...kept.entry!, spiffeId: `${TD}/agents/renamed` },
        updateMask: ['spiffe_id'],
      }),
    );
    await auditFails(s.client.deleteEntry({ id: kept.entry!.id }));
    await auditFails(s.client.createJoinToken({ entryId: kept.entry!.id, ttlSeconds: 600 }));

    allowAppends();
    assert.deepEqual((await s.client.listEntries({})).entries, entriesBefore);
    const after = await s.client.getEntry({ id: kept.entry!.id });
    assert.equal(after.entry?.spiffeId, `${TD}/agents/kept`);
    assert.equal(after.entry?.revision, kept.entry!.revision);
    assert.deepEqual(db.prepare('SELECT count(*) AS n FROM join_tokens').get(), tokensBefore);
    // Not one record reached the chain while appends failed (refusals included: they are only logged).
    assert.equal(await changes(), recordsBefore);
  });

  it('EndSession (cascade) and RevokeSvid change nothing when the record fails', async () => {
    await s.running.store.createSession(session('root-1'));
    await s.running.store.createSession(session('child-1', 'root-1'));
    const revocationsBefore = await s.running.store.lastRevocationSequence();
    failAppends();

    await auditFails(s.client.endSession({ sessionId: 'root-1', reason: 'done' }));
    await auditFails(s.client.revokeSvid({ serialHex: 'abc123', reason: 'leaked' }));

    allowAppends();
    for (const id of ['root-1', 'child-1']) {
      assert.equal((await s.running.store.getSession(id)).endedAt, undefined, `${id} ended`);
    }
    assert.equal(await s.running.store.getRevocation('certificate', 'abc123'), undefined);
    assert.equal(await s.running.store.lastRevocationSequence(), revocationsBefore);
  });

  it('the normal path leaves exactly one allow record per change, and a linear chain', async () => {
    const count = async (event: string) => (await allows(event)).length;
    const before = {
      create: await count('entry.create'),
      update: await count('entry.update'),
      del: await count('entry.delete'),
      token: await count('join_token.create'),
      end: await count('session.end'),
      revoke: await count('svid.revoke'),
    };

    const one = await s.client.createEntry({
      entry: { spiffeId: `${TD}/agents/one`, selectors: SELECTOR(10) },
    });
    await s.client.batchCreateEntry({
      entries: [
        { spiffeId: `${TD}/agents/two`, selectors: SELECTOR(11) },
        { spiffeId: `${TD}/agents/three`, selectors: SELECTOR(12) },
      ],
    });
    assert.equal(await count('entry.create'), before.create + 3);

    const updated = await s.client.updateEntry({
      entry: { ...one.entry!, spiffeId: `${TD}/agents/uno` },
      updateMask: ['spiffe_id'],
    });
    assert.equal(await count('entry.update'), before.update + 1);
    assert.equal((await allows('entry.update')).at(-1)?.subject, `${TD}/agents/uno`);

    await s.client.deleteEntry({ id: updated.entry!.id });
    assert.equal(await count('entry.delete'), before.del + 1);
    assert.equal((await allows('entry.delete')).at(-1)?.agentId, updated.entry!.id);

    const token = await s.client.createJoinToken({ spiffeId: `${TD}/agents/two`, ttlSeconds: 600 });
    assert.equal(await count('join_token.create'), before.token + 1);
    const tokenRecord = (await allows('join_token.create')).at(-1)!;
    assert.equal(tokenRecord.reason, `token ${token.tokenId}`);
    assert.ok(!JSON.stringify(tokenRecord).includes(token.token), 'the token secret reached the trail');

    await s.running.store.createSession(session('root-2'));
    await s.running.store.createSession(session('child-2', 'root-2'));
    const ended = await s.client.endSession({ sessionId: 'root-2', reason: 'task done' });
    assert.deepEqual([...ended.endedSessionIds].sort(), ['child-2', 'root-2']);
    const endRecords = (await allows('session.end')).slice(before.end);
    assert.deepEqual(endRecords.map((r) => r.sessionId).sort(), ['child-2', 'root-2']);
    for (const r of endRecords) {
      assert.equal(r.rootSessionId, 'root-2');
      assert.equal(r.principal, 'alice');
      assert.equal(r.actor, 'admin-socket');
    }
    assert.equal(endRecords.find((r) => r.sessionId === 'child-2')?.reason, 'cascade from root-2');

    await s.client.revokeSvid({ serialHex: 'DEF456', reason: 'leaked' });
    assert.equal(await count('svid.revoke'), before.revoke + 1);
    assert.equal((await allows('svid.revoke')).at(-1)?.serial, 'def456');

    // One chain, no fork: seq 1, 2, 3, ... each pointing at the hash before.
    const all = await trail();
    all.forEach((r, i) => {
      assert.equal(r.seq, i + 1);
      assert.equal(r.prevHash, i === 0 ? genesisHash(s.running.audit.chain) : all[i - 1]!.hash);
    });
  });

  it('a refused call still leaves its deny record and no allow record', async () => {
    const denies = async () =>
      (await trail()).filter((r) => r.event === 'entry.delete' && r.decision === 'deny');
    const deniesBefore = (await denies()).length;
    const allowsBefore = (await allows('entry.delete')).length;
    await rejectsWithStatus(s.client.deleteEntry({ id: 'no-such-entry' }), grpc.status.NOT_FOUND);
    // The deny record is queued, not awaited: wait for it.
    for (let i = 0; i < 100 && (await denies()).length === deniesBefore; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal((await denies()).length, deniesBefore + 1);
    assert.equal((await allows('entry.delete')).length, allowsBefore);
  });
});

describe('audit: StartSession, CreateGrant and RedeemGrant record in their own transaction', function () {
  this.timeout(60_000);
  let s: TestServer;
  let db: Database.Database;
  const count = (table: string): number =>
    (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  const allowCount = async (event: string): Promise<number> =>
    (await s.running.store.audit.readRecords(s.running.audit.chain, 0, 100_000)).records.filter(
      (r) => r.event === event && r.decision === 'allow',
    ).length;
  const auditFails = async (p: Promise<unknown>): Promise<void> => {
    await assert.rejects(p, (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.UNAVAILABLE, e.details);
      assert.equal(e.metadata.get(ERROR_CODE_METADATA_KEY)[0], 'ERR_AUDIT_WRITE_FAILED');
      return true;
    });
  };

  before(async () => {
    s = await startTestServer();
    db = new Database(path.join(s.config.dataDir, SQLITE_FILE_NAME), { timeout: 5000 });
  });
  afterEach(() => {
    db.exec('DROP TRIGGER IF EXISTS test_fail_audit');
  });
  after(async () => {
    db.close();
    await s.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
  });
  const failAppends = (): void => {
    db.exec(`CREATE TRIGGER test_fail_audit BEFORE INSERT ON audit_records
             BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END`);
  };

  it('a failed record leaves no session, no grant and an unspent grant; the normal path one record each', async () => {
    const planner = await register(s, 'planner', {
      allowedScopes: ['docs:read'],
      maxDelegationDepth: 1,
      allowedDelegates: [id('tool-runner')],
    });
    const tool = await register(s, 'tool-runner', { allowedScopes: ['docs:read'] });

    const sessions = count('sessions');
    failAppends();
    await auditFails(startSession(s, planner, { scopes: ['docs:read'] }));
    db.exec('DROP TRIGGER test_fail_audit');
    assert.equal(count('sessions'), sessions);
    const starts = await allowCount('session.start');
    const { agent: session } = await startSession(s, planner, { scopes: ['docs:read'] });
    assert.equal(await allowCount('session.start'), starts + 1);
    assert.equal(count('sessions'), sessions + 1);

    // The tool-runner's key, named by the grant (the failed CreateGrant leaves it ungranted).
    const toolKey = generateSigningKeyPair('ec-p256');
    const binding = () => {
      const g = signGrant({
        parentCert: session.chain[0]!,
        parentKey: session.key,
        childId: id('tool-runner'),
        childKey: toolKey.publicKey,
        scopes: ['docs:read'],
      });
      return { binding: Buffer.from(g.bindingDer), signature: Buffer.from(g.signature) };
    };
    const pc = sessionClient(s, session);
    try {
      failAppends();
      await auditFails(unary(pc.createGrant.bind(pc), binding()));
      db.exec('DROP TRIGGER test_fail_audit');
      assert.equal(count('grants'), 0);
      const grant = await unary(pc.createGrant.bind(pc), binding());
      assert.equal(await allowCount('grant.create'), 1);
      assert.equal(count('grants'), 1);

      const tc = sessionClient(s, tool);
      try {
        const redeem = () =>
          unary(tc.redeemGrant.bind(tc), {
            grantId: grant.grantId,
            foreignGrant: undefined,
            csr: Buffer.from(createCsr(toolKey.privateKey).der),
          });
        failAppends();
        await auditFails(redeem());
        db.exec('DROP TRIGGER test_fail_audit');
        assert.equal((await s.running.store.getGrant(grant.grantId)).redeemedAt, undefined);
        assert.equal(count('sessions'), sessions + 1);
        // The grant was not spent by the failed call: it redeems now, once.
        const redeemed = await redeem();
        assert.equal(await allowCount('grant.redeem'), 1);
        assert.equal((await s.running.store.getGrant(grant.grantId)).redeemedSessionId, redeemed.sessionId);
      } finally {
        tc.close();
      }
    } finally {
      pc.close();
    }
  });
});
