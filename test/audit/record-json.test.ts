/**
 * The record serialiser (record-json.ts) must write exactly what canonicalJson writes, byte for byte, for every
 * input: a record's hash is over these bytes, so one differing byte would make every chain written before (or by
 * another implementation of the rules) fail to verify. Checked on generated records with every field, escapes
 * and non-ASCII text, and on objects it must hand to canonicalJson (unknown fields, values of other types).
 */
import assert from 'node:assert/strict';
import { canonicalJson, type CanonicalValue } from '../../src/audit/canonical';
import { emptyHead, nextRecord, recordBody, recordHash, recordLine } from '../../src/audit/chain';
import { sha256Hex } from '../../src/audit/canonical';
import { parseRecord, type AuditEvent, type AuditRecord } from '../../src/audit/record';
import { canonicalRecordBody, canonicalRecordLine, storedRecordLine } from '../../src/audit/record-json';
import { CHAIN, sampleEvent } from './helpers';

/** What canonical.ts's rules give, through the generic serialiser. */
const slowBody = (r: object): string => {
  const { hash: _h, ...body } = r as Record<string, CanonicalValue>;
  return canonicalJson(body);
};
const slowLine = (r: object): string =>
  canonicalJson({ type: 'record', ...(r as Record<string, CanonicalValue>) });

/** Strings that JSON escapes or encodes in several bytes. */
const AWKWARD = ['a"b', 'back\\slash', 'tab\tnew\nline', '\u0000\u001f', 'é漢字', '😀 \ud83d', '\u2028', ''];

function fullEvent(i: number): AuditEvent {
  const s = (name: string): string => `${name}-${i}-${AWKWARD[i % AWKWARD.length]!}`;
  return {
    time: new Date(Date.UTC(2026, 0, 1) + i),
    event: 'entry.update',
    decision: i % 2 === 0 ? 'allow' : 'deny',
    reason: s('reason'),
    actor: s('actor'),
    subject: s('subject'),
    agentId: s('agent'),
    sessionId: s('session'),
    rootSessionId: s('root'),
    parentSessionId: s('parent'),
    principal: s('principal'),
    principalIssuer: s('issuer'),
    scopes: i % 3 === 0 ? [] : ['docs:read', s('scope')],
    policyVersion: s('policy'),
    serial: (i + 1).toString(16),
    parentCertSha256: 'ab'.repeat(32),
    action: s('action'),
    service: s('service'),
    changes: [
      { field: 'ttl', before: '300', after: String(i) },
      { field: 'dns_names', before: '["a"]', after: JSON.stringify([s('dns')]) },
    ],
  };
}

describe('audit: record serialiser', () => {
  it('writes what canonicalJson writes for records with every field, escapes and non-ASCII text', () => {
    let head = emptyHead(CHAIN);
    for (let i = 0; i < 200; i++) {
      const r = nextRecord(head, i % 2 === 0 ? fullEvent(i) : sampleEvent(i), new Date());
      head = { chain: CHAIN, seq: r.seq, hash: r.hash };
      assert.equal(canonicalRecordBody(r), slowBody(r));
      assert.equal(canonicalRecordLine(r), slowLine(r));
      assert.equal(recordHash(r), sha256Hex(slowBody(r)));
      assert.equal(r.hash, sha256Hex(slowBody(r)));
      // The line of a stored row (body and hash) without parsing it: the same bytes.
      assert.equal(storedRecordLine(recordBody(r), r.hash), recordLine(r));
      // A record read back from its line serialises to the same bytes.
      const { type: _t, ...parsed } = JSON.parse(recordLine(r)) as Record<string, unknown>;
      assert.equal(recordBody(parseRecord(parsed)), slowBody(r));
    }
  });

  it('hands anything that is not a plain record to canonicalJson, with the same result', () => {
    const r = nextRecord(emptyHead(CHAIN), sampleEvent(1), new Date());
    const odd: object[] = [
      { ...r, extra: 'field' },
      { ...r, type: 'checkpoint' },
      { ...r, seq: 1.5 },
      { ...r, seq: '7' },
      { ...r, scopes: ['a', 1] },
      { ...r, scopes: 'docs:read' },
      { ...r, changes: [{ field: 'a', before: 'b', after: 'c', extra: 'd' }] },
      { ...r, changes: [{ field: 'a', before: 'b' }] },
      { ...r, changes: [{ field: 'a', before: 'b', after: 3 }] },
      { ...r, reason: null },
      { ...r, actor: undefined },
      { ...r, principal: true },
      { hash: r.hash },
      {},
    ];
    for (const o of odd) {
      const expectBody = ((): string | Error => {
        try {
          return slowBody(o);
        } catch (e) {
          return e as Error;
        }
      })();
      if (expectBody instanceof Error)
        assert.throws(() => canonicalRecordBody(o), { message: expectBody.message });
      else assert.equal(canonicalRecordBody(o), expectBody, JSON.stringify(o));
      const expectLine = ((): string | Error => {
        try {
          return slowLine(o);
        } catch (e) {
          return e as Error;
        }
      })();
      if (expectLine instanceof Error)
        assert.throws(() => canonicalRecordLine(o), { message: expectLine.message });
      else assert.equal(canonicalRecordLine(o), expectLine, JSON.stringify(o));
    }
  });

  it('leaves out fields that are undefined, as canonicalJson does', () => {
    const r = nextRecord(emptyHead(CHAIN), sampleEvent(2), new Date());
    const withUndefined = { ...r, reason: undefined, scopes: undefined } as unknown as AuditRecord;
    assert.equal(canonicalRecordBody(withUndefined), slowBody(withUndefined));
    assert.equal(canonicalRecordLine(withUndefined), slowLine(withUndefined));
  });

  it('leaves a stored body it cannot splice to the caller to parse', () => {
    const r = nextRecord(emptyHead(CHAIN), sampleEvent(3), new Date());
    const body = recordBody(r);
    const cases: [string, string][] = [
      [body, r.hash.toUpperCase()],
      [body, 'not a hash'],
      [body.replace('{"', '{"hash":"x","'), r.hash],
      [body.replace('}', ',"type":"checkpoint"}'), r.hash],
      [body.replace(',"event":"', ', "event":"'), r.hash],
      [body.replace(/"event":"[^"]*"/, '"event":"a\\"'), r.hash],
      [body.slice(0, -1), r.hash],
      [`[${body}]`, r.hash],
    ];
    for (const [b, h] of cases) assert.equal(storedRecordLine(b, h), undefined, b);
  });
});
