import * as assert from 'node:assert/strict';
import { ErrorCode } from '../../../src/errors';
import { hashJoinToken } from '../../../src/internal/join-token-secret';
import { PG_LATEST_SCHEMA_VERSION } from '../../../src/store/postgres/migrations';
import { Client } from 'pg';
import { parseIntoClientConfig } from 'pg-connection-string';
import { PgStore, redactPostgresUrl, WRITE_LOCK_KEY } from '../../../src/store/postgres/pg-store';
import { usePostgresDatabase } from '../../support/postgres-cluster';
import { rejectsWithCode } from '../../support/refusal';
import { newEntry } from '../../store/conformance';

describe('PgStore specifics', function () {
  const pg = usePostgresDatabase('specifics');

  const open = (extra: { url?: string; password?: string } = {}): Promise<PgStore> =>
    PgStore.open({ url: pg.cluster.url(pg.database), password: pg.cluster.password, poolSize: 3, ...extra });

  it('applies the migrations once when several servers open a fresh database at the same moment', async () => {
    const stores = await Promise.all(Array.from({ length: 5 }, () => open()));
    try {
      const rows = await pg.cluster.query(
        pg.database,
        'SELECT version FROM schema_migrations ORDER BY version',
      );
      assert.deepEqual(
        rows.map((r) => r.version),
        Array.from({ length: PG_LATEST_SCHEMA_VERSION }, (_, i) => i + 1),
      );
      const diagnostics = await stores[0]!.diagnostics();
      assert.equal(diagnostics.schemaVersion, PG_LATEST_SCHEMA_VERSION);
      assert.ok(!diagnostics.url.includes(pg.cluster.password));
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it('refuses a database written by a newer schema', async () => {
    await (await open()).close();
    await pg.cluster.query(
      pg.database,
      'INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, now())',
      [PG_LATEST_SCHEMA_VERSION + 1, 'from the future'],
    );
    await rejectsWithCode(open(), ErrorCode.STORE_SCHEMA_TOO_NEW);
  });

  it('refuses a URL that holds a password, and never echoes it', async () => {
    const url = pg.cluster
      .url(pg.database)
      .replace(`${pg.cluster.user}@`, `${pg.cluster.user}:hunter2-secret@`);
    const err = await rejectsWithCode(open({ url }), ErrorCode.INVALID_ARGUMENT);
    assert.ok(!err.message.includes('hunter2-secret'));
    assert.ok(!redactPostgresUrl(url).includes('hunter2-secret'));
  });

  it('fails closed with a wrong password, without naming it', async () => {
    const err = await rejectsWithCode(open({ password: 'wrong-password-123' }), ErrorCode.INTERNAL);
    assert.match(err.message, /password authentication failed/);
    assert.ok(!err.message.includes('wrong-password-123'));
  });

  it('stores only the SHA-256 of a join token', async () => {
    const store = await open();
    try {
      const secret = 'lanyard-jt-this-is-the-secret';
      await store.createJoinToken({
        id: 'jt1',
        tokenHash: hashJoinToken(secret),
        entryId: 'e-1',
        spiffeId: 'spiffe://lanyard.local/a',
        expiresAt: new Date(Date.now() + 60_000),
      });
      const rows = await pg.cluster.query(pg.database, 'SELECT * FROM join_tokens');
      const dump = JSON.stringify(
        rows.map((r) => ({ ...r, token_hash: (r.token_hash as Buffer).toString('hex') })),
      );
      assert.ok(!dump.includes(secret));
      assert.ok(dump.includes(hashJoinToken(secret).toString('hex')));
    } finally {
      await store.close();
    }
  });

  it('lets exactly one of several servers consume a join token at the same moment', async () => {
    const stores = await Promise.all(Array.from({ length: 4 }, () => open()));
    try {
      await stores[0]!.createJoinToken({
        id: 'race',
        tokenHash: hashJoinToken('race'),
        entryId: 'e-1',
        spiffeId: 'spiffe://lanyard.local/a',
        expiresAt: new Date(Date.now() + 600_000),
      });
      const results = await Promise.allSettled(
        stores.flatMap((s) => [1, 2, 3].map(() => s.consumeJoinToken(hashJoinToken('race'), new Date()))),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) {
        if (r.status === 'rejected') assert.equal((r.reason as { code: string }).code, ErrorCode.TOKEN_SPENT);
      }
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it('keeps reads answering while more writers wait for the write lock than the pool has connections', async () => {
    // Another server's long write holds the lock every writer needs.
    const other = new Client({
      ...parseIntoClientConfig(pg.cluster.url(pg.database)),
      password: pg.cluster.password,
    });
    other.on('error', () => undefined);
    await other.connect();
    const store = await open(); // poolSize 3
    try {
      const existing = await store.createEntry(
        newEntry({ id: 'before-the-lock', spiffeId: 'spiffe://lanyard.local/agents/before' }),
      );
      await other.query('BEGIN');
      await other.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK_KEY]);
      const writes = Array.from({ length: 8 }, (_, i) =>
        store.createEntry(newEntry({ id: `queued-${i}`, spiffeId: `spiffe://lanyard.local/agents/q${i}` })),
      );
      // Without a per-process writer queue the waiting writers hold all three connections and this read waits
      // for the lock too, until pg-pool's connect timeout fails it.
      const read = await store.getEntry(existing.id);
      assert.equal(read.id, existing.id);
      const page = await store.listEntries({}, { pageSize: 10 });
      assert.deepEqual(
        page.entries.map((e) => e.id),
        ['before-the-lock'],
      );
      await other.query('COMMIT');
      const written = await Promise.all(writes);
      assert.equal(written.length, 8);
      assert.equal((await store.listEntries({}, { pageSize: 20 })).entries.length, 9);
    } finally {
      await other.end().catch(() => undefined);
      await store.close();
    }
  });

  it('keeps revocation sequences gapless and in commit order across servers', async () => {
    const stores = await Promise.all(Array.from({ length: 3 }, () => open()));
    try {
      const far = new Date(Date.now() + 3_600_000);
      await Promise.all(
        stores.flatMap((s, i) =>
          Array.from({ length: 10 }, (_, j) =>
            s.addRevocation(
              { kind: 'certificate', id: `${i}-${j}`, reason: 'r', expiresAt: far },
              new Date(),
            ),
          ),
        ),
      );
      const all = await stores[0]!.listRevocations(0);
      assert.deepEqual(
        all.map((r) => r.sequence),
        Array.from({ length: 30 }, (_, i) => i + 1),
      );
      assert.equal(await stores[1]!.lastRevocationSequence(), 30);
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it('tells its listeners to re-read once listening, so nothing published before LISTEN is missed', async () => {
    // A server reads the bundle and revocations at start and subscribes later: another server's publication in
    // between is never notified to it, so the listener's first connection must send it back to the store.
    const [late, other] = await Promise.all([open(), open()]);
    try {
      await other.addRevocation(
        { kind: 'session', id: 'before-listen', reason: 'r', expiresAt: new Date(Date.now() + 60_000) },
        new Date(),
      );
      const bundles: string[] = [];
      const revoked: number[][] = [];
      const changes = late.changes;
      changes.onBundleChanged((td) => bundles.push(td));
      changes.onRevoked((seqs) => revoked.push(seqs));
      await changes.ready();
      assert.deepEqual(bundles, [''], 'the bundle listener is told to re-read');
      assert.deepEqual(revoked, [[]], 'the revocation listener is told to re-read');
    } finally {
      await late.close();
      await other.close();
    }
  });
});
