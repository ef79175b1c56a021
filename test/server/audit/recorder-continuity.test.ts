/**
 * The checkpoint's continuity check (AuditRecorder.checkContinues) walks the records from the last signed head
 * to the head it signs, a page at a time with a turn of the event loop between pages. Issuance goes on during
 * those turns: the records appended after the head was read belong to the next checkpoint and must neither
 * fail this one nor hide a broken link before the head.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import type { AuditEvent } from '../../../src/audit/record';
import { RotatingAuditKey } from '../../../src/audit/rotating-key';
import { AuditRecorder } from '../../../src/server/audit/recorder';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store';
import { captureLog } from '../../support/ca';
import { removeDir, tempDir } from '../../support/tmp';

const CHAIN = 'spiffe://lanyard.local/lanyard/server';
/** More than one page of the walk (CONTINUITY_PAGE is 1,000). */
const TAIL = 1500;

describe('audit checkpoint: the continuity walk while records are appended', () => {
  let dir: string;
  let store: SqliteStore;
  let recorder: AuditRecorder;
  let log: ReturnType<typeof captureLog>;
  const now = new Date(Date.UTC(2030, 0, 1));
  const event = (i: number): AuditEvent => ({
    event: 'svid.renew',
    decision: 'allow',
    actor: `spiffe://lanyard.local/agents/a${i}`,
  });

  beforeEach(async () => {
    dir = tempDir('recorder-continuity');
    store = await SqliteStore.open({ file: path.join(dir, 'lanyard.db'), clock: () => now });
    log = captureLog();
    recorder = new AuditRecorder({
      store,
      keys: RotatingAuditKey.open(path.join(dir, 'audit-key'), now),
      chain: CHAIN,
      clock: () => now,
      logger: log.logger,
      checkpointIntervalSeconds: 3600,
    });
    await store.audit.append(CHAIN, event(0), now);
    const first = await recorder.checkpoint();
    assert.equal(first?.seq, 1);
    // A long unsigned tail after the last checkpoint, in one commit.
    await store.transaction(async (tx) => {
      for (let i = 1; i <= TAIL; i++) await tx.audit.append(CHAIN, event(i), now);
    });
  });
  afterEach(async () => {
    await store.close();
    removeDir(dir);
  });

  /** Appends one record at a time until stopped, as issuance does during the walk's turns. */
  const appendMeanwhile = (): { stop: () => Promise<number> } => {
    let stopped = false;
    let appended = 0;
    const running = (async () => {
      while (!stopped) {
        await store.audit.append(CHAIN, event(TAIL + 1 + appended), now);
        appended++;
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        await running;
        return appended;
      },
    };
  };

  it('signs the head it read although the chain grew past it during the walk', async () => {
    const appender = appendMeanwhile();
    let signed;
    try {
      signed = await recorder.checkpoint();
    } finally {
      const appended = await appender.stop();
      assert.ok(appended > 0, 'records were appended during the walk');
    }
    assert.ok(signed !== undefined);
    assert.ok(signed.seq >= 1 + TAIL, `the checkpoint covers the tail (seq ${signed.seq})`);
    assert.ok(!log.raw.some((l) => l.includes('does not continue the checkpoint')), log.raw.join('\n'));
    // And the next one continues it, over what was appended meanwhile.
    const head = await store.audit.head(CHAIN);
    const next = await recorder.checkpoint();
    assert.equal(next?.seq, head.seq);
  });

  it('still refuses a broken link before the head while the chain grows', async () => {
    // A record in the middle of the unsigned tail altered behind the server's back.
    const raw = new Database(path.join(dir, 'lanyard.db'));
    try {
      const changed = raw
        .prepare(
          `UPDATE audit_records SET body = replace(body, 'agents/a700"', 'agents/zz"') WHERE chain = ? AND seq = ?`,
        )
        .run(CHAIN, 701);
      assert.equal(changed.changes, 1);
    } finally {
      raw.close();
    }
    const appender = appendMeanwhile();
    try {
      await assert.rejects(recorder.checkpoint(), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'ERR_AUDIT_CHAIN_BROKEN');
        assert.match(e.message, /record 701/);
        return true;
      });
    } finally {
      await appender.stop();
    }
  });
});
