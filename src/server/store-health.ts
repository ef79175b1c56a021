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
 * Told by the store (SqliteStore.onFailedClosed), not polled: the listener runs as the store poisons itself,
 * before the failing call's rejection reaches its caller, so no call answered after the failure finds health
 * still SERVING. Only the -wal pipeline poisons a store, and it fires that event, so nothing is left to poll.
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

/** A store that says when it fails closed (SqliteStore; PgStore has nothing to say). */
interface ReportsFailure extends FailsClosed {
  onFailedClosed(listener: (failure: Error) => void): () => void;
}

function failsClosed(store: Store): store is Store & FailsClosed {
  return typeof (store as Partial<FailsClosed>).failedClosed === 'function';
}

function reportsFailure(store: Store): store is Store & ReportsFailure {
  return failsClosed(store) && typeof (store as Partial<ReportsFailure>).onFailedClosed === 'function';
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
}

export interface StoreHealthMonitor {
  /** Looks now (the store also says so itself when it fails). */
  check(): void;
  stop(): void;
}

export function watchStoreHealth(options: StoreHealthOptions): StoreHealthMonitor {
  const { store, logger, onChange } = options;
  let failed = false;
  let unsubscribe: (() => void) | undefined;

  const stop = (): void => {
    unsubscribe?.();
    unsubscribe = undefined;
  };
  const report = (failure: Error): void => {
    if (failed) return;
    failed = true;
    // Nothing brings it back but a restart: no need to listen any more.
    stop();
    // The store's message and its cause's (an errno, the -wal path): no key material passes through here.
    logger.error(
      { reason: failure.message, cause: causeOf(failure) },
      'store failed closed: health NOT_SERVING until the server restarts',
    );
    onChange(false);
  };
  const check = (): void => {
    const failure = storeFailure(store);
    if (failure !== undefined) report(failure);
  };

  // Fires at once if the store has already failed.
  if (reportsFailure(store)) unsubscribe = store.onFailedClosed(report);
  else check();
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
