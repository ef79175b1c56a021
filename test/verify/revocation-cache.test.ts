/**
 * RevocationCache: pages and increments applied as they come, a snapshot replacing the state only once complete,
 * reasons of cascaded revocations resolved from their cause, and freshness: a cache that was never synced, or
 * whose last sync is older than its bound, refuses task-session SVIDs (ERR_REVOCATION_STALE) and says so once
 * ('stale' event and a warning), unless told to accept.
 */
import assert from 'node:assert/strict';
import { ErrorCode, isLanyardError } from '../../src/errors';
import type { RevocationChange, RevocationQuery } from '../../src/verify/revocation';
import {
  RevocationCache,
  type RevocationCacheEntry,
  type RevocationStaleEvent,
} from '../../src/verify/revocation-cache';
import {
  packRevocations,
  PackedRevocationsError,
  unpackRevocations,
} from '../../src/internal/revocation-page';
import { FakeClock, T0 } from '../support/clock';

const query = (q: Partial<RevocationQuery> = {}): RevocationQuery => ({
  serialHex: 'abc',
  certSha256Hex: '00'.repeat(32),
  spiffeId: 'spiffe://example.org/a',
  delegationSessionIds: [],
  ...q,
});
/** A task session's SVID and a workload SVID (its session is the workload's own, "ws-"). */
const session = (id: string, more: Partial<RevocationQuery> = {}): RevocationQuery =>
  query({ sessionId: id, rootSessionId: id, ...more });
const workload = query({ sessionId: 'ws-1', rootSessionId: 'ws-1' });

const entry = (
  sequence: number,
  id: string,
  more: Partial<RevocationCacheEntry> = {},
): RevocationCacheEntry => ({
  sequence,
  kind: 'session',
  id,
  expiresAt: new Date(T0.getTime() + 3600_000),
  ...more,
});

const staleCode = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (e) {
    assert.ok(isLanyardError(e), String(e));
    return e.code;
  }
};

describe('RevocationCache', () => {
  let clock: FakeClock;
  let warnings: string[];
  let cache: RevocationCache;
  beforeEach(() => {
    clock = new FakeClock(T0);
    warnings = [];
    cache = new RevocationCache({
      clock: clock.read,
      checkIntervalMs: 0,
      logger: { warn: (_o, msg) => warnings.push(msg) },
    });
  });
  const at = (ms: number): Date => new Date(T0.getTime() + ms);

  it('applies pages of a snapshot as they come; the snapshot replaces the old state only once complete', () => {
    cache.apply({ entries: [entry(1, 's-old')], sequence: 1, fullState: true, synced: true });
    assert.notEqual(cache.isRevoked(session('s-old')), false);

    // A new snapshot (say the server's store was replaced) in two pages.
    cache.apply({ entries: [entry(1, 's-a')], sequence: 1, fullState: true });
    assert.notEqual(
      cache.isRevoked(session('s-old')),
      false,
      'the old state holds until the new is complete',
    );
    assert.notEqual(cache.isRevoked(session('s-a')), false, 'a page counts as soon as it arrives');
    assert.equal(cache.sequence, 1);
    cache.apply({ entries: [entry(2, 's-b')], sequence: 2, synced: true });
    assert.equal(cache.isRevoked(session('s-old')), false, 'replaced');
    assert.notEqual(cache.isRevoked(session('s-b')), false);
    assert.equal(cache.size, 2);
    assert.equal(cache.sequence, 2);
  });

  it('ignores revocations delivered twice and keeps the highest sequence for resuming', () => {
    const seen: RevocationCacheEntry[][] = [];
    cache.on('revoked', (e: RevocationCacheEntry[]) => seen.push(e));
    cache.apply({ entries: [entry(1, 's-a'), entry(2, 's-b')], sequence: 2, fullState: true, synced: true });
    cache.apply({ entries: [entry(2, 's-b'), entry(3, 's-c')], sequence: 3, synced: true });
    assert.equal(cache.size, 3);
    assert.equal(cache.sequence, 3);
    assert.deepEqual(
      seen.map((batch) => batch.map((e) => e.id)),
      [['s-a', 's-b'], ['s-c']],
    );
  });

  it('names the reason of a cascaded revocation from its cause, stored once', () => {
    cache.apply({
      entries: [entry(7, 's-root', { reason: 'task done' }), entry(8, 's-child', { causeSequence: 7 })],
      sequence: 8,
      fullState: true,
      synced: true,
    });
    assert.deepEqual(cache.isRevoked(session('s-child')), {
      kind: 'session',
      id: 's-child',
      relation: 'own',
      detail: 'task done',
    });
    // Revoked through an ancestor, too.
    assert.deepEqual(
      cache.isRevoked(session('s-grandchild', { rootSessionId: 's-x', delegationSessionIds: ['s-child'] })),
      { kind: 'session', id: 's-child', relation: 'ancestor', detail: 'task done' },
    );
    assert.deepEqual(cache.isRevoked(query({ serialHex: 'abc' })), false);
  });

  it('revokes certificates by serial, whatever the case or leading zeros', () => {
    cache.applyFullState([entry(1, '00ABC', { kind: 'certificate' })], 1);
    assert.deepEqual(cache.isRevoked(workload), { kind: 'certificate', id: 'abc' });
  });

  it('drops entries once what they name has expired', () => {
    cache.applyFullState([entry(1, 's-a', { expiresAt: at(1000) }), entry(2, 's-b')], 2, clock.now);
    clock.set(at(120_000));
    cache.applyIncrement([], 2);
    assert.equal(cache.size, 1);
    assert.equal(cache.isRevoked(session('s-a')), false);
  });

  it('never synced: refuses a task-session SVID with ERR_REVOCATION_STALE, accepts a workload SVID', () => {
    assert.equal(
      staleCode(() => cache.isRevoked(session('s-1'))),
      ErrorCode.REVOCATION_STALE,
    );
    assert.equal(
      staleCode(() => cache.isRevoked(query({ sessionId: 'ws-2', delegationSessionIds: ['s-1'] }))),
      ErrorCode.REVOCATION_STALE,
      'delegated from a session: a task session too',
    );
    assert.equal(cache.isRevoked(workload), false);
    // Pages of the initial state do not make it fresh; the last one does.
    cache.apply({ entries: [entry(1, 's-x')], sequence: 1, fullState: true });
    assert.equal(
      staleCode(() => cache.isRevoked(session('s-1'))),
      ErrorCode.REVOCATION_STALE,
    );
    cache.apply({ entries: [], sequence: 1, synced: true });
    assert.equal(cache.isRevoked(session('s-1')), false);
  });

  it('turns stale past its bound with the feed stopped: refuses, emits "stale" once and warns; a heartbeat heals it', () => {
    const stale: RevocationStaleEvent[] = [];
    const synced: unknown[] = [];
    cache.on('stale', (e: RevocationStaleEvent) => stale.push(e));
    cache.on('synced', (e: unknown) => synced.push(e));
    cache.applyFullState([entry(1, 's-ended')], 1);
    assert.equal(synced.length, 1);
    clock.set(at(60_000));
    assert.equal(cache.isRevoked(session('s-live')), false, 'at the bound: still fresh');
    assert.equal(stale.length, 0);

    clock.set(at(60_001));
    assert.equal(
      staleCode(() => cache.isRevoked(session('s-live'))),
      ErrorCode.REVOCATION_STALE,
    );
    assert.equal(
      staleCode(() => cache.isRevoked(session('s-live'))),
      ErrorCode.REVOCATION_STALE,
    );
    assert.equal(stale.length, 1, 'one event per stale period');
    assert.deepEqual(stale[0], { lastSyncAt: T0, staleAfterMs: 60_000, onStale: 'refuse' });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /stale/);
    // What it knows is still revoked (the more useful answer), and workloads still verify.
    assert.notEqual(cache.isRevoked(session('s-ended')), false);
    assert.equal(cache.isRevoked(workload), false);

    // A heartbeat (an empty synced message) makes it fresh again.
    cache.apply({ entries: [], sequence: 1, synced: true });
    assert.equal(cache.isRevoked(session('s-live')), false);
    assert.deepEqual(synced[1], { sequence: 1, recovered: true });
    assert.equal(cache.lastSyncAt?.getTime(), at(60_001).getTime());
  });

  it('checks by itself, on its timer, and tells the hop helpers to re-check open connections', async () => {
    const timed = new RevocationCache({ clock: clock.read, staleAfterMs: 1000, checkIntervalMs: 10 });
    try {
      const changes: RevocationChange[] = [];
      timed.onRevocationChange((c) => changes.push(c));
      timed.applyFullState([], 0);
      const event = new Promise<RevocationStaleEvent>((r) => timed.once('stale', r));
      clock.set(at(5000));
      assert.equal((await event).staleAfterMs, 1000);
      assert.deepEqual(changes, [{ recheckAll: true }]);
    } finally {
      timed.close();
    }
  });

  it('onStale "accept": answers from the last state when stale, still emits the event', () => {
    const lenient = new RevocationCache({ clock: clock.read, checkIntervalMs: 0, onStale: 'accept' });
    let events = 0;
    lenient.on('stale', () => (events += 1));
    assert.equal(lenient.isRevoked(session('s-1')), false);
    lenient.applyFullState([entry(1, 's-ended')], 1);
    clock.set(at(3600_000));
    assert.equal(lenient.isRevoked(session('s-1')), false);
    assert.notEqual(lenient.isRevoked(session('s-ended')), false);
    assert.equal(lenient.checkStaleness(), true);
    assert.ok(events >= 1);
  });

  it('notifies revocations to onRevocationChange listeners after applying them', () => {
    const changes: RevocationChange[] = [];
    const stop = cache.onRevocationChange((c) => {
      // The cache already answers with the change when a listener runs.
      assert.notEqual(cache.isRevoked(session('s-a')), false);
      changes.push(c);
    });
    cache.applyFullState([entry(1, 's-a'), entry(2, 'ABC', { kind: 'certificate' })], 2);
    stop();
    cache.applyIncrement([entry(3, 's-b')], 3);
    assert.deepEqual(changes, [
      {
        revoked: [
          { kind: 'session', id: 's-a' },
          { kind: 'certificate', id: 'ABC' },
        ],
      },
    ]);
  });

  it('a packed page applies as its entries do, straight into the state, and notifies the same', () => {
    const exp = T0.getTime() + 3600_000;
    const rows = [
      { sequence: 4, kind: 'session', id: 's-root', reason: 'task done', revokedAt: T0, expiresAt: exp },
      {
        sequence: 5,
        kind: 'session',
        id: 's-child',
        reason: '',
        revokedAt: T0,
        expiresAt: exp,
        causeSequence: 4,
      },
      { sequence: 9, kind: 'certificate', id: 'def', reason: '', revokedAt: T0, expiresAt: exp },
    ];
    const reference = new RevocationCache({ clock: clock.read, checkIntervalMs: 0 });
    const packedSeen: RevocationCacheEntry[][] = [];
    const plainSeen: RevocationCacheEntry[][] = [];
    cache.on('revoked', (e: RevocationCacheEntry[]) => packedSeen.push(e));
    reference.on('revoked', (e: RevocationCacheEntry[]) => plainSeen.push(e));
    const page = packRevocations(rows);
    cache.applyPacked(page, { sequence: 9, fullState: true, synced: true });
    reference.apply({
      entries: unpackRevocations(page).map((r) => ({
        sequence: r.sequence,
        kind: r.kind,
        id: r.id,
        expiresAt: new Date(r.expiresAtMs),
        ...(r.reason !== '' && { reason: r.reason }),
        ...(r.causeSequence > 0 && { causeSequence: r.causeSequence }),
      })),
      sequence: 9,
      fullState: true,
      synced: true,
    });
    assert.deepEqual(packedSeen, plainSeen);
    for (const c of [cache, reference]) {
      assert.equal(c.sequence, 9);
      assert.equal(c.size, 3);
      assert.deepEqual(c.isRevoked(session('s-child', { serialHex: '1' })), {
        kind: 'session',
        id: 's-child',
        relation: 'own',
        detail: 'task done',
      });
      assert.deepEqual(c.isRevoked(query({ serialHex: '0DEF' })), { kind: 'certificate', id: 'def' });
    }
    reference.close();
  });

  it('a packed page that cannot be read whole applies nothing', () => {
    const exp = T0.getTime() + 3600_000;
    cache.apply({ entries: [entry(1, 's-a')], sequence: 1, fullState: true, synced: true });
    const page = packRevocations([
      { sequence: 2, kind: 'session', id: 's-b', reason: '', revokedAt: T0, expiresAt: exp },
      { sequence: 3, kind: 'certificate', id: 'abc', reason: '', revokedAt: T0, expiresAt: exp },
    ]);
    // Cut inside the second entry: the first one reads, but must not be applied either.
    assert.throws(
      () => cache.applyPacked(page.subarray(0, page.length - 2), { sequence: 3, synced: true }),
      PackedRevocationsError,
    );
    assert.equal(cache.sequence, 1);
    assert.equal(cache.isRevoked(session('s-b')), false);
    assert.equal(cache.isRevoked(workload), false);
  });
});
