/**
 * Where a SQLite write transaction's sub-journal lives: in memory for the store's write transactions (the group
 * commit's per-call savepoints copy every page a call changes first into it, and a temp file would cost two
 * write(2) calls a page on the server's thread), while the connection's own temp_store stays as it was for
 * everything else. Real SQLite on a real file; the temp files are seen through /proc/self/fd (Linux).
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { verifyAuditChain } from '../../src/audit/verify-chain';
import type { AuditEvent } from '../../src/audit/record';
import { CHAIN } from '../audit/helpers';
import { useSqliteFilePerTest } from '../support/store-per-test';

/** SQLite's temp files (unlinked at once, named etilqs_*) this process holds open now. */
function openSqliteTempFiles(): string[] {
  const fds = '/proc/self/fd';
  const out: string[] = [];
  for (const fd of fs.readdirSync(fds)) {
    let target: string;
    try {
      target = fs.readlinkSync(path.join(fds, fd));
    } catch {
      continue; // closed meanwhile
    }
    if (target.includes('etilqs_')) out.push(target);
  }
  return out;
}

/** An event with random keys: each append changes a leaf page of every audit index at a random place. */
function randomEvent(): AuditEvent {
  const session = `workload:${randomBytes(16).toString('hex')}`;
  return {
    event: 'svid.renew',
    decision: 'allow',
    actor: `spiffe://lanyard.local/w/${randomBytes(4).toString('hex')}`,
    agentId: randomBytes(8).toString('hex'),
    sessionId: session,
    rootSessionId: session,
    principal: randomBytes(8).toString('hex'),
    serial: randomBytes(16).toString('hex'),
    scopes: ['docs:read'],
  };
}

describe('SqliteStore: the write transactions keep their sub-journal in memory', () => {
  const place = useSqliteFilePerTest('subjournal');
  before(function () {
    if (!fs.existsSync('/proc/self/fd')) this.skip();
  });

  it('a group commit whose calls change many existing pages opens no temp file; every record commits', async () => {
    const s = await place.open();
    // Enough records that the indexes have many leaf pages for the next calls to change.
    for (let b = 0; b < 8; b++) {
      await Promise.all(
        Array.from({ length: 64 }, () =>
          s.sharedTransaction(async (tx) => {
            await tx.audit.append(CHAIN, randomEvent(), new Date());
          }),
        ),
      );
    }
    assert.deepEqual(openSqliteTempFiles(), []);
    // Each call changes far more than the 64 KiB of pages SQLite keeps in memory before spilling to a file.
    const seen: string[][] = [];
    await Promise.all(
      Array.from({ length: 4 }, () =>
        s.sharedTransaction(async (tx) => {
          for (let i = 0; i < 40; i++) await tx.audit.append(CHAIN, randomEvent(), new Date());
          seen.push(openSqliteTempFiles());
        }),
      ),
    );
    assert.equal(seen.length, 4);
    assert.deepEqual(seen, [[], [], [], []], 'a call of the group commit spilled its sub-journal to a file');
    const g = s.groupCommitStats();
    assert.ok(g.calls > g.batches, 'the calls did share transactions');
    await s.close();
    const db = new Database(place.file(), { readonly: true });
    try {
      assert.equal(db.prepare('SELECT count(*) FROM audit_records').pluck().get(), 8 * 64 + 4 * 40);
    } finally {
      db.close();
    }
  });

  it('a call that fails is still rolled back to its savepoint; the others commit', async () => {
    const s = await place.open();
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        s.sharedTransaction(async (tx) => {
          for (let k = 0; k < 30; k++) await tx.audit.append(CHAIN, randomEvent(), new Date());
          if (i === 2) throw new Error('call 2 fails after its writes');
          return i;
        }),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'],
    );
    const { records } = await s.audit.readRecords(CHAIN, 0, 1000);
    assert.equal(records.length, 5 * 30);
    const v = verifyAuditChain(CHAIN, records, [], undefined, { allowUnsignedTail: true });
    assert.equal(v.ok, true, v.break?.message);
  });

  it('leaves the connection’s temp_store as it was outside the BEGIN', async () => {
    const s = await place.open();
    await s.sharedTransaction(async (tx) => {
      await tx.audit.append(CHAIN, randomEvent(), new Date());
    });
    await s.transaction(async (tx) => {
      await tx.audit.append(CHAIN, randomEvent(), new Date());
    });
    // The store's connection itself: what a sort on it spills to is unchanged (0: the build's default, files).
    const db = (s as unknown as { db: Database.Database }).db;
    assert.equal(db.pragma('temp_store', { simple: true }), 0);
  });
});
