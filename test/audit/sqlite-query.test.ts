/**
 * Queries over the SQLite audit store: every key finds exactly its records across chains, in time order, page
 * by page without gaps or repeats; `chain` narrows; a malformed page token is refused.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AuditRecord } from '../../src/audit/record';
import { ErrorCode, isLanyardError } from '../../src/errors';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { CHAIN, sampleEvent } from './helpers';
import { tempDir } from '../support/tmp';

const OTHER = 'spiffe://lanyard.local/services/search';

describe('audit queries in the SQLite store', () => {
  const dir = tempDir('audit');
  let store: SqliteStore;

  before(async () => {
    store = await SqliteStore.open({ file: path.join(dir, 'lanyard.db') });
    for (let i = 1; i <= 250; i++) {
      await store.audit.append(i % 5 === 0 ? OTHER : CHAIN, sampleEvent(i), new Date());
    }
  });
  after(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pages through every record of a principal across chains, in time order, without gaps or repeats', async () => {
    const seen: AuditRecord[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const page = await store.audit.query({
        key: 'principal',
        value: 'alice',
        pageSize: 40,
        ...(pageToken && { pageToken }),
      });
      assert.ok(page.records.length <= 40);
      seen.push(...page.records);
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== '');
    assert.equal(seen.length, 125, 'every even i is alice');
    assert.equal(pages, 4);
    assert.ok(seen.every((r) => r.principal === 'alice'));
    assert.equal(new Set(seen.map((r) => `${r.chain}#${r.seq}`)).size, seen.length);
    assert.deepEqual(
      seen.map((r) => r.time),
      [...seen.map((r) => r.time)].sort(),
    );
    assert.ok(seen.some((r) => r.chain === OTHER) && seen.some((r) => r.chain === CHAIN));
  });

  it('each key finds its own records; chain narrows; unknown values find nothing', async () => {
    const bySession = await store.audit.query({ key: 'sessionId', value: 's-10' });
    assert.deepEqual(
      bySession.records.map((r) => r.sessionId),
      ['s-10', 's-10', 's-10'],
    );
    const byRoot = await store.audit.query({ key: 'rootSessionId', value: 's-3' });
    assert.equal(byRoot.records.length, 9);
    const bySerial = await store.audit.query({ key: 'serial', value: (1000 + 77).toString(16) });
    assert.equal(bySerial.records.length, 1);
    assert.equal(bySerial.records[0]!.serial, (1077).toString(16));
    const byAgent = await store.audit.query({ key: 'agentId', value: 'e-0', pageSize: 1000 });
    assert.equal(byAgent.records.length, 50);
    const narrowed = await store.audit.query({ key: 'agentId', value: 'e-0', chain: OTHER, pageSize: 1000 });
    assert.equal(narrowed.records.length, 50, 'i % 5 === 0 is both agent e-0 and the other chain');
    assert.equal((await store.audit.query({ key: 'agentId', value: 'e-0', chain: CHAIN })).records.length, 0);
    assert.equal((await store.audit.query({ key: 'principal', value: 'mallory' })).records.length, 0);
  });

  it('refuses a page token it did not make', async () => {
    await assert.rejects(
      store.audit.query({ key: 'principal', value: 'alice', pageToken: 'bm90IGEgdG9rZW4' }),
      (e: unknown) => isLanyardError(e) && e.code === ErrorCode.INVALID_ARGUMENT,
    );
  });
});
