/**
 * Renew answers in a durability scope (server/durable-answers.ts): its store reads (revocation, session, entry)
 * do not each wait for the fsync of the commits before them, and its response is sent only after an fsync that
 * started after its own commit was written. A real server on loopback with real SQLite; the store's WAL fsync
 * is the real one, held by a gate (test/support/fsync-gate.ts) to see what is answered meanwhile.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { SQLITE_FILE_NAME, SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { FsyncGate, settled } from '../support/fsync-gate';
import { newKey, renewCall, type PublicClients } from '../support/public-client';
import { register, useServerWithClients, type Agent } from '../support/sessions';
import { newEntry } from '../store/conformance';

describe('Renew: answered once its commit is durable, its reads waiting for nothing before', function () {
  this.timeout(120_000);
  const gate = new FsyncGate({ holding: false });
  const { server, connect } = useServerWithClients({
    openStore: (config) =>
      SqliteStore.open({ file: path.join(config.dataDir, SQLITE_FILE_NAME), fsync: gate.hook }),
  });
  let agent: Agent;
  let clients: PublicClients;
  before(async () => {
    agent = await register(server(), 'durable/renew');
    clients = connect(agent);
  });
  afterEach(() => gate.stopHolding());

  /** Renew records another connection sees: committed, durable or not. */
  const committedRenewals = (): number => {
    const db = new Database(path.join(server().dir, SQLITE_FILE_NAME), { readonly: true });
    try {
      return db
        .prepare(`SELECT count(*) FROM audit_records WHERE event = 'svid.renew'`)
        .pluck()
        .get() as number;
    } finally {
      db.close();
    }
  };

  it('commits while an earlier commit waits for its fsync, and answers only after an fsync of its own', async () => {
    const before = committedRenewals();
    gate.hold();
    const started = gate.started.length;
    // An unrelated commit whose fsync is held: a read that waited for it would hold the Renew before its commit.
    const earlier = server().running.store.createEntry(
      newEntry({ spiffeId: 'spiffe://lanyard.local/durable/x' }),
    );
    await gate.waitForStarts(started + 1);

    const renewed = renewCall(clients, newKey().csr);
    for (let i = 0; i < 2_000 && committedRenewals() === before; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(
      committedRenewals(),
      before + 1,
      "the Renew did not commit while an earlier commit's fsync was held: its reads waited for it",
    );
    assert.equal(await settled(renewed), false, 'answered before any fsync covered its commit');

    // The held fsync started before the Renew's commit was written: its completion vouches only for `earlier`.
    gate.release();
    await earlier;
    await gate.waitForStarts(started + 2);
    assert.equal(await settled(renewed), false, 'answered on an fsync that started before its commit');
    gate.release();
    const res = await renewed;
    assert.equal(res.svid!.spiffeId, agent.spiffeId);
  });
});
