/**
 * The audit trail of several servers on one PostgreSQL database: one shared chain, each server signing its
 * checkpoints with its own key and recording its key history in the database. `lanyard audit verify --server`
 * on any server checks every checkpoint with the key of the server that signed it; a record altered, a
 * checkpoint signed by a key no server has, or a key history that does not verify breaks it.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AuditSigningKey } from '../../../src/audit/audit-key';
import { signCheckpoint } from '../../../src/audit/checkpoint';
import { waitFor } from '../../support/agent';
import { rootsOf, startSharedServer } from '../../support/ha';
import { usePostgresDatabase } from '../../support/postgres-cluster';
import { runCli, type CliResult } from '../../support/server-process';
import { endSession, register, startSession } from '../../support/sessions';
import type { TestServer } from '../../support/test-server';
import { tempDir } from '../../support/tmp';

describe('the audit trail of several servers on one database', function () {
  this.timeout(180_000);
  let servers: TestServer[] = [];
  const pg = usePostgresDatabase('audit', {
    beforeDrop: async () => {
      for (const s of servers) await s.stop().catch(() => undefined);
    },
  });

  beforeEach(async () => {
    servers = [];
    for (let i = 0; i < 3; i++) servers.push(await startSharedServer(pg.cluster, pg.database));
    await waitFor(() => servers.every((s) => rootsOf(s).size === 3));
    // Activity on every server, each signing checkpoints of the shared chain with its own key.
    for (const [i, s] of servers.entries()) {
      const planner = await register(s, `planner-${i}`);
      const { agent, res } = await startSession(s, planner, { scopes: [] });
      await endSession(s, agent, res.sessionId, 'done');
      await s.running.audit.checkpoint();
    }
  });

  const verify = (s: TestServer, ...extra: string[]): Promise<CliResult> =>
    runCli(['audit', 'verify', '--server', '--socket', s.config.adminSocketPath, ...extra]);
  const signers = async (): Promise<Set<string>> =>
    new Set(
      (await pg.cluster.query(pg.database, 'SELECT DISTINCT key_id FROM audit_checkpoints')).map(
        (r) => r.key_id as string,
      ),
    );

  it('verifies the shared chain on every server, each checkpoint with its signer’s key', async () => {
    const keys = new Set(servers.map((s) => s.running.audit.key.publicKey.keyId));
    assert.equal(keys.size, 3, 'each server has its own audit key');
    assert.deepEqual(await signers(), keys, 'every server signed checkpoints of the one chain');
    for (const s of servers) {
      const r = await verify(s);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /chain spiffe:\/\/lanyard\.local\/lanyard\/server: OK/);
    }
    // An export carries every server's key: it verifies anywhere, away from the servers.
    const dir = tempDir('audit-export');
    const file = path.join(dir, 'chain.jsonl');
    const exported = await runCli(['audit', 'export', '--socket', servers[1]!.config.adminSocketPath]);
    assert.equal(exported.code, 0, exported.stderr);
    fs.writeFileSync(file, exported.stdout);
    const offline = await runCli(['audit', 'verify', '--file', file]);
    assert.equal(offline.code, 0, offline.stdout + offline.stderr);
    // With keys from outside the database: each server's own bundle, one --bundle each. All of them are needed.
    const bundles: string[] = [];
    for (const [i, s] of servers.entries()) {
      const shown = await runCli([
        'bundle',
        'show',
        '--format',
        'jwks',
        '--socket',
        s.config.adminSocketPath,
      ]);
      assert.equal(shown.code, 0, shown.stderr);
      bundles.push(path.join(dir, `bundle-${i}.json`));
      fs.writeFileSync(bundles[i]!, shown.stdout);
    }
    const anchored = await runCli([
      'audit',
      'verify',
      '--file',
      file,
      ...bundles.flatMap((b) => ['--bundle', b]),
    ]);
    assert.equal(anchored.code, 0, anchored.stdout + anchored.stderr);
    const partial = await runCli([
      'audit',
      'verify',
      '--file',
      file,
      ...bundles.slice(0, 2).flatMap((b) => ['--bundle', b]),
    ]);
    assert.equal(partial.code, 1, partial.stdout + partial.stderr);
    assert.match(partial.stdout, /which is not among the trusted keys/);
  });

  it('follows a key rotation on one server', async () => {
    await servers[2]!.running.audit.rotateKey();
    await servers[2]!.running.audit.checkpoint();
    const r = await verify(servers[0]!);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('breaks at a record altered in the database', async () => {
    await pg.cluster.query(
      pg.database,
      `UPDATE audit_records SET body = replace(body, '"allow"', '"deny"')
       WHERE seq = (SELECT min(seq) FROM audit_records WHERE body LIKE '%"allow"%')`,
    );
    for (const s of servers) {
      const r = await verify(s);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout + r.stderr, /BROKEN at \d+/);
    }
  });

  it('refuses a checkpoint signed by a key no server has', async () => {
    const head = await servers[0]!.running.store.audit.head(servers[0]!.running.audit.chain);
    const stranger = AuditSigningKey.generate();
    const forged = signCheckpoint(head, stranger, new Date(Date.now() + 1000));
    await pg.cluster.query(
      pg.database,
      'INSERT INTO audit_checkpoints (chain, seq, head_hash, time, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6)',
      [forged.chain, forged.seq, forged.headHash, forged.time, forged.keyId, forged.signature],
    );
    const r = await verify(servers[1]!);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`names audit key ${stranger.publicKey.keyId}, which is not among`));
  });

  it('does not trust a server whose key history in the database does not verify', async () => {
    const victim = servers[2]!;
    const rows = await pg.cluster.query(
      pg.database,
      'SELECT server_id, introductions_json FROM audit_server_keys',
    );
    assert.equal(rows.length, 3, 'every server recorded its key history');
    const victimKey = victim.running.audit.key.publicKey.keyId;
    const row = rows.find((r) => (r.introductions_json as string).includes(victimKey))!;
    // A window moved: the introduction's signature no longer covers it.
    const intros = JSON.parse(row.introductions_json as string) as { validFrom: string }[];
    intros[0]!.validFrom = new Date(0).toISOString();
    await pg.cluster.query(
      pg.database,
      'UPDATE audit_server_keys SET introductions_json = $1 WHERE server_id = $2',
      [JSON.stringify(intros), row.server_id],
    );
    const r = await verify(servers[0]!);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`names audit key ${victimKey}, which is not among`));
    // The server itself still trusts its own key: from its data dir, not from the database.
    const own = await verify(victim);
    assert.equal(own.code, 0, own.stdout + own.stderr);
  });
});
