/**
 * The cRLNumber (RFC 5280 §5.2.3) comes from a counter persisted in the store: it grows with every
 * publication, across a restart and across a CA rotation, and a database that published time-based numbers
 * before the counter existed continues above them.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../../src/store/sqlite/migrations';
import { SQLITE_FILE_NAME, SqliteStore } from '../../../src/store/sqlite/sqlite-store';
import { openssl } from '../../support/x509';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';

/** The CRL Number as OpenSSL reads it from the DER, so the test judges the bytes on the wire. */
function crlNumberOnWire(dir: string, der: Uint8Array): bigint {
  const file = path.join(dir, `crl-${Date.now()}-${Math.random()}.der`);
  fs.writeFileSync(file, der);
  const out = openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-crlnumber']);
  assert.ok(out.ok, out.output);
  // "crlNumber=0x1A2B"
  const m = /crlNumber=(?:0x)?([0-9A-Fa-f]+)/.exec(out.output);
  assert.ok(m, out.output);
  return BigInt(`0x${m[1]}`);
}

describe('CRL number', function () {
  this.timeout(60_000);
  const dir = tempDataDir();
  let s: TestServer;
  after(async () => {
    await s?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const published = () => {
    const p = s.running.crl.published();
    assert.ok(p, 'no CRL published');
    return p;
  };
  /** What the CRL listener serves now (built on demand). */
  const current = () => s.running.crl.current();

  it('starts at 1 on a fresh database and grows by publication, as OpenSSL reads it', async () => {
    s = await startTestServer({ dir, start: { rotationTimer: false } });
    const first = await current();
    assert.equal(first.crlNumber, 1n);
    assert.equal(crlNumberOnWire(dir, first.activeDer), 1n);
    await s.running.crl.refresh();
    const second = published();
    assert.equal(second.crlNumber, 2n);
    assert.equal(crlNumberOnWire(dir, second.activeDer), 2n);
  });

  it('keeps growing across a restart (not reset, not time-based)', async () => {
    const before = published().crlNumber;
    await s.stop();
    s = await startTestServer({ dir, start: { rotationTimer: false } });
    const after = await current();
    assert.equal(after.crlNumber, before + 1n);
    assert.equal(crlNumberOnWire(dir, after.activeDer), before + 1n);
  });

  it('keeps growing across a CA rotation: the new CA never publishes below the old one', async () => {
    const oldActive = published().crls.find((c) => c.state === 'active')!;
    const oldNumber = crlNumberOnWire(dir, oldActive.der);
    await s.running.ca.prepare();
    await s.running.crl.refresh();
    // Every CA of one publication (here the active and the prepared one) carries the same number.
    const withPrepared = published();
    assert.equal(withPrepared.crls.length, 2);
    for (const c of withPrepared.crls) assert.equal(crlNumberOnWire(dir, c.der), withPrepared.crlNumber);
    assert.ok(withPrepared.crlNumber > oldNumber);

    await s.running.ca.activate();
    await s.running.crl.refresh();
    const rotated = published();
    const newActive = rotated.crls.find((c) => c.state === 'active')!;
    assert.notEqual(newActive.authorityId, oldActive.authorityId);
    assert.ok(crlNumberOnWire(dir, newActive.der) > withPrepared.crlNumber);
  });

  it('a database from before the counter (time-based numbers) continues above any number it published', async () => {
    const old = tempDataDir();
    try {
      const file = path.join(old, SQLITE_FILE_NAME);
      // The schema at version 2, holding a CA: such a server published cRLNumber = ms since the epoch.
      const db = new Database(file);
      db.exec(
        'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)',
      );
      for (const m of MIGRATIONS.filter((x) => x.version <= 2)) {
        db.exec(m.sql);
        db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.description, 0);
      }
      db.prepare(
        `INSERT INTO ca_authorities (id, status, cert_der, upstream_chain_der, key_ref, not_before, not_after, created_at)
         VALUES ('ca', 'active', x'00', '[]', 'k', 0, 1, 0)`,
      ).run();
      db.close();
      const lastTimeBased = BigInt(Date.now());
      const store = await SqliteStore.open({ file });
      try {
        const next = await store.nextCrlNumber();
        assert.ok(next > lastTimeBased, `${next} <= ${lastTimeBased}`);
        assert.equal(await store.nextCrlNumber(), next + 1n);
      } finally {
        await store.close();
      }
    } finally {
      fs.rmSync(old, { recursive: true, force: true });
    }
  });
});
