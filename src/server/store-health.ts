/**
 * Health follows the store when the store has failed closed. A SQLite store whose WAL fsync failed (or whose
 * -wal was removed or replaced under it) refuses every later call until the process restarts
 * (SqliteStore.failedClosed, docs/design/performance.md "A failed fsync"). Until now the health service still
 * said SERVING, so a load balancer kept sending calls that could only fail and an orchestrator never
 * restarted the one thing that cures it: the server as a whole and every service that uses the store turn
 * NOT_SERVING, the reason is logged once, and they stay so (the failure is permanent by design).
 *
 * PostgreSQL has no such state (PgStore.failedClosed is always undefined), and health stays SERVING when it
 * is unreachable or its pool is exhausted: each call fails on its own and pg-pool reconnects once it is back.
 * Every server sharing that database would turn NOT_SERVING at once, so a probe could only take all of them
 * out of rotation, or restart them all into the same outage: a check that restarts what a restart cannot
 * cure is what SPIRE's discussion of its own health (spiffe/spire#730) warns against. What a restart cures is
 * local state, and a PostgreSQL commit that fails is rolled back by the database: nothing local is left to
 * distrust.
 *
 * Read by polling a getter (no I/O, every `intervalMs`): the store has no event for it, and a probe period
 * is seconds anyway.
 */
import type { Logger } from '../internal/logging';
import type { Store } from '../store/store';
import { ADMIN_SERVICE_NAME } from './admin/service';
import { ATTESTATION_SERVICE_NAME } from './attestation/service';
import { AUDIT_SERVICE_NAME } from './audit/service';
import { NODE_SERVICE_NAME } from './node/service';
import { REGISTRATION_SERVICE_NAME } from './registration/service';
import { SESSION_SERVICE_NAME } from './sessions/service';

/**
 * '' (the server as a whole) and every service whose calls read or write the store (each state-changing call
 * is also audited into it). Only the BundleService answers from memory.
 */
export const STORE_DEPENDENT_HEALTH_NAMES: readonly string[] = Object.freeze([
  '',
  ADMIN_SERVICE_NAME,
  ATTESTATION_SERVICE_NAME,
  AUDIT_SERVICE_NAME,
  NODE_SERVICE_NAME,
  REGISTRATION_SERVICE_NAME,
  SESSION_SERVICE_NAME,
]);

/** A store that can fail closed (SqliteStore, and PgStore which never does). */
interface FailsClosed {
  failedClosed(): Error | undefined;
}

function failsClosed(store: Store): store is Store & FailsClosed {
  return typeof (store as Partial<FailsClosed>).failedClosed === 'function';
}

/** Why `store` refuses every call until restarted, or undefined while it works (or cannot fail so). */
export function storeFailure(store: Store): Error | undefined {
  return failsClosed(store) ? store.failedClosed() : undefined;
}

export interface StoreHealthOptions {
  store: Store;
  logger: Logger;
  /** Called once, when the store is found failed (not at start while it works). */
  onChange: (serving: boolean) => void;
  /** Time between two looks at the store. Default 1 s. */
  intervalMs?: number;
}

export interface StoreHealthMonitor {
  /** Looks now (also done every intervalMs). */
  check(): void;
  stop(): void;
}

export function watchStoreHealth(options: StoreHealthOptions): StoreHealthMonitor {
  const { store, logger, onChange } = options;
  const intervalMs = options.intervalMs ?? 1_000;
  let failed = false;
  let timer: NodeJS.Timeout | undefined;

  const stop = (): void => {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
  };
  const check = (): void => {
    if (failed) return;
    const failure = storeFailure(store);
    if (failure === undefined) return;
    failed = true;
    // Nothing brings it back but a restart: no need to look again.
    stop();
    // The store's message and its cause's (an errno, the -wal path): no key material passes through here.
    logger.error(
      { reason: failure.message, cause: causeOf(failure) },
      'store failed closed: health NOT_SERVING until the server restarts',
    );
    onChange(false);
  };

  check();
  if (!failed) {
    timer = setInterval(check, intervalMs);
    // A probe of the store's state must not keep a closing process alive.
    timer.unref();
  }
  return { check, stop };
}

function causeOf(e: Error): string | undefined {
  const c = e.cause;
  if (c instanceof Error) {
    const code = (c as NodeJS.ErrnoException).code;
    return code !== undefined && !c.message.startsWith(code) ? `${code}: ${c.message}` : c.message;
  }
  return c === undefined ? undefined : String(c);
}
