/**
 * Revocation reaching connections that are already open. A hop helper verifies a peer when a connection or
 * call starts; a raw TLS connection or a gRPC stream then runs on that one check. Every helper therefore
 * registers what it accepted here, by the peer's serial and sessions (its own, its root, and every parent
 * session of its delegation chain), and the checker (a RevocationCache fed by the server, or a
 * StaticRevocationList) says when something is revoked: each affected connection or stream is closed at once,
 * in the same turn of the event loop that applied the revocation, so within the feed's propagation bound.
 * When the checker turns stale and refuses session SVIDs (RevocationCache onStale 'refuse'), every open
 * session connection is re-checked and closed the same way.
 *
 * A checker that cannot notify (a custom RevocationChecker without onRevocationChange) leaves open connections
 * as they are; the HTTP helpers still re-check it on every request.
 */
import { InternalError, isLanyardError, LanyardError, RevokedError } from '../errors';
import {
  describeRevocation,
  isRevocationNotifier,
  type RevocationChange,
  type RevocationChecker,
  type RevocationNotifier,
  type RevocationQuery,
} from '../verify/revocation';
import { revocationQueryOf } from '../verify/verify-x509-svid';
import { type HopPeer, type HopRequestInfo, type HopVerifyOptions, reportClosedPeer } from './peer';

interface Tracked {
  readonly query: RevocationQuery;
  readonly keys: readonly string[];
  readonly peer: HopPeer;
  readonly close: (reason: LanyardError) => void;
  readonly options: HopVerifyOptions;
  readonly request: HopRequestInfo;
}

/** What one checker's listeners watch: every open connection or stream accepted under it. */
class LivePeers {
  private readonly byKey = new Map<string, Set<Tracked>>();
  private readonly all = new Set<Tracked>();
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly checker: RevocationChecker & RevocationNotifier) {}

  get size(): number {
    return this.all.size;
  }

  add(t: Tracked): () => void {
    this.all.add(t);
    for (const k of t.keys) {
      let set = this.byKey.get(k);
      if (set === undefined) this.byKey.set(k, (set = new Set()));
      set.add(t);
    }
    this.unsubscribe ??= this.checker.onRevocationChange((c) => this.changed(c));
    return () => this.remove(t);
  }

  private remove(t: Tracked): void {
    if (!this.all.delete(t)) return;
    for (const k of t.keys) {
      const set = this.byKey.get(k);
      set?.delete(t);
      if (set?.size === 0) this.byKey.delete(k);
    }
    // Nothing open: stop listening, so a long-lived checker does not keep this registry busy.
    if (this.all.size === 0 && this.unsubscribe !== undefined) {
      this.unsubscribe();
      this.unsubscribe = undefined;
    }
  }

  private changed(change: RevocationChange): void {
    const candidates = new Set<Tracked>();
    if ('recheckAll' in change) {
      for (const t of this.all) candidates.add(t);
    } else {
      for (const target of change.revoked) {
        const key = target.kind === 'certificate' ? serialKey(target.id) : `session:${target.id}`;
        for (const t of this.byKey.get(key) ?? []) candidates.add(t);
      }
    }
    for (const t of candidates) {
      const reason = this.refusal(t);
      if (reason === undefined) continue;
      this.remove(t);
      reportClosedPeer(t.options, t.request, t.peer, reason);
      try {
        t.close(reason);
      } catch (e) {
        // One connection failing to close must not keep the others open.
        t.options.logger?.warn({ err: e instanceof Error ? e.message : String(e) }, 'hop: closing failed');
      }
    }
  }

  /** The checker's answer for the peer now, as the error the connection is closed with; undefined = still ok. */
  private refusal(t: Tracked): LanyardError | undefined {
    try {
      const answer = this.checker.isRevoked(t.query);
      if (answer === false) return undefined;
      return new RevokedError(`X509-SVID ${t.peer.spiffeId}: ${describeRevocation(answer)}`);
    } catch (e) {
      return isLanyardError(e) ? e : new InternalError(`revocation check failed: ${String(e)}`, { cause: e });
    }
  }
}

const registries = new WeakMap<object, LivePeers>();

/** What trackLivePeer returns when nothing can notify: there is nothing to untrack, so no 'close' listener. */
export const NOT_TRACKED = (): void => undefined;

/**
 * Registers an accepted connection or stream: `close` runs (once) when the peer's SVID is revoked later.
 * Returns the function to call when the connection or stream ends by itself. A no-op without a notifying
 * checker in `options.revocation`.
 */
export function trackLivePeer(
  options: HopVerifyOptions,
  request: HopRequestInfo,
  peer: HopPeer,
  close: (reason: LanyardError) => void,
): () => void {
  const checker = options.revocation;
  if (checker === undefined || !isRevocationNotifier(checker)) return NOT_TRACKED;
  let registry = registries.get(checker);
  if (registry === undefined) registries.set(checker, (registry = new LivePeers(checker)));
  const query = revocationQueryOf(peer);
  const keys = [
    serialKey(query.serialHex),
    ...[query.sessionId, query.rootSessionId, ...query.delegationSessionIds]
      .filter((s): s is string => s !== undefined)
      .map((s) => `session:${s}`),
  ];
  let done = false;
  const untrack = registry.add({
    query,
    keys: [...new Set(keys)],
    peer,
    options,
    request,
    close: (reason) => {
      if (done) return;
      done = true;
      close(reason);
    },
  });
  return () => {
    done = true;
    untrack();
  };
}

/** How many connections and streams are tracked under `checker` (for tests and diagnostics). */
export function liveConnectionCount(checker: RevocationChecker): number {
  return registries.get(checker)?.size ?? 0;
}

function serialKey(hex: string): string {
  const s = hex.toLowerCase().replace(/[:\s]/g, '').replace(/^0+/, '');
  return `certificate:${s === '' ? '0' : s}`;
}
