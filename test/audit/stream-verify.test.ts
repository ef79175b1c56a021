/**
 * The streaming chain verifier (AuditChainVerifier) on generated chains far longer than the hashes it keeps: it
 * reads records and checkpoints one at a time, holds none of them, and must reach exactly the verdict of the
 * whole-chain verifier (verifyAuditChain) — intact, a tamper in the middle of the stream, a cut tail — and fail
 * closed on the one thing a single pass cannot check. The line reader gives the same chain whatever the chunks.
 */
import assert from 'node:assert/strict';
import { AuditSigningKey } from '../../src/audit/audit-key';
import { emptyHead, nextRecord, recordLine } from '../../src/audit/chain';
import { signCheckpoint, type AuditCheckpoint } from '../../src/audit/checkpoint';
import { ChainLineParser, ChainTextSplitter, chainLines, parseChainText } from '../../src/audit/jsonl';
import type { AuditRecord } from '../../src/audit/record';
import { AuditChainVerifier, verifyAuditChain, type ChainVerification } from '../../src/audit/verify-chain';
import { CHAIN, sampleEvent } from './helpers';

/** Records in the generated chain; a checkpoint every EVERY records and one over the last. */
const N = 3_000;
const EVERY = 250;
/** Far fewer hashes than records: the chain cannot be verified by remembering it. */
const WINDOW = 32;

type Item = { record: AuditRecord } | { checkpoint: AuditCheckpoint };

describe('audit: streaming chain verifier', () => {
  const key = AuditSigningKey.generate();
  let items: Item[];

  before(() => {
    items = [];
    let head = emptyHead(CHAIN);
    const at = new Date(Date.UTC(2026, 0, 1));
    for (let i = 1; i <= N; i++) {
      const r = nextRecord(head, sampleEvent(i), at);
      head = { chain: CHAIN, seq: r.seq, hash: r.hash };
      items.push({ record: r });
      if (i % EVERY === 0 || i === N) items.push({ checkpoint: signCheckpoint(head, key, at) });
    }
  });

  const streamed = (list: Item[], window = WINDOW, allowUnsignedTail = false): ChainVerification => {
    const v = new AuditChainVerifier({ allowUnsignedTail, keys: key.publicKey }, window);
    v.setChain(CHAIN);
    for (const it of list) {
      if ('record' in it) v.addRecord(it.record);
      else v.addCheckpoint(it.checkpoint);
    }
    return v.finish();
  };
  const whole = (list: Item[], allowUnsignedTail = false): ChainVerification =>
    verifyAuditChain(
      CHAIN,
      list.flatMap((it) => ('record' in it ? [it.record] : [])),
      list.flatMap((it) => ('checkpoint' in it ? [it.checkpoint] : [])),
      key.publicKey,
      { allowUnsignedTail },
    );
  const indexOfRecord = (list: Item[], seq: number): number =>
    list.findIndex((it) => 'record' in it && it.record.seq === seq);
  const same = (list: Item[], kind: string | undefined, seq?: number): void => {
    const s = streamed(list);
    assert.deepEqual(s, whole(list), 'the streaming verdict is the whole-chain verdict');
    assert.equal(s.break?.kind, kind, s.break?.message);
    if (seq !== undefined) assert.equal(s.break?.seq, seq, s.break?.message);
  };

  it('verifies the intact chain, every checkpoint, keeping only a window of hashes', () => {
    const s = streamed(items);
    assert.equal(s.ok, true, s.break?.message);
    assert.equal(s.records, N);
    assert.equal(s.checkpoints, N / EVERY);
    assert.equal(s.checkpointedSeq, N);
    assert.deepEqual(s, whole(items));
  });

  it('edited: a record changed in the middle of the stream', () => {
    const list = [...items];
    const i = indexOfRecord(list, 1_700);
    const r = (list[i] as { record: AuditRecord }).record;
    list[i] = { record: { ...r, decision: r.decision === 'allow' ? 'deny' : 'allow' } };
    same(list, 'edited', 1_700);
  });

  it('edited: everything from the middle on rewritten with recomputed hashes fails the next checkpoint', () => {
    const list = items.slice(0, indexOfRecord(items, 1_600));
    let head = {
      chain: CHAIN,
      seq: 1_599,
      hash: (list[list.length - 1] as { record: AuditRecord }).record.hash,
    };
    const rest = items.slice(indexOfRecord(items, 1_600));
    for (const it of rest) {
      if ('checkpoint' in it) {
        list.push(it);
        continue;
      }
      const r = nextRecord(
        head,
        { ...sampleEvent(it.record.seq), principal: 'mallory' },
        new Date(it.record.time),
      );
      head = { chain: CHAIN, seq: r.seq, hash: r.hash };
      list.push({ record: r });
    }
    same(list, 'checkpoint_mismatch', 1_750);
  });

  it('deleted and reordered records mid-stream, told apart by what comes later', () => {
    const deleted = items.filter((it) => !('record' in it && it.record.seq === 2_222));
    same(deleted, 'deleted', 2_222);
    const swapped = [...items];
    const a = indexOfRecord(swapped, 1_111);
    [swapped[a], swapped[a + 1]] = [swapped[a + 1]!, swapped[a]!];
    same(swapped, 'reordered', 1_112);
    // The missing record far later than the window: still reordered, not deleted.
    const moved = items.filter((it) => !('record' in it && it.record.seq === 100));
    moved.push(items[indexOfRecord(items, 100)]!);
    same(moved, 'reordered', 101);
  });

  it('a cut tail: records cut with their checkpoint kept is truncated; cut with it, an unsigned tail', () => {
    const lastCheckpoint = items[items.length - 1]!;
    const cut = [...items.slice(0, indexOfRecord(items, 2_900)), lastCheckpoint];
    same(cut, 'truncated', 2_900);
    const cutBoth = items.slice(0, indexOfRecord(items, 2_900));
    same(cutBoth, 'unsigned_tail', 2_751);
    // Accepted as a chain still being written only when the caller says so.
    const open = streamed(cutBoth, WINDOW, true);
    assert.equal(open.ok, true, open.break?.message);
    assert.deepEqual(open, whole(cutBoth, true));
  });

  it('a forged checkpoint in the middle is refused', () => {
    const list = [...items];
    const i = list.findIndex((it) => 'checkpoint' in it && it.checkpoint.seq === 1_500);
    const c = (list[i] as { checkpoint: AuditCheckpoint }).checkpoint;
    list[i] = { checkpoint: { ...c, headHash: 'A'.repeat(43) } };
    same(list, 'checkpoint_signature', 1_500);
  });

  it('fails closed on a checkpoint read further after its record than the hashes it keeps', () => {
    // Moved from after record 500 to the end: the whole-chain verifier can still compare its head, a single
    // pass cannot, and says so rather than accepting it.
    const i = items.findIndex((it) => 'checkpoint' in it && it.checkpoint.seq === 500);
    const list = [...items.slice(0, i), ...items.slice(i + 1), items[i]!];
    assert.equal(whole(list).ok, true);
    const s = streamed(list);
    assert.equal(s.ok, false);
    assert.equal(s.break?.kind, 'checkpoint_mismatch');
    assert.equal(s.break?.seq, 500);
    // Within the window it is checked as usual.
    const near = [...items];
    const j = near.findIndex((it) => 'checkpoint' in it && it.checkpoint.seq === 500);
    const [moved] = near.splice(j, 1);
    near.splice(j + WINDOW / 2, 0, moved!);
    assert.equal(streamed(near).ok, true);
  });

  it('holds no checkpoint: its state after 200 and after 2,000 checkpoints is the same', () => {
    // A checkpoint after every record (a server signs one per export and per interval): 2,000 of them.
    const many: Item[] = [];
    let head = emptyHead(CHAIN);
    const at = new Date(Date.UTC(2026, 0, 1));
    for (let i = 1; i <= 2_000; i++) {
      const r = nextRecord(head, sampleEvent(i), at);
      head = { chain: CHAIN, seq: r.seq, hash: r.hash };
      many.push({ record: r }, { checkpoint: signCheckpoint(head, key, at) });
    }
    const seen: number[] = [];
    const v = new AuditChainVerifier({ keys: key.publicKey, onCheckpoint: (c) => seen.push(c.seq) }, WINDOW);
    v.setChain(CHAIN);
    const states = [];
    for (const [i, it] of many.entries()) {
      if ('record' in it) v.addRecord(it.record);
      else v.addCheckpoint(it.checkpoint);
      if (i === 399 || i === many.length - 1) states.push(v.state);
    }
    assert.deepEqual(states[0], { hashes: WINDOW, pendingCheckpoints: 0, heldCheckpoints: 0 });
    assert.deepEqual(states[1], states[0]);
    const result = v.finish();
    assert.equal(result.ok, true, result.break?.message);
    assert.equal(result.checkpoints, 2_000);
    assert.equal(result.checkpointedSeq, 2_000);
    assert.equal(seen.length, 2_000, 'every checkpoint passed to the witness check');
    // A forged one among them is still found, at its place.
    const forged = [...many];
    const j = forged.findIndex((it) => 'checkpoint' in it && it.checkpoint.seq === 1_234);
    const c = (forged[j] as { checkpoint: AuditCheckpoint }).checkpoint;
    forged[j] = { checkpoint: { ...c, time: new Date(at.getTime() + 1).toISOString() } };
    const f = streamed(forged);
    assert.equal(f.break?.kind, 'checkpoint_signature');
    assert.equal(f.break?.seq, 1_234);
    assert.deepEqual(f, whole(forged));
  });

  it('holds checkpoints read ahead of their record only up to a bound, then refuses (fail closed)', () => {
    // Every checkpoint first, then the records: what no writer produces, and what would make a verifier hold
    // all of them.
    const ahead = [...items.filter((it) => 'checkpoint' in it), ...items.filter((it) => 'record' in it)];
    const bounded = (maxPending: number): { v: AuditChainVerifier; peak: number } => {
      const v = new AuditChainVerifier({ keys: key.publicKey, maxPending }, WINDOW);
      v.setChain(CHAIN);
      let peak = 0;
      for (const it of ahead) {
        if ('record' in it) v.addRecord(it.record);
        else v.addCheckpoint(it.checkpoint);
        peak = Math.max(peak, v.state.pendingCheckpoints);
      }
      return { v, peak };
    };
    // Room for all of them: each is judged when its record comes, and the chain verifies.
    const roomy = bounded(N / EVERY);
    assert.equal(roomy.v.finish().ok, true);
    assert.equal(roomy.peak, N / EVERY);
    // Room for 5: the sixth is refused where it signs, and no more than 5 are ever held.
    const tight = bounded(5);
    assert.equal(tight.peak, 5);
    const r = tight.v.finish();
    assert.equal(r.ok, false);
    assert.equal(r.break?.kind, 'checkpoint_mismatch');
    assert.equal(r.break?.seq, 6 * EVERY);
    assert.match(r.break!.message, /more than 5 stored ahead of their records/);
  });

  it('reads a chain text in any chunks into the same records and checkpoints, torn tail included', () => {
    const recs = items.flatMap((it) => ('record' in it ? [it.record] : [])).slice(0, 400);
    const cps = items
      .flatMap((it) => ('checkpoint' in it ? [it.checkpoint] : []))
      .filter((c) => c.seq <= 400);
    const text = `${chainLines(CHAIN, recs, cps, key.publicKey.jwk()).join('\n')}\n{"type":"rec`;
    const expected = parseChainText(text);
    assert.equal(expected.tornTail, true);
    for (const size of [1, 7, 100, 4096, text.length]) {
      const got = { records: [] as AuditRecord[], checkpoints: [] as AuditCheckpoint[], chain: '' };
      const parser = new ChainLineParser({
        header: (h) => (got.chain = h.chain),
        record: (r) => got.records.push(r),
        checkpoint: (c) => got.checkpoints.push(c),
      });
      const splitter = new ChainTextSplitter(parser);
      for (let i = 0; i < text.length; i += size) splitter.push(text.slice(i, i + size));
      splitter.end();
      assert.equal(parser.tornTail, true);
      assert.equal(got.chain, expected.chain);
      assert.deepEqual(got.records, expected.records);
      assert.deepEqual(got.checkpoints, expected.checkpoints);
    }
    // A malformed line in the middle names its line number, whatever the chunking.
    const bad = text.replace(recordLine(recs[10]!), '{not json');
    const parser = new ChainLineParser({ record: () => undefined, checkpoint: () => undefined });
    const splitter = new ChainTextSplitter(parser);
    assert.throws(() => {
      for (let i = 0; i < bad.length; i += 13) splitter.push(bad.slice(i, i + 13));
    }, /line 12: not JSON/);
  });
});
