/**
 * Someone who can write the server's database, but holds no audit key (review finding 13.11): deleting three
 * records, renumbering and re-hashing the rest and deleting `audit_checkpoints` gave `audit verify --server: OK,
 * 3 records, 0 checkpoints`. Now checkpoints and pinned shipper keys also go to witnesses outside the database
 * (`<data_dir>/audit/witness.jsonl`, and here an external witness file), the server refuses to sign over
 * history it did not write, and `lanyard audit verify` (the real CLI) fails on every tampering below; a healthy
 * chain, also after a kill -9 and a restart, verifies.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { recordBody, recordHash } from '../../../src/audit/chain';
import { FileAuditLog } from '../../../src/audit/file-log';
import { parseRecord, type AuditRecord } from '../../../src/audit/record';
import { EXIT_OK, EXIT_REJECTED } from '../../../src/cli/exit-codes';
import { AdminClient } from '../../../src/server/admin-client';
import { AuditAdminClient } from '../../../src/server/audit/client';
import { LOCAL_WITNESS_FILE } from '../../../src/server/audit/recorder';
import { SQLITE_FILE_NAME } from '../../../src/store/sqlite/sqlite-store';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { BIN, runCli, spawnServer, type CliResult } from '../../support/server-process';
import { hopEvent } from '../../audit/helpers';
import { tempDir } from '../../support/tmp';

const lanyard = (args: string[]): Promise<CliResult> => runCli(args, {}, path.dirname(BIN));
const expectExit = (r: CliResult, code: number): CliResult => {
  assert.equal(r.code, code, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
};

/**
 * A server with an external witness file and some history: nine entries created, checkpoints after the third
 * and the sixth (records after them are signed when something asks: an export, verify, the timer).
 */
async function serverWithHistory(files: string): Promise<{ s: TestServer; witness: string }> {
  const witness = path.join(files, `witness-${Math.random().toString(16).slice(2)}.jsonl`);
  const s = await startTestServer({ config: { auditWitnesses: [{ file: witness }] } });
  for (let i = 0; i < 9; i++) {
    await s.client.createEntry({
      entry: {
        spiffeId: `spiffe://lanyard.local/agents/a${i}`,
        selectors: [{ type: 'unix', value: `uid:${i}` }],
      },
    });
    if (i === 2 || i === 5) await s.running.audit.checkpoint();
  }
  return { s, witness };
}

/** What a database writer does: another connection to the live SQLite file. */
function withDb<T>(s: TestServer, fn: (db: Database.Database) => T): T {
  const db = new Database(path.join(s.dir, SQLITE_FILE_NAME));
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** Deletes records `drop` of `chain`, renumbers the rest and recomputes every hash and link after them. */
function deleteAndRehash(db: Database.Database, chain: string, drop: number[]): void {
  const rows = db
    .prepare('SELECT seq, body, hash FROM audit_records WHERE chain = ? ORDER BY seq')
    .all(chain) as { seq: number; body: string; hash: string }[];
  db.transaction(() => {
    for (const seq of drop)
      db.prepare('DELETE FROM audit_records WHERE chain = ? AND seq = ?').run(chain, seq);
    let prev: AuditRecord | undefined;
    let next = 1;
    for (const row of rows) {
      if (drop.includes(row.seq)) continue;
      const r = parseRecord({ ...(JSON.parse(row.body) as object), hash: row.hash });
      const body = { ...r, seq: next, prevHash: prev?.hash ?? r.prevHash };
      const hash = recordHash(body);
      const rewritten: AuditRecord = { ...body, hash };
      db.prepare('UPDATE audit_records SET seq = ?, body = ?, hash = ? WHERE chain = ? AND seq = ?').run(
        next,
        recordBody(rewritten),
        hash,
        chain,
        row.seq,
      );
      prev = rewritten;
      next++;
    }
  })();
}

describe('audit: a database writer cannot rewrite the trail unseen', function () {
  this.timeout(180_000);
  const files = tempDir('audit');
  after(() => fs.rmSync(files, { recursive: true, force: true }));

  it('delete three records, renumber and re-hash the rest, drop audit_checkpoints: verify --server fails', async () => {
    const { s } = await serverWithHistory(files);
    try {
      const chain = s.running.audit.chain;
      withDb(s, (db) => {
        deleteAndRehash(db, chain, [3, 4, 5]);
        db.prepare('DELETE FROM audit_checkpoints').run();
      });
      const r = expectExit(
        await lanyard(['audit', 'verify', '--server', '--socket', s.config.adminSocketPath]),
        EXIT_REJECTED,
      );
      assert.doesNotMatch(r.stdout, /lanyard\/server: OK/);
      assert.match(r.stdout, /lanyard\/server: BROKEN at 1: unsigned_tail/);
      assert.match(
        r.stdout,
        /BROKEN: witness: file:.*witness\.jsonl holds the checkpoint of .* the database does not/,
      );
      // The server would not sign the rewritten chain when asked to before the export.
      assert.ok(
        s.logs.some((l) => l.includes('does not continue the checkpoint signed at')),
        'the refusal to sign is logged',
      );
    } finally {
      await s.stop();
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
  });

  it('a checkpoint deleted from the database but held by a witness fails; the witness file edited fails', async () => {
    const { s, witness } = await serverWithHistory(files);
    const socket = ['--socket', s.config.adminSocketPath];
    try {
      expectExit(await lanyard(['audit', 'verify', '--server', ...socket]), EXIT_OK);
      const chain = s.running.audit.chain;
      const row = withDb(s, (db) => {
        const found = db
          .prepare('SELECT * FROM audit_checkpoints WHERE chain = ? AND seq > 0 ORDER BY seq LIMIT 1')
          .get(chain) as Record<string, unknown>;
        db.prepare('DELETE FROM audit_checkpoints WHERE chain = ? AND seq = ?').run(chain, found.seq);
        return found;
      });
      const r = expectExit(await lanyard(['audit', 'verify', '--server', ...socket]), EXIT_REJECTED);
      assert.match(
        r.stdout,
        new RegExp(
          `witness: file:.* holds the checkpoint of \\S+ at ${String(row.seq)} .*the database does not`,
        ),
      );

      // Put it back; then edit the external witness instead: its entry no longer verifies.
      withDb(s, (db) => {
        const cols = Object.keys(row);
        db.prepare(
          `INSERT INTO audit_checkpoints (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`,
        ).run(row);
      });
      const lines = fs.readFileSync(witness, 'utf8').trimEnd().split('\n');
      const i = lines.findIndex((l) => l.includes('"type":"checkpoint"'));
      lines[i] = lines[i]!.replace(
        /"headHash":"([0-9a-f])/,
        (_m, c: string) => `"headHash":"${c === '0' ? '1' : '0'}`,
      );
      fs.writeFileSync(witness, `${lines.join('\n')}\n`);
      const edited = expectExit(await lanyard(['audit', 'verify', '--server', ...socket]), EXIT_REJECTED);
      assert.match(
        edited.stdout,
        new RegExp(`witness: file:${witness.replace(/[/.]/g, '\\$&')} holds a checkpoint .* do not verify`),
      );
    } finally {
      await s.stop();
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
  });

  it("a shipped chain re-pinned in the database disagrees with the witness's pin", async () => {
    const { s } = await serverWithHistory(files);
    const service = 'spiffe://lanyard.local/services/search';
    const admin = new AuditAdminClient(s.config.adminSocketPath);
    try {
      const ship = async (name: string): Promise<FileAuditLog> => {
        const log = await FileAuditLog.open({ file: path.join(files, `${name}.jsonl`), chain: service });
        await log.append(hopEvent(1, service));
        await admin.ingest(`${(await log.shipmentLines()).join('\n')}\n`);
        return log;
      };
      const genuine = await ship(`genuine-${Date.now()}`);
      await genuine.close();
      // The attacker pins its own key in the database and replaces the chain with one it signed.
      const forger = await FileAuditLog.open({
        file: path.join(files, `forger-${Date.now()}.jsonl`),
        chain: service,
      });
      await forger.append(hopEvent(1, service));
      const forged = (await forger.shipmentLines()).map((l) => JSON.parse(l) as Record<string, unknown>);
      await forger.close();
      withDb(s, (db) => {
        const jwk = JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x: forger.key.publicKey.jwk().x });
        db.prepare('UPDATE audit_chain_keys SET public_jwk = ? WHERE chain = ?').run(jwk, service);
        db.prepare('DELETE FROM audit_records WHERE chain = ?').run(service);
        db.prepare('DELETE FROM audit_checkpoints WHERE chain = ?').run(service);
      });
      const { type: _t, ...rec } = forged.find((o) => o.type === 'record')!;
      const { type: _c, ...cp } = forged.find((o) => o.type === 'checkpoint')!;
      await s.running.store.audit.appendRecords(service, [parseRecord(rec)], [cp as never]);

      const r = expectExit(
        await lanyard(['audit', 'verify', '--server', '--socket', s.config.adminSocketPath]),
        EXIT_REJECTED,
      );
      assert.match(
        r.stdout,
        new RegExp(`chain ${service}: BROKEN: witness: .*pins key .* the database pins`),
      );
    } finally {
      admin.close();
      await s.stop();
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
  });

  it('an export cut with its tail and last checkpoint fails verify --file; cut at an older checkpoint, the witness catches it', async () => {
    const { s } = await serverWithHistory(files);
    try {
      const socket = ['--socket', s.config.adminSocketPath];
      const bundle = path.join(files, `bundle-${Date.now()}.json`);
      fs.writeFileSync(bundle, (await s.client.getBundle()).bundle!.spiffeBundleJson);
      const out = path.join(files, `export-${Date.now()}.jsonl`);
      expectExit(await lanyard(['audit', 'export', '--out', out, ...socket]), EXIT_OK);
      const lines = fs.readFileSync(out, 'utf8').trimEnd().split('\n');
      const isCheckpoint = (l: string): boolean => l.includes('"type":"checkpoint"');
      assert.ok(
        isCheckpoint(lines[lines.length - 1]!),
        'an export ends with the checkpoint the server signed first',
      );

      // The last two records and the final checkpoint cut: record 7 is left after the checkpoint at 6.
      const records = lines.map((l, i) => (l.includes('"type":"record"') ? i : -1)).filter((i) => i >= 0);
      const cut = path.join(files, `cut-${Date.now()}.jsonl`);
      fs.writeFileSync(cut, `${lines.slice(0, records[records.length - 2]).join('\n')}\n`);
      const bad = expectExit(
        await lanyard(['audit', 'verify', '--file', cut, '--bundle', bundle]),
        EXIT_REJECTED,
      );
      assert.match(bad.stdout, /BROKEN at \d+: unsigned_tail/);
      assert.doesNotMatch(bad.stdout, /: OK,/);
      const lenient = expectExit(
        await lanyard(['audit', 'verify', '--file', cut, '--bundle', bundle, '--allow-unsigned-tail']),
        EXIT_OK,
      );
      assert.match(lenient.stdout, /OK, .*UNSIGNED TAIL \d+\.\.\d+ \(accepted by --allow-unsigned-tail\)/);

      // Cut right after an older checkpoint: consistent on its own, not with the server's witness.
      const older = lines.slice(0, -1).map(isCheckpoint).lastIndexOf(true);
      const prefix = path.join(files, `prefix-${Date.now()}.jsonl`);
      fs.writeFileSync(prefix, `${lines.slice(0, older + 1).join('\n')}\n`);
      expectExit(await lanyard(['audit', 'verify', '--file', prefix, '--bundle', bundle]), EXIT_OK);
      const witnessed = expectExit(
        await lanyard([
          'audit',
          'verify',
          '--file',
          prefix,
          '--bundle',
          bundle,
          '--witness',
          path.join(s.dir, LOCAL_WITNESS_FILE),
        ]),
        EXIT_REJECTED,
      );
      assert.match(
        witnessed.stdout,
        /witness: .*the database does not: checkpoints were deleted or the chain was rolled back/,
      );
    } finally {
      await s.stop();
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
  });

  it('the export passes stored rows on as they are: verify --server finds a changed, removed or swapped row and a forged checkpoint at its place', async () => {
    const { s } = await serverWithHistory(files);
    const socket = ['--socket', s.config.adminSocketPath];
    const verify = async (): Promise<CliResult> => lanyard(['audit', 'verify', '--server', ...socket]);
    type Row = { seq: number; body: string; hash: string };
    try {
      const chain = s.running.audit.chain;
      expectExit(await verify(), EXIT_OK);
      const pristine = withDb(s, (db) =>
        db.prepare('SELECT seq, body, hash FROM audit_records WHERE chain = ? ORDER BY seq').all(chain),
      ) as Row[];
      const row = (seq: number): Row => pristine.find((r) => r.seq === seq)!;
      /** Tampers with the live database, runs verify --server, and puts every row back as it was. */
      const tampered = async (change: (db: Database.Database) => void): Promise<string> => {
        withDb(s, change);
        try {
          return expectExit(await verify(), EXIT_REJECTED).stdout;
        } finally {
          withDb(s, (db) =>
            db.transaction(() => {
              db.prepare('DELETE FROM audit_checkpoints WHERE signature = ?').run('forged');
              const put = db.prepare(
                'UPDATE audit_records SET body = ?, hash = ? WHERE chain = ? AND seq = ?',
              );
              for (const r of pristine) put.run(r.body, r.hash, chain, r.seq);
              const insert = db.prepare(
                'INSERT OR IGNORE INTO audit_records (chain, seq, time, event, body, hash) VALUES (?, ?, ?, ?, ?, ?)',
              );
              for (const r of pristine) {
                const rec = JSON.parse(r.body) as { time: string; event: string };
                insert.run(chain, r.seq, rec.time, rec.event, r.body, r.hash);
              }
            })(),
          );
        }
      };
      const update = (db: Database.Database, seq: number, body: string, hash: string): void => {
        db.prepare('UPDATE audit_records SET body = ?, hash = ? WHERE chain = ? AND seq = ?').run(
          body,
          hash,
          chain,
          seq,
        );
      };

      // A field changed, the stored hash kept.
      const edited = await tampered((db) =>
        update(db, 4, row(4).body.replace('"decision":"allow"', '"decision":"deny"'), row(4).hash),
      );
      assert.match(edited, /BROKEN at 4: edited/);
      // A row removed.
      const removed = await tampered((db) =>
        db.prepare('DELETE FROM audit_records WHERE chain = ? AND seq = ?').run(chain, 4),
      );
      assert.match(removed, /BROKEN at 4: deleted/);
      // Rows 4 and 5 swapped: each position holds the other record, hashes and all.
      const swapped = await tampered((db) => {
        update(db, 4, row(5).body, row(5).hash);
        update(db, 5, row(4).body, row(4).hash);
      });
      assert.match(swapped, /BROKEN at 5: reordered/);
      // A checkpoint over record 5 that the audit key did not sign.
      const forged = await tampered((db) =>
        db
          .prepare(
            'INSERT INTO audit_checkpoints (chain, seq, head_hash, time, key_id, signature) VALUES (?, ?, ?, ?, ?, ?)',
          )
          .run(chain, 5, row(5).hash, new Date().toISOString(), 'forged-key', 'forged'),
      );
      assert.match(forged, /BROKEN at 5: checkpoint_signature/);

      // A body stored in another key order and spacing, content and hash unchanged: the export parses it and
      // writes it canonically (the shortcut is only for the canonical form), so the chain still verifies.
      const reformatted = JSON.stringify(
        JSON.parse(row(4).body) as object,
        Object.keys(JSON.parse(row(4).body) as object).reverse(),
        1,
      );
      withDb(s, (db) => update(db, 4, reformatted, row(4).hash));
      expectExit(await verify(), EXIT_OK);
      withDb(s, (db) => update(db, 4, row(4).body, row(4).hash));
      expectExit(await verify(), EXIT_OK);
    } finally {
      await s.stop();
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
  });

  it('verify --server finds a record inserted between two, and records cut off the end with their checkpoint kept', async () => {
    const { s } = await serverWithHistory(files);
    const socket = ['--socket', s.config.adminSocketPath];
    const verify = async (): Promise<CliResult> => lanyard(['audit', 'verify', '--server', ...socket]);
    try {
      const chain = s.running.audit.chain;
      expectExit(await verify(), EXIT_OK); // signs the head: the last checkpoint covers the last record
      withDb(s, (db) =>
        db.exec(`CREATE TABLE pristine AS SELECT * FROM audit_records WHERE chain = '${chain}'`),
      );
      const restore = (): void =>
        withDb(s, (db) =>
          db.transaction(() => {
            db.prepare('DELETE FROM audit_records WHERE chain = ?').run(chain);
            db.exec('INSERT INTO audit_records SELECT * FROM pristine');
          })(),
        );
      const rows = withDb(
        s,
        (db) =>
          db.prepare('SELECT seq, body, hash FROM audit_records WHERE chain = ? ORDER BY seq').all(chain) as {
            seq: number;
            body: string;
            hash: string;
          }[],
      );
      const last = rows[rows.length - 1]!.seq;

      // A record that links to record 4, slipped in before the real record 5 (the rest moved up one place).
      withDb(s, (db) =>
        db.transaction(() => {
          for (const r of [...rows].reverse().filter((r) => r.seq >= 5)) {
            db.prepare('UPDATE audit_records SET seq = ? WHERE chain = ? AND seq = ?').run(
              r.seq + 1,
              chain,
              r.seq,
            );
          }
          const four = parseRecord({ ...(JSON.parse(rows[3]!.body) as object), hash: rows[3]!.hash });
          const body = { ...four, seq: 5, prevHash: four.hash, principal: 'mallory' };
          const forged: AuditRecord = { ...body, hash: recordHash(body) };
          db.prepare(
            'INSERT INTO audit_records (chain, seq, time, event, body, hash) VALUES (?, ?, ?, ?, ?, ?)',
          ).run(chain, 5, forged.time, forged.event, recordBody(forged), forged.hash);
        })(),
      );
      const inserted = expectExit(await verify(), EXIT_REJECTED).stdout;
      assert.match(inserted, /BROKEN at 5: inserted/);
      restore();
      expectExit(await verify(), EXIT_OK);

      // The last three records deleted, the checkpoint over the last one kept: the export still carries it.
      withDb(s, (db) =>
        db.prepare('DELETE FROM audit_records WHERE chain = ? AND seq > ?').run(chain, last - 3),
      );
      const cut = expectExit(await verify(), EXIT_REJECTED).stdout;
      assert.match(cut, new RegExp(`BROKEN at ${last - 2}: truncated`));
      restore();
      expectExit(await verify(), EXIT_OK);
    } finally {
      await s.stop();
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
  });

  it('kill -9, restart: the server signs its head at start-up and verify --server passes', async () => {
    const dir = tempDataDir();
    const socketPath = path.join(dir, 'admin.sock');
    let server = spawnServer(['--data-dir', dir]);
    try {
      await server.ready;
      const admin = new AdminClient(socketPath);
      for (let i = 0; i < 3; i++) {
        await admin.createEntry({
          entry: {
            spiffeId: `spiffe://lanyard.local/agents/k${i}`,
            selectors: [{ type: 'unix', value: `uid:${i}` }],
          },
        });
      }
      admin.close();
      server.child.kill('SIGKILL');
      await server.exited;

      server = spawnServer(['--data-dir', dir]);
      await server.ready;
      // Before anything asks for it: the head the crash left unsigned is signed.
      const audit = new AuditAdminClient(socketPath);
      const head = await audit.head();
      audit.close();
      assert.notEqual(head.checkpointJson, '');
      assert.equal((JSON.parse(head.checkpointJson) as { seq: number }).seq, head.headSeq);
      const v = expectExit(await lanyard(['audit', 'verify', '--server', '--socket', socketPath]), EXIT_OK);
      assert.match(v.stdout, /lanyard\/server: OK, (\d+) records, \d+ checkpoints; signed through \1 /);
    } finally {
      server.kill();
      await server.exited;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
