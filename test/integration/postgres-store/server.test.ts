/**
 * A whole server on the PostgreSQL store (store.postgres in its config): registration, join-token attestation,
 * sessions with delegation and EndSession's cascade, the CRL, a restart on the same database; the password comes
 * from a 0600 file and never reaches a log line.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { PgStore } from '../../../src/store/postgres/pg-store';
import { verifyX509Svid } from '../../../src/verify';
import { usePostgresDatabase } from '../../support/postgres-cluster';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { rejectsGrpc, rejectsWithWireCode } from '../../support/grpc-refusal';
import { attest, connectPublic, newKey } from '../../support/public-client';
import {
  createGrant,
  delegate,
  endSession,
  id,
  redeemGrant,
  register,
  serialOf,
  startSession,
  TD,
} from '../../support/sessions';

describe('server on the PostgreSQL store', function () {
  this.timeout(60_000);
  let dir: string;
  let passwordFile: string;
  let server: TestServer | undefined;
  const pg = usePostgresDatabase('server', {
    beforeDrop: async () => {
      await server?.stop();
      server = undefined;
    },
  });

  beforeEach(() => {
    dir = tempDataDir();
    passwordFile = path.join(dir, 'pg-password');
    fs.writeFileSync(passwordFile, `${pg.cluster.password}\n`, { mode: 0o600 });
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const start = (): Promise<TestServer> =>
    startTestServer({
      dir,
      config: { postgres: { url: pg.cluster.url(pg.database), poolSize: 5, passwordFile } },
    });

  it('attests, runs sessions and ends them on PostgreSQL, and keeps it all across a restart', async () => {
    server = await start();
    assert.equal(server.running.store.kind, 'postgres');
    assert.ok(server.running.store instanceof PgStore);

    const planner = await register(server, 'planner', {
      allowedScopes: ['a', 'b'],
      maxDelegationDepth: 2,
      allowedDelegates: [id('tool')],
    });
    const tool = await register(server, 'tool');
    verifyX509Svid(planner.chain, server.running.ca.bundle());
    const { agent: session, res } = await startSession(server, planner, { scopes: ['a', 'b'] });
    const child = await delegate(server, session, tool, ['a']);
    const ended = await endSession(server, session, res.sessionId, 'task done');
    assert.deepEqual([...ended.endedSessionIds].sort(), [res.sessionId, child.sessionId].sort());

    // What the server wrote is in the database, not in the data dir.
    const rows = await pg.cluster.query(pg.database, 'SELECT id, ended_at FROM sessions ORDER BY depth');
    assert.equal(rows.length, 2);
    assert.ok(rows.every((r) => r.ended_at !== null));
    assert.ok(!fs.existsSync(path.join(dir, 'lanyard.db')));
    const serials = (await server.running.store.listRevokedSerials(new Date())).map((r) => r.serialHex);
    assert.ok(serials.includes(serialOf(session)));
    assert.ok(serials.includes(serialOf(child.agent)));

    const logs = server.logs.join('');
    assert.ok(logs.includes('"kind":"postgres"'), 'logs which store it opened');
    assert.ok(!logs.includes(pg.cluster.password), 'never logs the password');

    // Restart on the same data dir (CA keys) and database: the state is there, a spent token stays spent.
    const { token } = await server.client.createJoinToken({ spiffeId: id('planner') });
    const bundlePem = server.running.ca.bundle().toPem();
    await server.stop();
    server = await start();
    verifyX509Svid(planner.chain, server.running.ca.bundle());
    const pub = connectPublic(server.running.publicAddress, bundlePem, TD);
    try {
      await attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(token),
        csr: newKey().csr,
      });
      await rejectsGrpc(
        attest(pub.attestation, {
          attestorType: 'join_token',
          evidence: Buffer.from(token),
          csr: newKey().csr,
        }),
        grpc.status.UNAUTHENTICATED,
        'already used',
      );
    } finally {
      pub.close();
    }
    assert.equal((await server.running.store.getSession(res.sessionId)).endReason, 'task done');
  });

  it("holds a grant's depth bound on PostgreSQL, across a restart, as the child's session limit", async () => {
    server = await start();
    const planner = await register(server, 'planner', {
      allowedScopes: ['a'],
      maxDelegationDepth: 3,
      allowedDelegates: [id('tool')],
    });
    const tool = await register(server, 'tool', {
      allowedScopes: ['a'],
      maxDelegationDepth: 3,
      allowedDelegates: [id('retrieval')],
    });
    const { agent: session } = await startSession(server, planner, { scopes: ['a'] });
    const grant = await createGrant(server, session, { childId: id('tool'), scopes: ['a'], maxDepth: 0 });
    const rows = await pg.cluster.query(pg.database, 'SELECT max_depth FROM grants');
    assert.deepEqual(
      rows.map((r) => r.max_depth),
      [0],
    );

    // The grant outlives a restart with its bound: the redeemed session may not delegate.
    await server.stop();
    server = await start();
    const child = await redeemGrant(server, tool, grant);
    const sessionId = verifyX509Svid(child.chain, server.running.ca.bundle()).context!.sessionId;
    assert.equal((await server.running.store.getSession(sessionId)).depthLimit, 1);
    await rejectsWithWireCode(
      createGrant(server, child, { childId: id('retrieval'), scopes: ['a'] }),
      'ERR_DELEGATION_TOO_DEEP',
    );
    assert.equal((await pg.cluster.query(pg.database, 'SELECT id FROM grants')).length, 1, 'nothing written');
  });

  it('refuses to start with a password file that others can read, naming the file and not its contents', async () => {
    fs.chmodSync(passwordFile, 0o644);
    await assert.rejects(start(), (e: Error) => {
      assert.match(e.message, /password_file/);
      assert.match(e.message, /chmod 600/);
      assert.ok(!e.message.includes(pg.cluster.password));
      return true;
    });
  });

  it('refuses to start with a wrong password: nothing is served', async () => {
    fs.writeFileSync(passwordFile, 'not-the-password\n', { mode: 0o600 });
    await assert.rejects(start(), /password authentication failed/);
  });
});
