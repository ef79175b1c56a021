/**
 * Feeds a RevocationCache from the server's WatchRevocations stream: the full state first, then increments;
 * after a broken stream it reconnects (with a back-off) and resumes from the cache's sequence, so nothing
 * committed in between is missed.
 */
import type * as grpc from '@grpc/grpc-js';
import type { SessionServiceClient, WatchRevocationsResponse } from '../gen/lanyard/v1/session';
import type { RevocationCache, RevocationCacheEntry } from '../verify/revocation-cache';

export interface RevocationWatchOptions {
  /** Delay before reconnecting after the stream broke. Default 1000 ms. */
  retryMs?: number;
  onError?: (e: grpc.ServiceError) => void;
}

export interface RevocationWatchHandle {
  /** Resolves after the first message (the full state, or the increments since the cache's sequence). */
  ready: Promise<void>;
  close(): void;
}

export function watchRevocationsInto(
  client: SessionServiceClient,
  cache: RevocationCache,
  options: RevocationWatchOptions = {},
): RevocationWatchHandle {
  let closed = false;
  let current: grpc.ClientReadableStream<WatchRevocationsResponse> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));

  const connect = (): void => {
    const call = client.watchRevocations({ afterSequence: cache.sequence });
    current = call;
    call.on('data', (m: WatchRevocationsResponse) => {
      const entries = m.revocations.map((r): RevocationCacheEntry => ({
        sequence: r.sequence,
        kind: r.kind === 'session' ? 'session' : 'certificate',
        id: r.id,
        reason: r.reason,
        ...(r.expiresAt !== undefined ? { expiresAt: r.expiresAt } : {}),
      }));
      if (m.fullState) cache.applyFullState(entries, m.sequence);
      else cache.applyIncrement(entries, m.sequence);
      markReady();
    });
    let retried = false;
    const retry = (): void => {
      if (closed || retried) return;
      retried = true;
      timer = setTimeout(connect, options.retryMs ?? 1000);
    };
    call.on('error', (e: grpc.ServiceError) => {
      if (!closed) options.onError?.(e);
      retry();
    });
    // A server that shuts down ends the stream cleanly: reconnect all the same (to it, or its successor).
    call.on('end', retry);
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
