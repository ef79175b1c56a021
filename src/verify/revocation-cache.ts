/**
 * A RevocationChecker kept current by a revocation feed (the server's WatchRevocations stream, see
 * src/client/revocation-watch.ts). It answers synchronously from memory, as the verifier requires.
 *
 * Updates are applied as they come, each in time proportional to its own size: the initial state arrives in
 * pages, then increments by sequence; the cache remembers the last sequence so a reconnecting watcher resumes
 * where it stopped. A snapshot (the pages from one with `fullState` to the one with `synced`) is collected
 * apart and replaces the previous state once complete; meanwhile both are consulted (revocations only
 * accumulate, so their union is never less revoked than either). Entries are dropped once what they name has
 * expired.
 *
 * Freshness: the cache is synced once a complete state arrived, and counts as fresh until `staleAfterMs` after
 * the last message that confirmed it (a heartbeat does). Past that the feed is down or blocked and an ended
 * session looks like a live one, so by default (`onStale: 'refuse'`) a task-session SVID is refused with
 * ERR_REVOCATION_STALE until the feed is back; `onStale: 'accept'` keeps answering from the last state instead
 * (availability over revocation: an ended session then works until its SVID expires). Never synced counts as
 * stale. The cache emits 'stale' (and logs a warning) when it turns stale, 'synced' when a complete state
 * arrives (again), and 'revoked' with every batch of new revocations.
 */
import { EventEmitter } from 'node:events';
import { RevocationStaleError } from '../errors';
import { columnId, unpackRevocationColumns } from '../internal/revocation-page';
import { RevokedSerials } from './revoked-serials';
import {
  isTaskSessionQuery,
  type RevocationChangeListener,
  type RevocationChecker,
  type RevocationNotifier,
  type RevocationQuery,
  type RevocationReason,
  normaliseSerial,
} from './revocation';

export interface RevocationCacheEntry {
  sequence: number;
  kind: 'certificate' | 'session';
  /** Serial (hex) or session id. */
  id: string;
  reason?: string;
  /** After this, the entry can be dropped. */
  expiresAt?: Date;
  /** A session ended by a cascade: the revocation whose reason applies. */
  causeSequence?: number;
}

/** One message of the feed. */
export interface RevocationUpdate {
  entries: readonly RevocationCacheEntry[];
  /** The highest sequence the feed says the cache now holds. */
  sequence: number;
  /** The first page of a snapshot: this and the following pages replace the state once `synced`. */
  fullState?: boolean;
  /** The cache now holds the complete state (the last page of the initial state, or any later message). */
  synced?: boolean;
}

export type StalePolicy = 'refuse' | 'accept';

export const REVOCATION_CACHE_DEFAULTS = Object.freeze({
  staleAfterMs: 60_000,
  onStale: 'refuse' as StalePolicy,
});

export interface RevocationCacheOptions {
  /** How long after the last sync the state still counts as fresh. Default 60 s. */
  staleAfterMs?: number;
  /** What a stale cache answers for a task-session SVID it holds no revocation for. Default 'refuse'. */
  onStale?: StalePolicy;
  /** Default: the system clock. */
  clock?: () => Date;
  /** Receives the warning when the cache turns stale and the notice when it is synced again. */
  logger?: { warn(obj: object, msg: string): void; debug?(obj: object, msg: string): void };
  /**
   * How often the cache checks by itself whether it turned stale (to emit 'stale' while nobody asks).
   * Default a quarter of staleAfterMs, at most 5 s; 0: only when asked (isRevoked, checkStaleness).
   */
  checkIntervalMs?: number;
}

/** What 'stale' reports. */
export interface RevocationStaleEvent {
  /** The last sync, or undefined when the cache never had a complete state. */
  lastSyncAt?: Date;
  staleAfterMs: number;
  onStale: StalePolicy;
}

interface Entry {
  sequence: number;
  expiresAt: number;
  reason?: string;
  causeSequence?: number;
}

type Listener = (entries: readonly RevocationCacheEntry[]) => void;

/** Serials and session ids apart: a lookup asks the one its query names. */
interface State {
  /** Serials with their expiry: a certificate's lookup names only the serial, so nothing else is kept. */
  certificates: RevokedSerials;
  sessions: Map<string, Entry>;
}

const emptyState = (): State => ({ certificates: new RevokedSerials(), sessions: new Map() });

export class RevocationCache extends EventEmitter implements RevocationChecker, RevocationNotifier {
  private live: State = emptyState();
  /** The snapshot being received, until its last page. */
  private staging: State | undefined;
  /** Reasons of session revocations by sequence, for cascaded entries that name their cause (a session). */
  private reasons = new Map<number, string>();
  private sequence_ = 0;
  private lastSync: number | undefined;
  private staleReported = false;
  private nextSweep = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly changeListeners = new Set<RevocationChangeListener>();
  readonly staleAfterMs: number;
  readonly onStale: StalePolicy;
  private readonly clock: () => Date;

  constructor(private readonly options: RevocationCacheOptions = {}) {
    super();
    this.staleAfterMs = options.staleAfterMs ?? REVOCATION_CACHE_DEFAULTS.staleAfterMs;
    this.onStale = options.onStale ?? REVOCATION_CACHE_DEFAULTS.onStale;
    this.clock = options.clock ?? (() => new Date());
    const every = options.checkIntervalMs ?? Math.min(5000, Math.max(100, this.staleAfterMs / 4));
    if (every > 0) {
      this.timer = setInterval(() => this.checkStaleness(), every);
      this.timer.unref();
    }
  }

  /** The highest sequence applied: where a reconnecting feed resumes. */
  get sequence(): number {
    return this.sequence_;
  }

  /** Revocations held (a snapshot being received counts once it is complete). */
  get size(): number {
    return this.live.certificates.size + this.live.sessions.size;
  }

  /** When a complete state was last confirmed; undefined before the first. */
  get lastSyncAt(): Date | undefined {
    return this.lastSync === undefined ? undefined : new Date(this.lastSync);
  }

  /** Whether the state is older than the staleness bound (or was never complete) at `now`. */
  isStale(now: Date = this.clock()): boolean {
    return this.lastSync === undefined || now.getTime() - this.lastSync > this.staleAfterMs;
  }

  /** Applies one message of the feed; see RevocationUpdate. */
  apply(update: RevocationUpdate, now: Date = this.clock()): void {
    const target = this.begin(update);
    const fresh: RevocationCacheEntry[] = [];
    let sequence = Math.max(this.sequence_, update.sequence);
    for (const e of update.entries) {
      if (e.sequence > sequence) sequence = e.sequence;
      const expiresAt = e.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY;
      const added =
        e.kind !== 'session'
          ? this.addCertificate(target, normaliseSerial(e.id), expiresAt)
          : this.addSession(target, e.id, e.sequence, expiresAt, e.reason, e.causeSequence ?? 0);
      if (added) fresh.push(e);
    }
    this.finish(update, sequence, fresh, now);
  }

  /**
   * Applies one message whose revocations are a packed page (src/internal/revocation-page.ts), decoded straight
   * into the state: no object per revocation unless someone listens for changes. The page is read whole before
   * anything is applied.
   * @throws PackedRevocationsError for a page that cannot be read whole (nothing is applied).
   */
  applyPacked(page: Uint8Array, update: Omit<RevocationUpdate, 'entries'>, now: Date = this.clock()): void {
    const c = unpackRevocationColumns(page);
    const target = this.begin(update);
    const listening = this.listenerCount('revoked') > 0 || this.changeListeners.size > 0;
    const fresh: RevocationCacheEntry[] = [];
    let sequence = Math.max(this.sequence_, update.sequence);
    for (let i = 0; i < c.count; i++) {
      const seq = c.sequences[i]!;
      if (seq > sequence) sequence = seq;
      const session = c.sessions[i] === 1;
      const r = c.reasons[i]!;
      const reason = r >= 0 ? c.reasonTable[r] : undefined;
      const cause = c.causeSequences[i]!;
      const expiresAt = c.expiresAtMs[i]!;
      const at = c.idOffsets[i]!;
      let added: boolean;
      if (at >= 0 && !session) {
        // A serial straight from the page's bytes: no string per serial.
        added = this.addCertificateBytes(target, c.page, at, (c.idDigits[i]! + 1) >> 1, expiresAt);
      } else {
        const id = columnId(c, i);
        added = session
          ? this.addSession(target, id, seq, expiresAt, reason, cause)
          : this.addCertificate(target, normaliseSerial(id), expiresAt);
      }
      if (added && listening) {
        const e: RevocationCacheEntry = {
          sequence: seq,
          kind: session ? 'session' : 'certificate',
          id: columnId(c, i),
          expiresAt: new Date(expiresAt),
        };
        if (reason !== undefined && reason !== '') e.reason = reason;
        if (cause > 0) e.causeSequence = cause;
        fresh.push(e);
      }
    }
    this.finish(update, sequence, fresh, now);
  }

  /** Starts a message: a snapshot's first page starts a new staging state. Returns where entries go. */
  private begin(update: { fullState?: boolean }): State {
    if (update.fullState === true) {
      this.staging = emptyState();
      this.sequence_ = 0;
    }
    return this.staging ?? this.live;
  }

  /** Whether the serial is new to what a lookup consults (so listeners hear of it). */
  private addCertificate(target: State, serial: string, expiresAt: number): boolean {
    // Delivered twice (at-least-once after a reconnect): already held.
    if (!target.certificates.add(serial, expiresAt)) return false;
    return target === this.live || this.live.certificates.size === 0 || !this.live.certificates.has(serial);
  }

  /** addCertificate for a serial given as its bytes (RevokedSerials.addBytes). */
  private addCertificateBytes(
    target: State,
    bytes: Uint8Array,
    offset: number,
    length: number,
    expiresAt: number,
  ): boolean {
    if (!target.certificates.addBytes(bytes, offset, length, expiresAt)) return false;
    return (
      target === this.live ||
      this.live.certificates.size === 0 ||
      !this.live.certificates.hasBytes(bytes, offset, length)
    );
  }

  private addSession(
    target: State,
    id: string,
    sequence: number,
    expiresAt: number,
    reasonText: string | undefined,
    causeSequence: number,
  ): boolean {
    const map = target.sessions;
    if (map.has(id)) return false;
    const known = target !== this.live && this.live.sessions.has(id);
    const reason = reasonText !== undefined && reasonText !== '' ? reasonText : undefined;
    const entry: Entry = { sequence, expiresAt };
    if (reason !== undefined) entry.reason = reason;
    if (causeSequence > 0) entry.causeSequence = causeSequence;
    map.set(id, entry);
    if (reason !== undefined) this.reasons.set(sequence, reason);
    return !known;
  }

  /** Ends a message: its sequence, a completed snapshot replacing the state, the sweep and the notices. */
  private finish(
    update: { synced?: boolean },
    sequence: number,
    fresh: readonly RevocationCacheEntry[],
    now: Date,
  ): void {
    this.sequence_ = sequence;
    if (update.synced === true) {
      if (this.staging !== undefined) {
        this.live = this.staging;
        this.staging = undefined;
        // What the replaced state alone held goes with it.
        this.reasons = new Map();
        for (const e of this.live.sessions.values())
          if (e.reason !== undefined) this.reasons.set(e.sequence, e.reason);
      }
      this.markSynced(now);
    }
    this.sweep(now);
    if (fresh.length > 0) this.notifyRevoked(fresh);
  }

  /** Replaces everything with a complete state delivered at once. */
  applyFullState(entries: readonly RevocationCacheEntry[], sequence: number, now?: Date): void {
    this.apply({ entries, sequence, fullState: true, synced: true }, now);
  }

  /** Adds newer revocations of a synced feed; sequences already held are ignored (at-least-once delivery). */
  applyIncrement(entries: readonly RevocationCacheEntry[], sequence: number, now?: Date): void {
    this.apply({ entries, sequence, synced: this.lastSync !== undefined }, now);
  }

  /** Called with the entries of each change; for tests and logs. Returns an unsubscribe. */
  onChange(listener: Listener): () => void {
    this.on('revoked', listener);
    return () => this.off('revoked', listener);
  }

  /** RevocationNotifier: what the hop helpers use to close connections of what was revoked. */
  onRevocationChange(listener: RevocationChangeListener): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Emits 'stale' once when the state turned stale; returns whether it is stale now. */
  checkStaleness(now: Date = this.clock()): boolean {
    const stale = this.isStale(now);
    if (stale && !this.staleReported) {
      this.staleReported = true;
      const event: RevocationStaleEvent = {
        ...(this.lastSync !== undefined ? { lastSyncAt: new Date(this.lastSync) } : {}),
        staleAfterMs: this.staleAfterMs,
        onStale: this.onStale,
      };
      // Only a cache that was synced once is worth an alert: one that never was is still starting.
      if (this.lastSync !== undefined) {
        this.options.logger?.warn(
          {
            lastSyncAt: event.lastSyncAt?.toISOString(),
            staleAfterMs: this.staleAfterMs,
            onStale: this.onStale,
          },
          this.onStale === 'refuse'
            ? 'revocation state is stale: the feed is down or blocked; session SVIDs are refused (ERR_REVOCATION_STALE)'
            : 'revocation state is stale: the feed is down or blocked; session SVIDs are still accepted (onStale: accept)',
        );
      }
      this.emit('stale', event);
      if (this.onStale === 'refuse') for (const l of this.changeListeners) l({ recheckAll: true });
    }
    return stale;
  }

  isRevoked(q: RevocationQuery): false | RevocationReason {
    const found = this.lookup(q);
    if (found !== false) return found;
    if (this.onStale === 'refuse' && isTaskSessionQuery(q) && this.checkStaleness()) {
      throw new RevocationStaleError(
        this.lastSync === undefined
          ? `revocation state not received yet: cannot tell whether session ${q.sessionId ?? ''} has ended`
          : `revocation state is stale (last synced ${new Date(this.lastSync).toISOString()}, bound ` +
              `${this.staleAfterMs / 1000}s): cannot tell whether session ${q.sessionId ?? ''} has ended`,
      );
    }
    return false;
  }

  /** Stops the staleness timer (the cache keeps answering). */
  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private lookup(q: RevocationQuery): false | RevocationReason {
    const serial = normaliseSerial(q.serialHex);
    if (this.live.certificates.has(serial) || this.staging?.certificates.has(serial) === true) {
      return { kind: 'certificate', id: serial };
    }
    // No arrays built: this runs on every verification, memo hits included.
    if (q.sessionId !== undefined) {
      const e = this.session(q.sessionId);
      if (e !== undefined) return this.ended(q.sessionId, 'own', e);
    }
    if (q.rootSessionId !== undefined) {
      const e = this.session(q.rootSessionId);
      if (e !== undefined) return this.ended(q.rootSessionId, 'root', e);
    }
    for (const id of q.delegationSessionIds) {
      const e = this.session(id);
      if (e !== undefined) return this.ended(id, 'ancestor', e);
    }
    return false;
  }

  private ended(id: string, relation: RevocationReason['relation'], e: Entry): RevocationReason {
    const detail =
      e.reason ?? (e.causeSequence !== undefined ? this.reasons.get(e.causeSequence) : undefined);
    return { kind: 'session', id, relation, ...(detail !== undefined ? { detail } : {}) };
  }

  private session(id: string): Entry | undefined {
    return this.live.sessions.get(id) ?? this.staging?.sessions.get(id);
  }

  private markSynced(now: Date): void {
    const first = this.lastSync === undefined;
    const recovered = this.staleReported;
    this.lastSync = now.getTime();
    this.staleReported = false;
    if (recovered && !first) {
      this.options.logger?.warn({ sequence: this.sequence_ }, 'revocation state is fresh again');
    }
    if (first || recovered) this.emit('synced', { sequence: this.sequence_, recovered: recovered && !first });
  }

  private notifyRevoked(fresh: readonly RevocationCacheEntry[]): void {
    this.emit('revoked', fresh);
    const targets = fresh.map((e) => ({ kind: e.kind, id: e.id }));
    for (const l of this.changeListeners) l({ revoked: targets });
  }

  /** Drops expired entries, at most once a minute (a pass over the state). */
  private sweep(now: Date): void {
    const t = now.getTime();
    if (t < this.nextSweep) return;
    this.nextSweep = t + 60_000;
    // A cause is an ancestor session, which expires no earlier than the sessions it cascaded to: its reason
    // can go with it.
    for (const state of [this.live, this.staging]) {
      if (state === undefined) continue;
      state.certificates.sweep(t);
      for (const [k, e] of state.sessions) {
        if (e.expiresAt >= t) continue;
        state.sessions.delete(k);
        if (e.reason !== undefined) this.reasons.delete(e.sequence);
      }
    }
  }
}
