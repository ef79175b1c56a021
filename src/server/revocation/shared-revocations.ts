import type { Logger } from '../../internal/logging';
import type { Store } from '../../store/store';
import type { RevocationRecord } from '../../store/types';
import type { RevocationFeed } from '../sessions/revocation-feed';

/**
 * On a store several servers share, hands the revocations other servers record to this server's feed, so its
 * WatchRevocations streams and CRLs follow within the notification's delay (LISTEN/NOTIFY: at commit), as they
 * follow this server's own EndSession and RevokeSvid. After a lost notification connection it re-reads everything
 * after the last sequence it saw. Returns the unsubscribe function; a no-op on a store of one server.
 */
export function relaySharedRevocations(store: Store, feed: RevocationFeed, logger: Logger): () => void {
  const changes = store.changes;
  if (changes === undefined) return () => undefined;
  let lastSeen = 0;
  // The first read (the catch-up once the listener is listening) starts from the state at start, not from 0.
  let reading: Promise<void> = store
    .lastRevocationSequence()
    .then((s) => void (lastSeen = Math.max(lastSeen, s)))
    .catch(() => undefined);
  const stopFeed = feed.subscribe((records) => {
    lastSeen = Math.max(lastSeen, records[records.length - 1]?.sequence ?? 0);
  });
  const read = async (sequences: number[]): Promise<void> => {
    let records: RevocationRecord[];
    if (sequences.length === 0) {
      records = await store.listRevocations(lastSeen);
    } else {
      const wanted = new Set(sequences);
      const min = Math.min(...sequences);
      const max = Math.max(...sequences);
      records = (await store.listRevocations(min - 1, max - min + 1)).filter((r) => wanted.has(r.sequence));
    }
    feed.publish(records, 'shared');
  };
  const stopChanges = changes.onRevoked((sequences) => {
    // One read at a time, in arrival order, so the feed sees sequences in order.
    reading = reading
      .then(() => read(sequences))
      .catch((e: unknown) =>
        logger.warn({ err: e }, 'could not read revocations recorded by another server'),
      );
  });
  return () => {
    stopChanges();
    stopFeed();
  };
}
