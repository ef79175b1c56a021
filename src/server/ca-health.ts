/**
 * Health follows the CA, as SPIRE's does: while the server cannot issue (no active CA that can sign, or its
 * own SVID expired so no client accepts the TLS listener) the services that issue, and the server as a whole,
 * report NOT_SERVING, so load balancers and probes move away instead of sending calls that fail; once
 * rotation or `lanyard ca rotate` restores a CA, SERVING again.
 *
 * Checked on every CA change (new server SVID, new bundle), at the moment readiness would lapse, and at least
 * every `maxIntervalMs`, so an expiry is noticed even with the rotation timer stopped.
 */
import type { CaManager } from '../ca';
import { ATTESTATION_SERVICE_NAME } from './attestation/service';
import type { Logger } from '../internal/logging';
import { NODE_SERVICE_NAME } from './node/service';
import { SESSION_SERVICE_NAME } from './sessions/service';

/** '' (the server as a whole) and the services whose calls sign SVIDs. */
export const CA_DEPENDENT_HEALTH_NAMES: readonly string[] = Object.freeze([
  '',
  ATTESTATION_SERVICE_NAME,
  NODE_SERVICE_NAME,
  SESSION_SERVICE_NAME,
]);

export interface CaHealthOptions {
  ca: CaManager;
  clock: () => Date;
  logger: Logger;
  /** Called on each change of state (not at start, which is SERVING: the CA was just opened). */
  onChange: (serving: boolean) => void;
  /** Longest wait between two checks. Default 5 s. */
  maxIntervalMs?: number;
}

export interface CaHealthMonitor {
  /** Re-checks now, e.g. after a rotation tick. */
  check(): void;
  stop(): void;
}

export function watchCaHealth(options: CaHealthOptions): CaHealthMonitor {
  const { ca, clock, logger, onChange } = options;
  const maxMs = options.maxIntervalMs ?? 5_000;
  let serving = true;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const check = (): void => {
    if (stopped) return;
    if (timer !== undefined) clearTimeout(timer);
    const now = clock();
    const r = ca.readiness(now);
    if (r.ready !== serving) {
      serving = r.ready;
      if (r.ready) logger.info({ until: r.until }, 'CA can issue again: health SERVING');
      else logger.error({ reason: r.reason }, 'CA cannot issue: health NOT_SERVING');
      onChange(serving);
    }
    // One millisecond past the lapse, so the check sees it.
    const due = r.ready ? r.until.getTime() - now.getTime() + 1 : maxMs;
    timer = setTimeout(check, Math.max(1, Math.min(maxMs, due)));
    timer.unref();
  };

  const unsubscribe = [ca.onServerSvidChange(check), ca.onBundleChange(check)];
  check();
  return {
    check,
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      for (const u of unsubscribe) u();
    },
  };
}
