/**
 * A RevocationChecker kept current by a revocation feed (the server's WatchRevocations stream, see
 * src/client/revocation-watch.ts). It answers synchronously from memory, as the verifier requires; the feed
 * applies the full state once, then increments by sequence, and the cache remembers the last sequence so a
 * reconnecting watcher resumes where it stopped. Entries are forgotten once what they name has expired.
 */
import { RevocationChecker, RevocationQuery, RevocationReason, StaticRevocationList } from './revocation';

export interface RevocationCacheEntry {
  sequence: number;
  kind: 'certificate' | 'session';
  /** Serial (hex) or session id. */
  id: string;
  reason?: string;
  /** After this, the entry can be dropped. */
  expiresAt?: Date;
}

export class RevocationCache implements RevocationChecker {
  private entries = new Map<string, RevocationCacheEntry>();
  private list = new StaticRevocationList();
  private sequence_ = 0;
  private listeners = new Set<(entries: readonly RevocationCacheEntry[]) => void>();

  /** The highest sequence applied: where a reconnecting feed resumes. */
  get sequence(): number {
    return this.sequence_;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Replaces everything with the feed's full state. */
  applyFullState(entries: readonly RevocationCacheEntry[], sequence: number, now = new Date()): void {
    this.entries.clear();
    this.sequence_ = 0;
    this.applyIncrement(entries, sequence, now);
  }

  /** Adds newer revocations; sequences at or below the current one are ignored (at-least-once delivery). */
  applyIncrement(entries: readonly RevocationCacheEntry[], sequence: number, now = new Date()): void {
    const fresh = entries.filter((e) => e.sequence > this.sequence_ || !this.entries.has(key(e)));
    for (const e of fresh) this.entries.set(key(e), { ...e });
    this.sequence_ = Math.max(this.sequence_, sequence, ...entries.map((e) => e.sequence));
    this.rebuild(now);
    if (fresh.length > 0) for (const l of this.listeners) l(fresh);
  }

  /** Called with the entries of each change; for tests and logs. Returns an unsubscribe. */
  onChange(listener: (entries: readonly RevocationCacheEntry[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  isRevoked(q: RevocationQuery): false | RevocationReason {
    return this.list.isRevoked(q);
  }

  private rebuild(now: Date): void {
    const list = new StaticRevocationList();
    for (const [k, e] of this.entries) {
      if (e.expiresAt !== undefined && e.expiresAt.getTime() < now.getTime()) {
        this.entries.delete(k);
        continue;
      }
      if (e.kind === 'certificate') list.revokeSerial(e.id);
      else list.revokeSession(e.id, e.reason);
    }
    // Swapped whole, so a verification running between two feed messages sees one consistent state.
    this.list = list;
  }
}

function key(e: RevocationCacheEntry): string {
  return `${e.kind}:${e.id}`;
}
