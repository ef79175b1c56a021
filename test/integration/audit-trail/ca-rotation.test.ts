/**
 * CA rotation in the trail: manual steps (AdminService.RotateCa, from the admin socket) and the rotation
 * timer's own steps are ca.rotate records naming the CA and the step. The timer runs against a CA with a
 * 6-second lifetime, so it acts within seconds; the test polls for the records.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { parseChainText } from '../../../src/audit/jsonl';
import type { AuditRecord } from '../../../src/audit/record';
import { CaRotationStep } from '../../../src/gen/lanyard/v1/admin';
import { AuditAdminClient } from '../../../src/server/audit/client';
import { startTestServer, type TestServer } from '../../support/test-server';

describe('audit: CA rotation steps', function () {
  this.timeout(60_000);
  const servers: TestServer[] = [];
  after(async () => {
    for (const s of servers) {
      await s.stop();
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
  });

  const rotations = async (s: TestServer): Promise<AuditRecord[]> => {
    const c = new AuditAdminClient(s.config.adminSocketPath);
    try {
      return parseChainText((await c.export()).join('\n') + '\n').records.filter(
        (r) => r.event === 'ca.rotate',
      );
    } finally {
      c.close();
    }
  };

  it('lanyard ca rotate --prepare from the admin socket', async () => {
    const s = await startTestServer({ start: { rotationTimer: false } });
    servers.push(s);
    const res = await s.client.rotateCa({ step: CaRotationStep.CA_ROTATION_STEP_PREPARE });
    const [r] = await rotations(s);
    assert.equal(r?.actor, 'admin-socket');
    assert.equal(r?.action, 'CA_ROTATION_STEP_PREPARE');
    assert.equal(r?.subject, res.authority?.id);
  });

  it("the rotation timer's steps are recorded too, actor rotation-timer", async () => {
    const s = await startTestServer({ config: { caTtlSeconds: 6 }, start: { serverSvidTtlSeconds: 6 } });
    servers.push(s);
    let timed: AuditRecord[] = [];
    // Polls for the timer's work (nothing is timed: only that it happens and is recorded).
    for (let i = 0; i < 100 && timed.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      timed = (await rotations(s)).filter((r) => r.actor === 'rotation-timer');
    }
    assert.ok(timed.length > 0, 'no rotation-timer record');
    for (const r of timed) {
      assert.ok(
        ['CA_ROTATION_STEP_PREPARE', 'CA_ROTATION_STEP_ACTIVATE', 'expired'].includes(r.action ?? ''),
        r.action,
      );
      // The CA's id (a 6-second CA may be gone again by now, so it is not looked up).
      assert.match(r.subject ?? '', /^[0-9a-f-]{36}$/);
    }
  });
});
