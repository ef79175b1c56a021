/**
 * The snapshot worker reads a chunk of the revocation state as one buffer of records made by SQLite and packs it
 * without an object per row (src/store/sqlite/revocation-records.ts, revocation-snapshot-pack.ts). Its pages must
 * be byte for byte those of the reference path, packPages over listRevocations, whatever the rows hold; a row that
 * does not read as the server writes it sends the chunk through the reference path.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { packPages, PackedRevocationsError, unpackRevocations } from '../../../src/internal/revocation-page';
import { packRecordPages, readSnapshotChunk } from '../../../src/server/sessions/revocation-snapshot-pack';
import { SqliteRevocationRecords, UnreadableRecordError } from '../../../src/store/sqlite/revocation-records';
import { SqliteSessions } from '../../../src/store/sqlite/sessions';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store';
import { removeDir, tempDir } from '../../support/tmp';

const T = Date.parse('2026-12-06T03:00:00Z');

interface Row {
  sequence: number;
  kind: 'certificate' | 'session';
  target_id: string;
  reason: string;
  revoked_at: number;
  expires_at: number;
  cause_sequence: number | null;
}

/** A small deterministic generator: the same rows on every run. */
function rows(seed: number, count: number): Row[] {
  let x = seed;
  const next = (n: number): number => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  const hex = (digits: number): string =>
    Array.from({ length: digits }, () => '0123456789abcdef'[next(16)]).join('');
  const reasons = ['', 'key compromise', 'task done: ✓', 'r'.repeat(300), 'ended by its parent'];
  const out: Row[] = [];
  const taken = new Set<string>();
  let sequence = 0;
  for (let i = 0; i < count; i++) {
    // Mostly one after the other, sometimes a gap (pruned rows).
    sequence += next(10) === 0 ? 2 + next(50) : 1;
    const pick = next(20);
    let kind: Row['kind'] = 'certificate';
    let id: string;
    if (pick < 12) id = hex(1 + next(40));
    else if (pick === 12) id = `000${hex(29)}`;
    else if (pick === 13) id = hex(32).toUpperCase();
    else if (pick === 14) id = hex(256);
    else if (pick === 15) id = `sérial-${hex(4)}-✓`;
    else if (pick === 16) {
      kind = 'session';
      id = hex(32);
    } else {
      kind = 'session';
      id = `sess-${hex(12)}`;
    }
    // (kind, target_id) is unique: a short serial drawn twice gets its index appended (still hex digits).
    while (taken.has(`${kind} ${id}`)) id += i.toString(16);
    taken.add(`${kind} ${id}`);
    out.push({
      sequence,
      kind,
      target_id: id,
      // Runs of one reason, as a cascade writes them, and changes.
      reason: next(4) === 0 ? reasons[next(reasons.length)]! : (out[i - 1]?.reason ?? ''),
      revoked_at: T + next(2_000_000) - 1_000_000 - (next(50) === 0 ? T * 2 : 0),
      expires_at: T + next(9_000_000),
      cause_sequence: next(3) === 0 ? 1 + next(sequence) : next(10) === 0 ? 0 : null,
    });
  }
  return out;
}

describe('the snapshot worker packs a chunk read as records as the rows would be packed', () => {
  let dir: string;
  let db: Database.Database;
  let records: SqliteRevocationRecords;
  let sessions: SqliteSessions;

  beforeEach(async () => {
    dir = tempDir('snapshot-pack');
    const file = path.join(dir, 'lanyard.db');
    await (await SqliteStore.open({ file })).close();
    db = new Database(file);
    records = new SqliteRevocationRecords(db);
    sessions = new SqliteSessions(db, () => new Date());
  });
  afterEach(() => {
    db.close();
    removeDir(dir);
  });

  const insert = (rs: readonly Row[]): void => {
    const st = db.prepare(
      `INSERT INTO revocations (sequence, kind, target_id, reason, revoked_at, expires_at, cause_sequence)
       VALUES (@sequence, @kind, @target_id, @reason, @revoked_at, @expires_at, @cause_sequence)`,
    );
    db.transaction(() => rs.forEach((r) => st.run(r)))();
  };

  /** The reference: what the worker answered before it read records. */
  const reference = (after: number, limit: number, pageBytes: number) => {
    const read = sessions.listRevocations(after, limit);
    return {
      pages: packPages(read, pageBytes),
      rows: read.length,
      contiguous: read.every((r, i) => r.sequence === after + 1 + i),
    };
  };

  it('gives the same pages, row counts and gap answers as the row path, page limits and chunk bounds alike', () => {
    for (const seed of [1, 2, 3]) {
      db.exec('DELETE FROM revocations');
      const all = rows(seed, 1500);
      insert(all);
      let chunks = 0;
      for (const pageBytes of [200, 4096, 32 * 1024]) {
        for (const limit of [1, 97, 512, 5000]) {
          // From the start, from inside a gap and from the middle: a chunk whose first sequence is not after + 1.
          for (const after of [0, all[40]!.sequence + 1, all[700]!.sequence]) {
            const got = readSnapshotChunk(records, sessions, after, limit, pageBytes);
            assert.deepEqual(
              got,
              reference(after, limit, pageBytes),
              `seed ${seed} ${after}/${limit}/${pageBytes}`,
            );
            chunks += 1;
          }
        }
      }
      // The chunks held gaps and none, and pages split by bytes: the cases above are not all alike.
      assert.ok(chunks > 0);
      const some = readSnapshotChunk(records, sessions, 0, 5000, 200);
      assert.equal(some.rows, 1500);
      assert.ok(some.pages.length > 100);
      assert.equal(some.contiguous, false);
      assert.equal(readSnapshotChunk(records, sessions, 0, 1, 200).contiguous, all[0]!.sequence === 1);
      // And it is the records that were read, not the rows: the cursor reads every one of this data.
      assert.deepEqual(packRecordPages(records.read(0, 5000), 0, 200), {
        pages: some.pages,
        contiguous: some.contiguous,
      });
    }
  });

  it('reads a chunk past the end as empty, and the last partial chunk as what is there', () => {
    insert(rows(7, 30));
    assert.deepEqual(readSnapshotChunk(records, sessions, 1e9, 100, 4096), {
      pages: [],
      rows: 0,
      contiguous: true,
    });
    assert.deepEqual(readSnapshotChunk(records, sessions, 0, 100, 4096), reference(0, 100, 4096));
  });

  it('a value of a type the server never writes is not read as a record: the chunk goes through the rows', () => {
    const rs = rows(11, 40);
    insert(rs);
    // A REAL time (written by hand): a Date truncates it, as the row path reads it.
    db.prepare('UPDATE revocations SET revoked_at = ? WHERE sequence = ?').run(T + 0.75, rs[20]!.sequence);
    assert.throws(() => packRecordPages(records.read(0, 100), 0, 4096), UnreadableRecordError);
    const got = readSnapshotChunk(records, sessions, 0, 100, 4096);
    assert.deepEqual(got, reference(0, 100, 4096));
    const entry = got.pages
      .flatMap((p) => unpackRevocations(p.bytes))
      .find((r) => r.sequence === rs[20]!.sequence);
    assert.equal(entry?.revokedAtMs, T);

    // A text where an integer belongs that looks like the next fields: refused, never read shifted.
    db.prepare('UPDATE revocations SET revoked_at = ? WHERE sequence = ?').run(`${T},${T}`, rs[20]!.sequence);
    assert.throws(() => packRecordPages(records.read(0, 100), 0, 4096), UnreadableRecordError);
    // The row path cannot pack it either: the chunk fails with the page writer's typed error, as before.
    assert.throws(() => readSnapshotChunk(records, sessions, 0, 100, 4096), PackedRevocationsError);
    assert.throws(() => reference(0, 100, 4096), PackedRevocationsError);

    // An integer past 15 digits (beyond what a number holds exactly) is the row path's to read too.
    db.prepare('UPDATE revocations SET revoked_at = ? WHERE sequence = ?').run(
      1_234_567_890_123_456,
      rs[20]!.sequence,
    );
    assert.throws(() => packRecordPages(records.read(0, 100), 0, 4096), UnreadableRecordError);
    assert.deepEqual(readSnapshotChunk(records, sessions, 0, 100, 4096), reference(0, 100, 4096));
  });
});
