import * as assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { ErrorCode } from '../../src/errors';
import { hashJoinToken } from '../../src/internal/join-token-secret';
import { LATEST_SCHEMA_VERSION } from '../../src/store/sqlite/migrations';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { BACKSTOP_AUTOCHECKPOINT_PAGES } from '../../src/store/sqlite/wal-checkpointer';
import { runStoreConformance } from './conformance';
import { sqliteHarness } from './harnesses';
import { rejectsWithCode } from '../support/refusal';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-store-'));
}

runStoreConformance('sqlite', sqliteHarness);

describe('SqliteStore specifics', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = tempDir();
    file = path.join(dir, 'data', 'lanyard.db');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates the database file 0600 in a 0700 directory, in WAL mode, each commit fsynced on the threadpool', async () => {
    const store = await SqliteStore.open({ file });
    try {
      assert.deepEqual(store.diagnostics(), {
        file,
        journalMode: 'wal',
        synchronous: 'normal',
        walAutocheckpointPages: BACKSTOP_AUTOCHECKPOINT_PAGES,
        walFsync: 'threadpool',
        schemaVersion: LATEST_SCHEMA_VERSION,
      });
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
      await store.createEntry({
        spiffeId: 'spiffe://lanyard.local/a',
        selectors: [{ type: 't', value: 'v' }],
        x509SvidTtlSeconds: 0,
        allowedScopes: [],
        maxDelegationDepth: 0,
        allowedDelegates: [],
        admin: false,
        dnsNames: [],
        canAssertPrincipal: false,
      });
      assert.equal(fs.statSync(`${file}-wal`).mode & 0o777, 0o600);
    } finally {
      await store.close();
    }
  });

  it('records applied migrations and does not re-apply them on reopen', async () => {
    await (await SqliteStore.open({ file })).close();
    await (await SqliteStore.open({ file })).close();
    const db = new Database(file, { readonly: true });
    try {
      const rows = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as {
        version: number;
      }[];
      assert.deepEqual(
        rows.map((r) => r.version),
        Array.from({ length: LATEST_SCHEMA_VERSION }, (_, i) => i + 1),
      );
    } finally {
      db.close();
    }
  });

  it('refuses a database written by a newer schema', async () => {
    await (await SqliteStore.open({ file })).close();
    const db = new Database(file);
    db.prepare('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)').run(
      LATEST_SCHEMA_VERSION + 1,
      'from the future',
      Date.now(),
    );
    db.close();
    await rejectsWithCode(SqliteStore.open({ file }), ErrorCode.STORE_SCHEMA_TOO_NEW);
  });

  it('stores only the SHA-256 of a join token', async () => {
    const store = await SqliteStore.open({ file });
    const secret = 'lanyard-jt-this-is-the-secret';
    await store.createJoinToken({
      id: 'jt1',
      tokenHash: hashJoinToken(secret),
      entryId: 'e-1',
      spiffeId: 'spiffe://lanyard.local/a',
      expiresAt: new Date(Date.now() + 60_000),
    });
    await store.close();
    const bytes = fs.readFileSync(file);
    assert.equal(bytes.includes(Buffer.from(secret)), false);
    assert.equal(bytes.includes(hashJoinToken(secret)), true);
  });

  it('lets exactly one of several processes consume a join token', async function () {
    this.timeout(60_000);
    const store = await SqliteStore.open({ file });
    await store.createJoinToken({
      id: 'race',
      tokenHash: hashJoinToken('race'),
      entryId: 'e-1',
      spiffeId: 'spiffe://lanyard.local/a',
      expiresAt: new Date(Date.now() + 600_000),
    });
    await store.close();

    const worker = path.join(__dirname, 'fixtures', 'consume-worker.ts');
    const runs = Array.from(
      { length: 4 },
      () =>
        new Promise<string>((resolve, reject) => {
          const child = fork(worker, [file, 'race'], {
            execArgv: ['--require', require.resolve('tsx/cjs')],
            stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
          });
          let out = '';
          child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
          child.on('error', reject);
          child.on('exit', () => resolve(out.trim()));
        }),
    );
    const outcomes = await Promise.all(runs);
    assert.equal(outcomes.filter((o) => o === 'won').length, 1, outcomes.join(','));
    assert.equal(outcomes.filter((o) => o === ErrorCode.TOKEN_SPENT).length, 3, outcomes.join(','));
  });
});
