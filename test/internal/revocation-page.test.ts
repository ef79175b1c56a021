/**
 * The packed page of WatchRevocations: what is written is read back exactly, and a page that is not whole or
 * not in the format is refused (a watcher then applies none of it).
 */
import assert from 'node:assert/strict';
import {
  PackedPageWriter,
  PackedRevocationsError,
  packRevocations,
  unpackRevocations,
} from '../../src/internal/revocation-page';

const T = Date.parse('2026-12-05T04:00:00Z');

const records = [
  { sequence: 3, kind: 'certificate', id: 'abc', reason: 'key compromise', revokedAt: T, expiresAt: T + 9e6 },
  {
    sequence: 4,
    kind: 'certificate',
    id: '1f'.repeat(16),
    reason: 'key compromise',
    revokedAt: T - 5,
    expiresAt: T + 1,
  },
  { sequence: 9, kind: 'certificate', id: 'NOT-HEX', reason: '', revokedAt: T, expiresAt: T },
  {
    sequence: 10,
    kind: 'session',
    id: 's-1',
    reason: 'task done: ✓',
    revokedAt: T + 1000,
    expiresAt: T + 7e6,
  },
  {
    sequence: 11,
    kind: 'session',
    id: 's-2',
    reason: '',
    revokedAt: T + 1000,
    expiresAt: T + 7e6,
    causeSequence: 10,
  },
  { sequence: 2 ** 40, kind: 'session', id: '', reason: 'task done: ✓', revokedAt: 0, expiresAt: 2 ** 52 },
] as const;

describe('packed revocation pages', () => {
  it('reads back what was written: hex serials of any length, other ids, reasons once, causes, times', () => {
    const page = packRevocations(records);
    const back = unpackRevocations(page);
    assert.deepEqual(
      back,
      records.map((r) => ({
        sequence: r.sequence,
        kind: r.kind,
        id: r.id,
        reason: r.reason,
        revokedAtMs: r.revokedAt,
        expiresAtMs: r.expiresAt,
        causeSequence: 'causeSequence' in r ? r.causeSequence : 0,
      })),
    );
    assert.deepEqual(unpackRevocations(packRevocations([])), []);
    // A 32-hex-digit serial is 16 bytes on the wire, not 32 characters.
    const one = packRevocations([{ ...records[1], reason: '' }]);
    assert.ok(one.length <= 1 + 1 + 1 + 17 + 2 * 7, `${one.length} bytes`);
  });

  it('keeps a page under its bound as the watcher splits pages', () => {
    const w = new PackedPageWriter();
    for (const r of records) {
      const before = w.size;
      w.add(r);
      assert.ok(w.size - before <= PackedPageWriter.bound(r));
    }
    assert.equal(w.count, records.length);
    assert.equal(w.lastSequence, 2 ** 40);
  });

  it('refuses sequences that do not grow when writing', () => {
    const w = new PackedPageWriter();
    w.add(records[1]);
    assert.throws(() => w.add(records[0]), PackedRevocationsError);
  });

  it('refuses an unknown format, a cut entry, unknown flags, an undefined reason and a repeated sequence', () => {
    const page = packRevocations(records);
    assert.throws(() => unpackRevocations(Uint8Array.of(2, 1, 0, 0)), /unknown packed revocations format 2/);
    // Cut anywhere inside the last entry: never read as a shorter page.
    const lastStart = packRevocations(records.slice(0, -1)).length;
    for (let n = lastStart + 1; n < page.length; n++) {
      assert.throws(() => unpackRevocations(page.subarray(0, n)), PackedRevocationsError, `cut at ${n}`);
    }
    assert.throws(() => unpackRevocations(Uint8Array.of(1, 1, 0x40, 0, 0, 0)), /unknown flags/);
    // flags 4 (reason) with index 1 while no reason is defined yet.
    assert.throws(() => unpackRevocations(Uint8Array.of(1, 1, 4, 0, 1, 0, 0)), /reason 1 not defined/);
    assert.throws(() => unpackRevocations(Uint8Array.of(1, 0, 0, 0, 0, 0)), /sequences must grow/);
    assert.throws(
      () => unpackRevocations(Uint8Array.of(1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)),
      /varint too long/,
    );
    // Three hex digits ("abc") are written as 0a bc: a padding digit other than 0 is not a page a writer made.
    assert.equal(unpackRevocations(Uint8Array.of(1, 1, 2, 3, 0x0a, 0xbc, 0, 0))[0]!.id, 'abc');
    assert.throws(() => unpackRevocations(Uint8Array.of(1, 1, 2, 3, 0x1a, 0xbc, 0, 0)), /nonzero padding/);
  });
});
