/**
 * What verify accepts, without a server: a chain verifies only when a signed checkpoint covers its last record
 * (review finding: an export cut with its tail and last checkpoint printed OK); each checkpoint is checked
 * with the key current at its time; and a stored chain is cross-checked against the witnesses outside the
 * database (a checkpoint a witness holds and the database lacks, a witness entry that does not verify, a pin
 * or a key window that disagrees).
 */
import assert from 'node:assert/strict';
import { AuditSigningKey } from '../../src/audit/audit-key';
import { emptyHead, nextRecord, type ChainHead } from '../../src/audit/chain';
import { signCheckpoint, type AuditCheckpoint } from '../../src/audit/checkpoint';
import { introduceKey, ringFromIntroductions } from '../../src/audit/key-history';
import { AuditKeyRing } from '../../src/audit/key-ring';
import type { AuditRecord } from '../../src/audit/record';
import {
  AuditChainVerifier,
  verifyAuditChain,
  type ChainBreakKind,
  type ChainVerification,
} from '../../src/audit/verify-chain';
import { crossCheckWitnesses, WitnessCheckpointTracker } from '../../src/audit/witness-check';
import { signChainKeyPin, type WitnessContent } from '../../src/audit/witness';
import { CHAIN, sampleEvent } from './helpers';

const T0 = Date.parse('2026-12-01T00:00:00.000Z');
const at = (s: number): Date => new Date(T0 + s * 1000);

function chainOf(n: number): { records: AuditRecord[]; heads: ChainHead[] } {
  const records: AuditRecord[] = [];
  const heads: ChainHead[] = [emptyHead(CHAIN)];
  for (let i = 1; i <= n; i++) {
    const r = nextRecord(heads[i - 1]!, { ...sampleEvent(i), time: at(i) }, at(i));
    records.push(r);
    heads.push({ chain: CHAIN, seq: r.seq, hash: r.hash });
  }
  return { records, heads };
}

function expectBreak(v: ChainVerification, kind: ChainBreakKind, seq: number): void {
  assert.equal(v.ok, false, 'must not verify');
  assert.equal(v.break?.kind, kind, v.break?.message);
  assert.equal(v.break?.seq, seq, v.break?.message);
}

describe('audit verify: the signed head must cover the last record', () => {
  const key = AuditSigningKey.generate();
  const { records, heads } = chainOf(8);
  const cp = (seq: number, s = 100 + seq): AuditCheckpoint => signCheckpoint(heads[seq]!, key, at(s));

  it('a chain signed through its last record verifies', () => {
    const v = verifyAuditChain(CHAIN, records, [cp(4), cp(8)], key.publicKey);
    assert.equal(v.ok, true, v.break?.message);
    assert.equal(v.checkpointedSeq, 8);
    assert.equal(v.checkpointedAt, at(108).toISOString());
  });

  it('records after the last checkpoint are an unsigned tail; accepted only when asked', () => {
    expectBreak(verifyAuditChain(CHAIN, records, [cp(4)], key.publicKey), 'unsigned_tail', 5);
    const lenient = verifyAuditChain(CHAIN, records, [cp(4)], key.publicKey, { allowUnsignedTail: true });
    assert.equal(lenient.ok, true);
    assert.deepEqual([lenient.checkpointedSeq, lenient.headSeq], [4, 8]);
  });

  it('an export cut with its tail and last checkpoint does not verify (it did: "OK, 0 checkpoints")', () => {
    // Records 6..8 and the checkpoint over 8 removed: what is left links perfectly.
    expectBreak(verifyAuditChain(CHAIN, records.slice(0, 5), [cp(4)], key.publicKey), 'unsigned_tail', 5);
    // Every checkpoint removed as well.
    expectBreak(verifyAuditChain(CHAIN, records.slice(0, 5), [], key.publicKey), 'unsigned_tail', 1);
    expectBreak(verifyAuditChain(CHAIN, records, [], undefined), 'unsigned_tail', 1);
  });

  it('an empty chain needs its checkpoint at 0 too', () => {
    expectBreak(verifyAuditChain(CHAIN, [], [], key.publicKey), 'unsigned_tail', 0);
    assert.equal(verifyAuditChain(CHAIN, [], [cp(0)], key.publicKey).ok, true);
  });
});

describe('audit verify: each checkpoint with the key current at its time', () => {
  const first = AuditSigningKey.generate();
  const second = AuditSigningKey.generate();
  const rotatedAt = at(50);
  const ring = ringFromIntroductions([
    introduceKey(first.publicKey, at(0), first),
    introduceKey(second.publicKey, rotatedAt, first),
  ]);
  const { records, heads } = chainOf(8);

  it('a checkpoint signed by the retired key while it was current still verifies', () => {
    const v = verifyAuditChain(
      CHAIN,
      records,
      [signCheckpoint(heads[4]!, first, at(40)), signCheckpoint(heads[8]!, second, at(60))],
      ring,
    );
    assert.equal(v.ok, true, v.break?.message);
  });

  it('the retired key signing after its window is refused (checkpoint_key)', () => {
    const v = verifyAuditChain(CHAIN, records, [signCheckpoint(heads[8]!, first, at(60))], ring);
    expectBreak(v, 'checkpoint_key', 8);
    assert.match(v.break!.message, /was not the signing key/);
  });

  it('the new key vouching for a time before its window is refused (checkpoint_key)', () => {
    expectBreak(
      verifyAuditChain(CHAIN, records, [signCheckpoint(heads[8]!, second, at(49))], ring),
      'checkpoint_key',
      8,
    );
  });

  it('a key the ring does not hold is refused, and the windows travel in the bundle JWKs', () => {
    const stranger = AuditSigningKey.generate();
    expectBreak(
      verifyAuditChain(CHAIN, records, [signCheckpoint(heads[8]!, stranger, at(60))], ring),
      'checkpoint_signature',
      8,
    );
    const fromBundle = AuditKeyRing.fromSpiffeBundle({
      keys: [{ kty: 'EC', use: 'x509-svid' }, ...ring.jwks()],
    })!;
    assert.deepEqual(
      fromBundle.entries.map((e) => [e.key.keyId, e.validFrom?.toISOString(), e.validUntil?.toISOString()]),
      [
        [first.publicKey.keyId, at(0).toISOString(), rotatedAt.toISOString()],
        [second.publicKey.keyId, rotatedAt.toISOString(), undefined],
      ],
    );
    expectBreak(
      verifyAuditChain(CHAIN, records, [signCheckpoint(heads[8]!, first, at(60))], fromBundle),
      'checkpoint_key',
      8,
    );
  });

  it('a key history whose link is not signed by the outgoing key is refused', () => {
    assert.throws(
      () =>
        ringFromIntroductions([
          introduceKey(first.publicKey, at(0), first),
          introduceKey(second.publicKey, rotatedAt, second),
        ]),
      /signed by .*expected the previous key/,
    );
  });
});

describe('audit verify: the database against its witnesses', () => {
  const key = AuditSigningKey.generate();
  const ring = ringFromIntroductions([introduceKey(key.publicKey, at(0), key)]);
  const { records, heads } = chainOf(8);
  const c4 = signCheckpoint(heads[4]!, key, at(104));
  const c8 = signCheckpoint(heads[8]!, key, at(108));
  const witness = (w: Partial<WitnessContent>): WitnessContent => ({
    name: 'file:/w.jsonl',
    checkpoints: [],
    pins: [],
    introductions: [],
    ...w,
  });
  const check = (
    stored: AuditCheckpoint[],
    w: WitnessContent,
    extra: { ownChain?: boolean; pinnedX?: string; storedRecords?: AuditRecord[] } = {},
  ): ReturnType<typeof crossCheckWitnesses> => {
    const rs = extra.storedRecords ?? records;
    const rest = {
      chainKeys: ring,
      serverKeys: ring,
      ownChain: extra.ownChain ?? true,
      ...(extra.pinnedX !== undefined && { pinnedX: extra.pinnedX }),
      witnesses: [w],
    };
    const whole = crossCheckWitnesses({
      verification: verifyAuditChain(CHAIN, rs, stored, ring, { allowUnsignedTail: true }),
      checkpoints: stored,
      ...rest,
    });
    // The same chain as `verify` reads it, in chain order, the stored checkpoints seen and dropped as they pass:
    // the same verdict, the tracker holding only what the witness holds and the database does not.
    const tracker = new WitnessCheckpointTracker(CHAIN, [w]);
    const v = new AuditChainVerifier({
      allowUnsignedTail: true,
      keys: ring,
      onCheckpoint: (c) => tracker.see(c),
    });
    v.setChain(CHAIN);
    for (const c of stored.filter((c) => c.seq === 0)) v.addCheckpoint(c);
    for (const r of rs) {
      v.addRecord(r);
      for (const c of stored.filter((c) => c.seq === r.seq)) v.addCheckpoint(c);
    }
    for (const c of stored.filter((c) => c.seq > rs.length)) v.addCheckpoint(c);
    const streamed = tracker.check({ verification: v.finish(), ...rest });
    assert.deepEqual(streamed, whole, 'streamed and whole-chain cross-checks agree');
    const text = (c: AuditCheckpoint): string => JSON.stringify(c);
    const storedText = new Set(stored.map(text));
    const missing = new Set(w.checkpoints.filter((c) => c.chain === CHAIN).map(text));
    for (const t of storedText) missing.delete(t);
    assert.equal(tracker.held, missing.size);
    return whole;
  };

  it('agrees when the database holds every checkpoint the witness does (and may hold more)', () => {
    const v = check(
      [c4, c8],
      witness({ checkpoints: [c4], introductions: [introduceKey(key.publicKey, at(0), key)] }),
    );
    assert.equal(v.ok, true, v.witnessBreak?.message);
    assert.equal(v.witnessCheckpoints, 1);
  });

  it('a checkpoint deleted from the database but held by the witness fails', () => {
    const v = check([c8], witness({ checkpoints: [c4, c8] }));
    assert.equal(v.ok, false);
    assert.equal(v.witnessBreak?.seq, 4);
    assert.match(v.witnessBreak!.message, /the database does not/);
  });

  it('a chain rolled back to an older signed head (later records and checkpoints deleted) fails', () => {
    // Verifies on its own: records 1..4 signed at 4. The witness remembers the head at 8.
    const v = check([c4], witness({ checkpoints: [c4, c8] }), { storedRecords: records.slice(0, 4) });
    assert.equal(v.break, undefined, 'the stored chain alone looks fine');
    assert.equal(v.ok, false);
    assert.equal(v.witnessBreak?.seq, 8);
  });

  it('a witness entry that does not verify (edited in the witness) fails', () => {
    const edited = { ...c4, headHash: heads[3]!.hash };
    const v = check([c4, c8], witness({ checkpoints: [edited] }));
    assert.equal(v.ok, false);
    assert.match(v.witnessBreak!.message, /do not verify/);
  });

  it("a shipped chain's pinned key must be the one the witness pinned", () => {
    const shipper = AuditSigningKey.generate();
    const other = AuditSigningKey.generate();
    const pin = signChainKeyPin(CHAIN, shipper.publicKey.jwk().x, at(10), key);
    const same = check([c4, c8], witness({ pins: [pin] }), {
      ownChain: false,
      pinnedX: shipper.publicKey.jwk().x,
    });
    assert.equal(same.ok, true, same.witnessBreak?.message);
    const swapped = check([c4, c8], witness({ pins: [pin] }), {
      ownChain: false,
      pinnedX: other.publicKey.jwk().x,
    });
    assert.equal(swapped.ok, false);
    assert.match(swapped.witnessBreak!.message, /pins key .* the database pins/);
    const unsigned = check([c4, c8], witness({ pins: [{ ...pin, x: other.publicKey.jwk().x }] }), {
      ownChain: false,
      pinnedX: other.publicKey.jwk().x,
    });
    assert.equal(unsigned.ok, false, 'a pin edited in the witness does not verify');
  });

  it("audit key windows in the witness must be the server's", () => {
    const moved = introduceKey(key.publicKey, at(5), key);
    const v = check([c4, c8], witness({ introductions: [moved] }));
    assert.equal(v.ok, false);
    assert.match(v.witnessBreak!.message, /starts at/);
  });
});
