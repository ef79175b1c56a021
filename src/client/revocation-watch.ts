/**
 * Feeds a RevocationCache from the server's WatchRevocations stream: the state in pages, then increments and
 * heartbeats; after a broken stream it reconnects (exponential back-off with jitter) and resumes from the
 * cache's sequence, so nothing committed in between is missed and nothing already held is sent again. The
 * cache tracks when it was last confirmed complete and turns stale on its own when the stream stays down.
 */
import type * as grpc from '@grpc/grpc-js';
import type { SessionServiceClient, WatchRevocationsResponse } from '../gen/lanyard/v1/session';
import { PackedRevocationsError, unpackRevocations } from '../internal/revocation-page';
import type { RevocationCache, RevocationCacheEntry } from '../verify/revocation-cache';

export interface RevocationWatchOptions {
  /** First delay before reconnecting after the stream broke. Default 1000 ms. */
  retryMs?: number;
  /** Cap on the reconnect delay. Default 30 s. */
  maxRetryMs?: number;
  onError?: (e: grpc.ServiceError) => void;
  /** Each broken stream is logged at warn with its attempt count (the cache logs when it turns stale). */
  logger?: { warn(obj: object, msg: string): void };
}

export interface RevocationWatchHandle {
  /** Resolves once the cache holds the complete state (the first message with `synced`). */
  ready: Promise<void>;
  close(): void;
}

/** The revocations of one message: packed (servers that know the field) or as messages (older ones). */
export function entriesOf(m: WatchRevocationsResponse): RevocationCacheEntry[] {
  const entries = m.revocations.map((r): RevocationCacheEntry => ({
    sequence: r.sequence,
    kind: r.kind === 'session' ? 'session' : 'certificate',
    id: r.id,
    ...(r.reason !== '' ? { reason: r.reason } : {}),
    ...(r.expiresAt !== undefined ? { expiresAt: r.expiresAt } : {}),
    ...(r.causeSequence > 0 ? { causeSequence: r.causeSequence } : {}),
  }));
  if (m.packedRevocations.length === 0) return entries;
  for (const r of unpackRevocations(m.packedRevocations)) {
    const e: RevocationCacheEntry = {
      sequence: r.sequence,
      kind: r.kind,
      id: r.id,
      expiresAt: new Date(r.expiresAtMs),
    };
    if (r.reason !== '') e.reason = r.reason;
    if (r.causeSequence > 0) e.causeSequence = r.causeSequence;
    entries.push(e);
  }
  return entries;
}

export function watchRevocationsInto(
  /** The client, or a function giving the one to use for each (re)connection (failover between servers). */
  client: SessionServiceClient | (() => SessionServiceClient),
  cache: RevocationCache,
  options: RevocationWatchOptions = {},
): RevocationWatchHandle {
  let closed = false;
  let failures = 0;
  let current: grpc.ClientReadableStream<WatchRevocationsResponse> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  const initial = options.retryMs ?? 1000;
  const max = Math.max(initial, options.maxRetryMs ?? 30_000);

  const connect = (): void => {
    if (closed) return;
    const c = typeof client === 'function' ? client() : client;
    const call = c.watchRevocations({ afterSequence: cache.sequence, packed: true });
    current = call;
    call.on('data', (m: WatchRevocationsResponse) => {
      const update = { sequence: m.sequence, fullState: m.fullState, synced: m.synced };
      try {
        // A packed page goes straight into the cache's maps (no object per revocation): a new verifier's
        // state can be a million of them.
        if (m.revocations.length === 0 && m.packedRevocations.length > 0) {
          cache.applyPacked(m.packedRevocations, update);
        } else {
          cache.apply({ ...update, entries: entriesOf(m) });
        }
      } catch (e) {
        if (!(e instanceof PackedRevocationsError)) throw e;
        // A page that cannot be read whole is not applied: drop the stream, resume from what is held.
        retry(`unreadable page: ${e.message}`);
        call.cancel();
        return;
      }
      if (m.synced) {
        failures = 0;
        markReady();
      }
    });
    let retried = false;
    const retry = (why: string): void => {
      if (closed || retried) return;
      retried = true;
      failures += 1;
      // "Equal jitter": half the delay fixed, half random, so a fleet cut off together does not return together.
      const d = Math.min(max, initial * 2 ** Math.min(failures - 1, 20));
      const delay = d / 2 + Math.random() * (d / 2);
      options.logger?.warn(
        { failures, retryInMs: Math.round(delay), sequence: cache.sequence, why },
        'revocation watch broke: reconnecting',
      );
      timer = setTimeout(connect, delay);
      timer.unref();
    };
    call.on('error', (e: grpc.ServiceError) => {
      if (!closed) options.onError?.(e);
      retry(e.message);
    });
    // A server that shuts down ends the stream cleanly: reconnect all the same (to it, or its successor).
    call.on('end', () => retry('the server ended the stream'));
  };
  connect();
  return {
    ready,
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      current?.cancel();
    },
  };
}
