/**
 * SQLite's caller read keeps the entry it decoded and gives it back while the entry's row is the same in every
 * column (src/store/sqlite/caller-read.ts). These cases hold it to the contract the conformance suite states for
 * every store: the entry judged is the one stored now, whoever changed it and whichever column.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { MAX_DECODED_ENTRIES } from '../../src/store/sqlite/caller-read';
import type { CallerQuery } from '../../src/store/store';
import { FakeClock } from '../support/clock';
import { removeDir, tempDir } from '../support/tmp';
import { newEntry } from './conformance';

describe('SQLite caller read: the decoded entry kept per row', () => {
  let dir: string;
  let file: string;
  let clock: FakeClock;
  let store: SqliteStore;
  const others: SqliteStore[] = [];

  beforeEach(async () => {
    dir = tempDir('caller-entry');
    file = path.join(dir, 'lanyard.db');
    clock = new FakeClock(new Date(Date.UTC(2030, 0, 1)));
    store = await SqliteStore.open({ file, clock: clock.read });
  });
  afterEach(async () => {
    await store.close();
    for (const s of others.splice(0)) await s.close();
    removeDir(dir);
  });

  const query = (entryId: string): CallerQuery => ({
    serialHex: '0a01',
    sessionId: 'w-0001',
    entryId,
    maxAncestors: 64,
  });

  it('gives back the same frozen entry while its row is unchanged, equal to getEntry', async () => {
    await store.createEntry(
      newEntry({ id: 'entry-1', allowedScopes: ['tickets:read'], dnsNames: ['a.test'] }),
    );
    const first = (await store.readCaller(query('entry-1'))).entry;
    const second = (await store.readCaller(query('entry-1'))).entry;
    assert.ok(first !== undefined);
    assert.equal(second, first);
    assert.deepEqual(first, await store.getEntry('entry-1'));
    assert.ok(Object.isFrozen(first));
    assert.ok(Object.isFrozen(first.allowedScopes));
    assert.ok(Object.isFrozen(first.selectors) && Object.isFrozen(first.selectors[0]));
    // One caller cannot change what the next one is judged on.
    assert.throws(() => (first.allowedScopes as string[]).push('admin:all'), TypeError);
    assert.throws(() => {
      (first as { admin: boolean }).admin = true;
    }, TypeError);
    assert.deepEqual((await store.readCaller(query('entry-1'))).entry?.allowedScopes, ['tickets:read']);
  });

  it('reads an update through the store: the narrowed scopes, not the kept entry', async () => {
    const created = await store.createEntry(newEntry({ id: 'entry-1', allowedScopes: ['a', 'b'] }));
    assert.deepEqual((await store.readCaller(query('entry-1'))).entry?.allowedScopes, ['a', 'b']);
    await store.updateEntry('entry-1', { allowedScopes: ['a'] }, created.revision);
    const after = (await store.readCaller(query('entry-1'))).entry;
    assert.deepEqual(after?.allowedScopes, ['a']);
    assert.deepEqual(after, await store.getEntry('entry-1'));
  });

  it("reads another process's update and delete (another connection to the file)", async () => {
    const created = await store.createEntry(newEntry({ id: 'entry-1', dnsNames: ['a.test'] }));
    assert.deepEqual((await store.readCaller(query('entry-1'))).entry?.dnsNames, ['a.test']);
    const other = await SqliteStore.open({ file, clock: clock.read });
    others.push(other);
    clock.advance(1000);
    await other.updateEntry('entry-1', { dnsNames: ['b.test'], admin: true }, created.revision);
    const updated = (await store.readCaller(query('entry-1'))).entry;
    assert.deepEqual(updated?.dnsNames, ['b.test']);
    assert.equal(updated?.admin, true);
    await other.deleteEntry('entry-1');
    assert.equal((await store.readCaller(query('entry-1'))).entry, undefined);
    // Created again under the same id, with other fields: those are judged, not the ones decoded before.
    await other.createEntry(newEntry({ id: 'entry-1', spiffeId: 'spiffe://lanyard.local/agents/other' }));
    assert.equal(
      (await store.readCaller(query('entry-1'))).entry?.spiffeId,
      'spiffe://lanyard.local/agents/other',
    );
  });

  it('sees a change of any column, also one that leaves revision and updated_at as they were', async () => {
    await store.createEntry(newEntry({ id: 'entry-1', allowedScopes: ['a'] }));
    const before = (await store.readCaller(query('entry-1'))).entry;
    assert.ok(before !== undefined);
    // What no Lanyard write does, but a restore or a hand edit can: the row changes under the same revision.
    const raw = new Database(file);
    try {
      raw
        .prepare(`UPDATE entries SET allowed_scopes = '["a","b"]', expires_at = ? WHERE id = 'entry-1'`)
        .run(Date.UTC(2029, 0, 1));
    } finally {
      raw.close();
    }
    const after = (await store.readCaller(query('entry-1'))).entry;
    assert.equal(after?.revision, before.revision);
    assert.deepEqual(after?.allowedScopes, ['a', 'b']);
    assert.deepEqual(after?.expiresAt, new Date(Date.UTC(2029, 0, 1)));
  });

  it('keeps each entry apart, and starts again past its bound', async () => {
    await store.createEntry(newEntry({ id: 'entry-1', allowedScopes: ['one'] }));
    await store.createEntry(
      newEntry({ id: 'entry-2', spiffeId: 'spiffe://lanyard.local/agents/two', allowedScopes: ['two'] }),
    );
    const one = (await store.readCaller(query('entry-1'))).entry;
    const two = (await store.readCaller(query('entry-2'))).entry;
    assert.deepEqual(one?.allowedScopes, ['one']);
    assert.deepEqual(two?.allowedScopes, ['two']);
    assert.equal((await store.readCaller(query('entry-1'))).entry, one);
    assert.ok(MAX_DECODED_ENTRIES >= 2);
    assert.equal((await store.readCaller(query('missing'))).entry, undefined);
  });
});
