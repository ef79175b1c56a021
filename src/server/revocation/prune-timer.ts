/**
 * Housekeeping: drops revocations once every certificate they name has expired (a verifier rejects an
 * expired certificate anyway, so keeping them only grows the CRL and the WatchRevocations full state),
 * grants that can no longer be redeemed, and sessions that have expired (with the serials recorded for the
 * CRL). Pruning never lowers the revocation sequence (the store keeps the highest ever assigned), so resuming
 * watchers stay correct.
 */
import type { Store } from '../../store/store';
import type { Logger } from '../../internal/logging';

export const PRUNE_DEFAULTS = Object.freeze({
  intervalSeconds: 600,
  /**
   * Grants are kept this long past their redeem-by time, and sessions past their expiry, so a late replay or
   * a late call on an old session is still reported as such (ERR_GRANT_REPLAYED, ERR_SESSION_EXPIRED) rather
   * than as unknown, and clock steps stay harmless.
   */
  graceSeconds: 3600,
});

export interface PruneResult {
  revocations: number;
  grants: number;
  sessions: number;
}

export async function pruneOnce(
  store: Store,
  now: Date,
  graceSeconds: number = PRUNE_DEFAULTS.graceSeconds,
): Promise<PruneResult> {
  const revocations = await store.pruneRevocations(now);
  const graceStart = new Date(now.getTime() - graceSeconds * 1000);
  const grants = await store.pruneGrants(graceStart);
  // The store still keeps a session that a valid certificate names, or that a kept session descends from.
  const sessions = await store.pruneSessions(graceStart, now);
  return { revocations, grants, sessions };
}

export interface PruneTimer {
  /** Stops the timer and waits for a run in progress. */
  stop(): Promise<void>;
}

/** Prunes every `intervalSeconds` (unref'd: it never keeps the process alive). */
export function startPruneTimer(opts: {
  store: Store;
  clock: () => Date;
  logger: Logger;
  intervalSeconds?: number;
  /** Called after a run that removed something (the CRL publisher refreshes). */
  onPruned?: (result: PruneResult) => void;
}): PruneTimer {
  let running: Promise<void> | undefined;
  const run = (): void => {
    if (running !== undefined) return;
    running = pruneOnce(opts.store, opts.clock())
      .then((r) => {
        if (r.revocations + r.grants + r.sessions === 0) return;
        opts.logger.info({ ...r }, 'pruned expired revocations, grants and sessions');
        opts.onPruned?.(r);
      })
      .catch((e: unknown) => opts.logger.warn({ err: e }, 'pruning failed; retrying at the next interval'))
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(run, (opts.intervalSeconds ?? PRUNE_DEFAULTS.intervalSeconds) * 1000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
