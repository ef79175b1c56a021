/** Hop decisions (what the TLS/gRPC/HTTP helpers report) recorded into a service's file chain. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileAuditLog } from '../../src/audit/file-log';
import { auditHopDecisions } from '../../src/hop/audit';
import { CHAIN } from './helpers';
import { tempDir } from '../support/tmp';

describe('hop decisions into a file chain', () => {
  const dir = tempDir('audit');
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('records allow and deny with the peer context; an unverified peer is marked; a failing log goes to onError', async () => {
    const log = await FileAuditLog.open({ file: path.join(dir, 'hops.jsonl'), chain: CHAIN });
    const errors: unknown[] = [];
    const listener = auditHopDecisions(log, { onError: (e) => errors.push(e) });
    listener({
      at: new Date(),
      transport: 'http',
      service: CHAIN,
      action: 'GET /docs',
      decision: 'deny',
      reason: 'ERR_UNKNOWN_AUTHORITY',
      peerId: 'spiffe://evil.example/agent',
      peerSerial: 'abc',
    });
    await listener.settled();
    const [r] = await log.readRecords(0, 10);
    assert.equal(r?.actor, 'unverified:spiffe://evil.example/agent');
    assert.equal(r?.action, 'http GET /docs');
    assert.equal(r?.reason, 'ERR_UNKNOWN_AUTHORITY');
    assert.equal(r?.serial, 'abc');
    await log.close();
    listener({ at: new Date(), transport: 'tls', service: CHAIN, decision: 'allow' });
    await listener.settled();
    assert.equal(errors.length, 1, 'an append to a closed log is reported, not thrown into the helper');
  });
});
