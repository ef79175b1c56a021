/**
 * What a shipped chain may say (review finding 13.10): a workload shipped forged `session.start` and
 * `session.end` records naming another principal's live session, and `lanyard audit trace` showed that session
 * ended and re-attributed while `audit verify --server` said OK. Now a shipment holds only the shipper's own
 * hop decisions dated plausibly, within a quota; and trace takes sessions from the server's chain alone,
 * showing every shipped record labelled with its chain.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { FileAuditLog } from '../../../src/audit/file-log';
import { parseChainText } from '../../../src/audit/jsonl';
import { parseRecord, type AuditEvent, type AuditRecord } from '../../../src/audit/record';
import { buildTrace, type TraceSession } from '../../../src/audit/trace';
import { AuditServiceClient, type IngestAuditChainResponse } from '../../../src/gen/lanyard/v1/audit';
import { AuditAdminClient } from '../../../src/server/audit/client';
import { IngestQuota } from '../../../src/server/audit/ingest-quota';
import { ERROR_CODE_METADATA_KEY } from '../../../src/internal/grpc-call';
import { publicCredentials, PUBLIC_CHANNEL_OPTIONS } from '../../support/public-client';
import { type Agent, register, startSession, TD, unary } from '../../support/sessions';
import { startTestServer, type TestServer } from '../../support/test-server';
import { hopEvent } from '../../audit/helpers';
import { tempDir } from '../../support/tmp';

const text = (lines: string[]): string => lines.join('\n') + '\n';

function ingestAs(s: TestServer, who: Agent, jsonl: string): Promise<IngestAuditChainResponse> {
  const c = new AuditServiceClient(
    s.running.publicAddress,
    publicCredentials(s.running.ca.bundle().toPem(), TD, who),
    PUBLIC_CHANNEL_OPTIONS,
  );
  return unary(c.ingestAuditChain.bind(c), { jsonl: Buffer.from(jsonl) }).finally(() => c.close());
}

async function refused(
  p: Promise<unknown>,
  status: grpc.status,
  code: string,
  details?: RegExp,
): Promise<void> {
  try {
    await p;
  } catch (e) {
    const err = e as grpc.ServiceError;
    assert.equal(err.code, status, err.details);
    assert.equal(err.metadata?.get(ERROR_CODE_METADATA_KEY)[0], code, err.details);
    if (details !== undefined) assert.match(err.details, details);
    return;
  }
  assert.fail(`expected ${code}`);
}

/** A chain of `events` for `chain`, signed over its last record: what `lanyard audit ship` would send. */
async function shipment(dir: string, chain: string, events: AuditEvent[], name = 'c'): Promise<string> {
  const log = await FileAuditLog.open({ file: path.join(dir, `${name}.jsonl`), chain });
  for (const e of events) await log.append(e);
  const lines = await log.shipmentLines();
  await log.close();
  return text(lines);
}

describe('audit: a workload cannot plant records in the trail', function () {
  this.timeout(120_000);
  const files = tempDir('audit');
  let s: TestServer;
  let admin: AuditAdminClient;
  let planner: Agent;
  let runner: Agent;
  let victim: string;

  before(async () => {
    s = await startTestServer();
    admin = new AuditAdminClient(s.config.adminSocketPath);
    planner = await register(s, 'planner');
    runner = await register(s, 'runner');
    victim = (await startSession(s, planner)).res.sessionId;
  });
  after(async () => {
    admin.close();
    await s.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
    fs.rmSync(files, { recursive: true, force: true });
  });

  const recordsFor = async (sessionId: string): Promise<AuditRecord[]> =>
    (await admin.query('sessionId', sessionId)).map((l) => {
      const { type: _t, ...r } = JSON.parse(l) as Record<string, unknown>;
      return parseRecord(r);
    });
  const traceOf = async (sessionId: string): Promise<ReturnType<typeof buildTrace>> =>
    buildTrace(await recordsFor(sessionId), { serverChain: s.running.audit.chain });
  const sessionIn = (t: ReturnType<typeof buildTrace>, id: string): TraceSession | undefined =>
    t.principals.flatMap((p) => p.sessions).find((x) => x.sessionId === id);

  it("refuses forged session.start / session.end naming another principal's live session", async () => {
    const now = new Date();
    const forged: AuditEvent[] = [
      {
        time: now,
        event: 'session.start',
        decision: 'allow',
        actor: runner.spiffeId,
        subject: runner.spiffeId,
        sessionId: victim,
        rootSessionId: victim,
        principal: 'mallory',
        scopes: ['payments:refund'],
      },
      {
        time: new Date(now.getTime() + 1),
        event: 'session.end',
        decision: 'allow',
        actor: planner.spiffeId,
        subject: victim,
        sessionId: victim,
        reason: 'task done',
      },
    ];
    await refused(
      ingestAs(s, runner, await shipment(files, runner.spiffeId, forged, 'forged')),
      grpc.status.INVALID_ARGUMENT,
      'ERR_AUDIT_RECORD_INVALID',
      /event "session.start" is not one a service records about its own hops/,
    );
    assert.equal((await admin.head(runner.spiffeId)).headSeq, 0, 'nothing stored');
    // The session is as the server recorded it: the planner's, alive.
    const s1 = sessionIn(await traceOf(victim), victim);
    assert.equal(s1?.spiffeId, planner.spiffeId);
    assert.equal(s1?.endedAt, undefined);
  });

  it("refuses a hop decision that is not the shipper's own, and one dated in the future or long ago", async () => {
    const cases: [string, AuditEvent, RegExp][] = [
      ['another service', hopEvent(1, planner.spiffeId), /not of the shipper/],
      ['no service', { ...hopEvent(1, runner.spiffeId), service: undefined }, /names no deciding service/],
      ['future', hopEvent(1, runner.spiffeId, new Date(Date.now() + 3600_000)), /after the server's clock/],
      ['old', hopEvent(1, runner.spiffeId, new Date(Date.now() - 30 * 86400_000)), /more than 604800 s ago/],
    ];
    for (const [name, e, why] of cases) {
      await refused(
        ingestAs(s, runner, await shipment(files, runner.spiffeId, [e], `bad-${name.replace(/ /g, '-')}`)),
        grpc.status.INVALID_ARGUMENT,
        'ERR_AUDIT_RECORD_INVALID',
        why,
      );
    }
    assert.equal((await admin.head(runner.spiffeId)).headSeq, 0);
  });

  it("takes the shipper's own hop decisions, shown under the session labelled with their chain and changing nothing", async () => {
    const hop: AuditEvent = {
      ...hopEvent(1, runner.spiffeId),
      sessionId: victim,
      rootSessionId: victim,
      principal: 'mallory',
      parentSessionId: 's-elsewhere',
      actor: planner.spiffeId,
    };
    const res = await ingestAs(s, runner, await shipment(files, runner.spiffeId, [hop], 'own'));
    assert.equal(res.added, 1);
    const t = await traceOf(victim);
    const session = sessionIn(t, victim)!;
    assert.equal(session.spiffeId, planner.spiffeId);
    assert.equal(session.endedAt, undefined);
    assert.equal(session.parentSessionId, undefined, 'a shipped record does not re-parent a session');
    assert.deepEqual(
      t.principals.map((p) => p.principal),
      [planner.spiffeId],
      'nor re-attribute it to another principal',
    );
    const reported = session.events.filter((e) => e.reportedBy !== undefined);
    assert.deepEqual(
      reported.map((e) => [e.event, e.reportedBy, e.chain]),
      [['hop.decision', runner.spiffeId, runner.spiffeId]],
    );
  });

  it('trace never lets shipped records already in the store (from before this check) rewrite a session', async () => {
    // As an older server stored them: forged records under a chain of their own, straight into the store.
    const dir = tempDir('audit');
    const legacy = 'spiffe://lanyard.local/legacy-shipper';
    const log = await FileAuditLog.open({ file: path.join(dir, 'legacy.jsonl'), chain: legacy });
    await log.append({ event: 'session.end', decision: 'allow', subject: victim, sessionId: victim });
    await log.append({
      event: 'session.start',
      decision: 'allow',
      sessionId: 's-ghost',
      principal: 'mallory',
    });
    const parsed = parseChainText(text(await log.shipmentLines()));
    await log.close();
    fs.rmSync(dir, { recursive: true, force: true });
    await s.running.store.audit.appendRecords(legacy, parsed.records, parsed.checkpoints);

    const t = await traceOf(victim);
    const session = sessionIn(t, victim)!;
    assert.equal(session.endedAt, undefined, 'the forged end does not end the session');
    const end = session.events.find((e) => e.event === 'session.end');
    assert.equal(end?.reportedBy, legacy, 'it is shown, labelled with the chain that reported it');
    const ghost = await traceOf('s-ghost');
    assert.deepEqual(ghost.principals, [], 'a session only a shipper names is no session');
    assert.deepEqual(
      ghost.reported.map((e) => [e.event, e.reportedBy, e.sessionId]),
      [['session.start', legacy, 's-ghost']],
    );
  });
});

describe('audit: what one workload may ship is bounded', function () {
  this.timeout(120_000);
  const files = tempDir('audit');
  let s: TestServer;
  let admin: AuditAdminClient;
  let runner: Agent;
  let planner: Agent;

  before(async () => {
    s = await startTestServer({
      config: {
        auditIngest: {
          maxRecords: 3,
          maxBytes: 8 * 1024,
          windowSeconds: 3600,
          maxClockSkewSeconds: 300,
          maxRecordAgeSeconds: 86400,
        },
      },
    });
    admin = new AuditAdminClient(s.config.adminSocketPath);
    runner = await register(s, 'runner');
    planner = await register(s, 'planner');
  });
  after(async () => {
    admin.close();
    await s.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
    fs.rmSync(files, { recursive: true, force: true });
  });

  it('records per window: beyond the quota RESOURCE_EXHAUSTED, nothing stored; the admin socket is not limited', async () => {
    const file = path.join(files, 'runner.jsonl');
    const log = await FileAuditLog.open({ file, chain: runner.spiffeId });
    await log.append(hopEvent(1, runner.spiffeId));
    await log.append(hopEvent(2, runner.spiffeId));
    assert.equal((await ingestAs(s, runner, text(await log.shipmentLines()))).added, 2);
    await log.append(hopEvent(3, runner.spiffeId));
    await log.append(hopEvent(4, runner.spiffeId));
    await refused(
      ingestAs(s, runner, text(await log.shipmentLines())),
      grpc.status.RESOURCE_EXHAUSTED,
      'ERR_AUDIT_QUOTA_EXCEEDED',
      /may ship 3 records .* this shipment adds 2/,
    );
    assert.equal((await admin.head(runner.spiffeId)).headSeq, 2, 'nothing of the refused shipment stored');
    // The server's owner, on the admin socket, may move the backlog.
    assert.equal((await admin.ingest(text(await log.shipmentLines()))).added, 2);
    await log.close();
  });

  it('bytes per window, counted per workload', async () => {
    const log = await FileAuditLog.open({ file: path.join(files, 'planner.jsonl'), chain: planner.spiffeId });
    const big = (i: number): AuditEvent => ({ ...hopEvent(i, planner.spiffeId), reason: 'x'.repeat(2000) });
    await log.append(big(1));
    await log.append(big(2));
    assert.equal((await ingestAs(s, planner, text(await log.shipmentLines()))).added, 2);
    await log.append(big(3));
    await log.append(big(4));
    await refused(
      ingestAs(s, planner, text(await log.shipmentLines())),
      grpc.status.RESOURCE_EXHAUSTED,
      'ERR_AUDIT_QUOTA_EXCEEDED',
      /8192 bytes/,
    );
    await log.close();
  });

  it('the window slides, and a refused or failed shipment costs nothing', () => {
    const q = new IngestQuota({ maxRecords: 10, maxBytes: 1000, windowSeconds: 60 });
    const t = (s: number): Date => new Date(Date.UTC(2026, 11, 1, 0, 0, s));
    q.charge('a', 6, 100, t(0));
    assert.throws(() => q.charge('a', 5, 100, t(30)), /ERR_AUDIT_QUOTA_EXCEEDED|may ship 10 records/);
    q.charge('b', 10, 100, t(30)); // another workload has its own quota
    const refund = q.charge('a', 4, 100, t(30));
    refund(); // the store refused it: the 4 records are not counted
    q.charge('a', 4, 100, t(31));
    assert.throws(() => q.charge('a', 1, 1, t(59)));
    q.charge('a', 6, 100, t(61)); // the first charge left the window
  });
});
