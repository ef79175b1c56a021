import type { TickResult } from './ca-manager';

/** What a rotation timer drives: the CA, and anything else that rotates on a schedule (the JWT-SVID keys). */
export interface Rotating<R> {
  tick(): Promise<R>;
  msUntilNextCheck(): number;
}

export interface RotationTimerOptions<R = TickResult> {
  /** Longest sleep between ticks, in case the wall clock jumps or a deadline moved. Default 60 s. */
  maxIntervalMs?: number;
  /** Shortest sleep, so a step that keeps failing cannot spin. Default 1 s. */
  minIntervalMs?: number;
  /** Every tick failure lands here (the CA has logged it already); the timer keeps running. */
  onError?: (error: unknown) => void;
  onTick?: (result: R) => void;
}

export interface RotationTimer {
  /** Stops scheduling; resolves once a tick in progress has finished. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Drives `ca.tick()` for a server: sleeps until `ca.nextCheckAt()` (by the CA's clock) (bounded by min/max interval), ticks,
 * repeats. Unref'd, so it never keeps the process alive on its own; the server stops it before closing
 * the CA and the store.
 */
export function startRotationTimer<R = TickResult>(
  ca: Rotating<R>,
  options: RotationTimerOptions<R> = {},
): RotationTimer {
  const maxMs = options.maxIntervalMs ?? 60_000;
  const minMs = options.minIntervalMs ?? 1_000;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const schedule = (): void => {
    if (stopped) return;
    let due: number;
    try {
      due = ca.msUntilNextCheck();
    } catch {
      due = maxMs;
    }
    timer = setTimeout(fire, Math.min(maxMs, Math.max(minMs, due)));
    timer.unref();
  };
  const fire = (): void => {
    running = ca
      .tick()
      .then(
        (result) => options.onTick?.(result),
        (e: unknown) => options.onError?.(e),
      )
      .finally(schedule);
  };

  schedule();
  return {
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
  };
}
