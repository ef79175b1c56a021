/**
 * In-process fan-out of committed revocations to WatchRevocations streams. Writers publish only after their
 * transaction committed; a watcher subscribes before it reads the stored state, so nothing committed in
 * between is missed (it may arrive twice; watchers drop sequences they already sent).
 */
import type { RevocationRecord } from '../../store/types';

/** Where a published revocation was committed: by this server, or by another on a shared store (relayed). */
export type RevocationOrigin = 'local' | 'shared';

type Listener = (records: readonly RevocationRecord[], origin: RevocationOrigin) => void;

export class RevocationFeed {
  private readonly listeners = new Set<Listener>();

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(records: readonly RevocationRecord[], origin: RevocationOrigin = 'local'): void {
    if (records.length === 0) return;
    for (const l of this.listeners) l(records, origin);
  }
}
