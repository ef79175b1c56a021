/**
 * QueryAuditRecords (what `lanyard audit trace` reads) with records too large for one gRPC message: a page is cut
 * by bytes as well as by records, and a record over 4 MiB comes in pieces over several pages, put back byte for
 * byte by the client. A client bound below the record, and a page token that no longer continues the record it
 * names, are refused with typed errors.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { recordLine } from '../../../src/audit/chain';
import type { AuditEvent, AuditRecord } from '../../../src/audit/record';
import { EXIT_OK } from '../../../src/cli/exit-codes';
import { ErrorCode, isLanyardError } from '../../../src/errors';
import {
  AuditServiceClient,
  QueryAuditRecordsRequest,
  type QueryAuditRecordsResponse,
} from '../../../src/gen/lanyard/v1/audit';
import { AuditAdminClient } from '../../../src/server/audit/client';
import { BIN, runCli } from '../../support/server-process';
import { startTestServer, type TestServer } from '../../support/test-server';

describe('audit queries of records too large for one message', function () {
  this.timeout(120_000);
  let s: TestServer;
  const big: AuditRecord[] = [];
  const mid: AuditRecord[] = [];

  /** An entry update changing `fields` fields, each value `reps` two-character pairs (a 3-byte one among them). */
  const update = (sessionId: string, tag: string, fields: number, reps: number): AuditEvent => ({
    event: 'entry.update',
    decision: 'allow',
    actor: 'admin-socket',
    subject: `e-${tag}`,
    sessionId,
    rootSessionId: sessionId,
    changes: ['a', 'b', 'c', 'd'].slice(0, fields).map((c) => ({
      field: `f${c}`,
      before: `${c}€`.repeat(reps),
      after: `${c.toUpperCase()}€`.repeat(reps),
    })),
  });

  before(async () => {
    s = await startTestServer();
    const audit = s.running.audit;
    const small = (sessionId: string, i: number): AuditEvent => ({
      event: 'hop.decision',
      decision: 'allow',
      actor: `spiffe://lanyard.local/agents/a${i}`,
      sessionId,
      rootSessionId: sessionId,
    });
    // q-big: two records over 4 MiB (8 MB of UTF-8 each), the first one first, among small ones.
    big.push(await audit.record(update('q-big', 'big1', 4, 250_000)));
    for (let i = 0; i < 3; i++) big.push(await audit.record(small('q-big', i)));
    big.push(await audit.record(update('q-big', 'big2', 4, 250_000)));
    big.push(await audit.record(small('q-big', 9)));
    // q-mid: six records of 900,000 characters (1.8 MB of UTF-8) each: each fits a page, all six do not.
    for (let i = 0; i < 6; i++) mid.push(await audit.record(update('q-mid', `mid${i}`, 1, 225_000)));
  });
  after(async () => {
    await s.stop();
  });

  it('returns every record byte for byte: long ones in pieces, pages cut by bytes', async () => {
    const c = new AuditAdminClient(s.config.adminSocketPath);
    try {
      const got = await c.query('sessionId', 'q-big');
      assert.equal(got.length, big.length);
      assert.ok(Buffer.byteLength(got[0]!) > 7 * 1024 * 1024, `${Buffer.byteLength(got[0]!)} bytes`);
      got.forEach((line, i) => assert.equal(line, recordLine(big[i]!), `record ${i}`));
      const mids = await c.query('rootSessionId', 'q-mid');
      assert.deepEqual(mids, mid.map(recordLine));
    } finally {
      c.close();
    }
    // `lanyard audit trace` reads them through the same calls.
    const r = await runCli(
      ['audit', 'trace', '--session', 'q-big', '--json', '--socket', s.config.adminSocketPath],
      {},
      path.dirname(BIN),
    );
    assert.equal(r.code, EXIT_OK, r.stderr);
    assert.ok(r.stdout.includes('"e-big2"'), 'the second long record is in the trace');
  });

  it('refuses a line longer than the client admits with a typed error', async () => {
    const c = new AuditAdminClient(s.config.adminSocketPath, { maxExportLineBytes: 1024 * 1024 });
    try {
      await assert.rejects(c.query('sessionId', 'q-big'), (err: unknown) => {
        assert.ok(isLanyardError(err), String(err));
        assert.equal(err.code, ErrorCode.AUDIT_RECORD_INVALID);
        return true;
      });
    } finally {
      c.close();
    }
  });

  it('refuses a piece token that does not continue the record it names', async () => {
    const raw = new AuditServiceClient(
      `unix://${s.config.adminSocketPath}`,
      grpc.credentials.createInsecure(),
    );
    const call = (pageToken: string): Promise<QueryAuditRecordsResponse> =>
      new Promise((resolve, reject) =>
        raw.queryAuditRecords(
          QueryAuditRecordsRequest.fromPartial({
            key: { $case: 'sessionId', value: 'q-big' },
            pageSize: 1000,
            pageToken,
          }),
          (e, res) => (e ? reject(e) : resolve(res)),
        ),
      );
    try {
      const first = await call('');
      assert.equal(first.records.length, 1);
      assert.equal(first.records[0]!.json, '');
      assert.ok(first.records[0]!.jsonContinues);
      const [before, chain, seq, offset] = JSON.parse(
        Buffer.from(first.nextPageToken, 'base64url').toString(),
      ) as [string, string, number, number];
      assert.equal(seq, big[0]!.seq);
      const forged = (fields: unknown[]): string => Buffer.from(JSON.stringify(fields)).toString('base64url');
      for (const token of [
        forged([before, chain, seq + 1, offset]),
        forged([before, 'spiffe://elsewhere/x', seq, offset]),
        forged([before, chain, seq, 50 * 1024 * 1024]),
        forged([before, chain, seq, -1]),
      ]) {
        await assert.rejects(call(token), (e: grpc.ServiceError) => {
          assert.equal(e.code, grpc.status.INVALID_ARGUMENT, e.message);
          return true;
        });
      }
    } finally {
      raw.close();
    }
  });
});
