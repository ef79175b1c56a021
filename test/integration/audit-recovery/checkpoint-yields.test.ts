/**
 * A checkpoint re-reads and re-hashes every record since the last one (the server never signs history it did not
 * write). With SQLite those reads settle in microtasks, so the check once held the server's thread for the whole
 * unsigned tail: at 10M seeded records for tens of minutes, during which nothing else was served. The check now
 * gives the event loop a turn between pages; this test observes that ordering, not a duration.
 */
import assert from 'node:assert/strict';
import { sampleEvent } from '../../audit/helpers';
import { startTestServer, type TestServer } from '../../support/test-server';

describe('audit checkpoint over a long unsigned tail', function () {
  this.timeout(60_000);
  let s: TestServer;

  before(async () => {
    s = await startTestServer();
    await s.running.audit.checkpoint();
    // One commit for the whole tail: what matters is its length (several continuity pages), not how it came.
    await s.running.store.transaction(async (tx) => {
      for (let i = 0; i < 3_500; i++) await s.running.audit.recordIn(tx, sampleEvent(i));
    });
  });
  after(() => s?.stop());

  it('lets other work run between the pages it checks, and still signs the whole tail', async () => {
    const audit = s.running.store.audit;
    const read = audit.readRecords.bind(audit);
    let pagesRead = 0;
    audit.readRecords = async (...args) => {
      pagesRead++;
      return read(...args);
    };
    try {
      let pagesWhenOtherWorkRan: number | undefined;
      setImmediate(() => (pagesWhenOtherWorkRan = pagesRead));
      const signed = await s.running.audit.checkpoint();
      assert.ok(signed !== undefined, 'the tail is signed');
      assert.equal(signed.seq, (await audit.head(s.running.audit.chain)).seq);
      assert.ok(pagesRead >= 4, `the tail spans several pages (${pagesRead})`);
      assert.ok(
        pagesWhenOtherWorkRan !== undefined && pagesWhenOtherWorkRan < pagesRead,
        `a callback queued before the check ran after page ${pagesWhenOtherWorkRan} of ${pagesRead}`,
      );
    } finally {
      audit.readRecords = read;
    }
  });
});
