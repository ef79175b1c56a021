/**
 * chainRecord builds the record in place from the checked copy of the event and hands back the body it hashed,
 * which the stores write as it is: the record, its hash and that body must be exactly what the chain's rules
 * (canonical JSON of every field but `hash`, SHA-256) give, for every kind of event.
 */
import * as assert from 'node:assert/strict';
import { canonicalJson, sha256Hex, type CanonicalValue } from '../../src/audit/canonical';
import { chainRecord, emptyHead, nextRecord, type ChainHead } from '../../src/audit/chain';
import type { AuditEvent } from '../../src/audit/record';
import { ErrorCode } from '../../src/errors';
import { CHAIN, sampleEvent } from './helpers';
import { expectRefusal } from '../support/refusal';

/** The record as the rules define it, written without any of chain.ts's shortcuts. */
function reference(head: ChainHead, event: AuditEvent, now: Date): { record: object; body: string } {
  const { time, ...fields } = event;
  const unhashed: Record<string, CanonicalValue> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined && v !== '') unhashed[k] = v as CanonicalValue;
  }
  Object.assign(unhashed, {
    chain: head.chain,
    seq: head.seq + 1,
    time: (time ?? now).toISOString(),
    prevHash: head.hash,
  });
  const body = canonicalJson(unhashed);
  return { record: { ...unhashed, hash: sha256Hex(body) }, body };
}

const EVENTS: AuditEvent[] = [
  ...Array.from({ length: 8 }, (_, i) => sampleEvent(i)),
  { event: 'svid.renew', decision: 'allow', actor: 'spiffe://td/a', subject: 'spiffe://td/a', reason: '' },
  {
    event: 'entry.update',
    decision: 'allow',
    subject: 'e-1',
    changes: [{ field: 'ttl', before: '60', after: '"\\u00e9 120"' }],
  },
  { event: 'hop.decision', decision: 'deny', reason: 'ERR_X', service: 'spiffe://td/ü', scopes: [] },
];

describe('chainRecord', () => {
  it('gives the record, hash and body of the chain rules for every kind of event, chained on', () => {
    const now = new Date(Date.UTC(2026, 11, 5, 10, 0, 0, 123));
    let head = emptyHead(CHAIN);
    for (const event of EVENTS) {
      const { record, body } = chainRecord(head, event, now);
      const want = reference(head, event, now);
      assert.deepEqual(record, want.record);
      assert.equal(body, want.body);
      assert.deepEqual(nextRecord(head, event, now), want.record);
      head = { chain: CHAIN, seq: record.seq, hash: record.hash };
    }
    assert.equal(head.seq, EVENTS.length);
  });

  it('leaves the event it was given as it was', () => {
    const event = sampleEvent(3);
    const copy = structuredClone(event);
    chainRecord(emptyHead(CHAIN), event, new Date());
    assert.deepEqual(event, copy);
  });

  it('refuses what checkEvent refuses', () => {
    const head = emptyHead(CHAIN);
    const bad: unknown[] = [
      { ...sampleEvent(1), event: 'svid.bogus' },
      { ...sampleEvent(1), decision: 'maybe' },
      { ...sampleEvent(1), time: new Date(Number.NaN) },
      { ...sampleEvent(1), actor: 7 },
    ];
    for (const e of bad) {
      expectRefusal(() => chainRecord(head, e as AuditEvent, new Date()), ErrorCode.AUDIT_RECORD_INVALID);
    }
  });
});
