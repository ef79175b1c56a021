/**
 * Allow records written inside the handler's own store transaction, so the state change and its record
 * commit together (or neither does). The audit wrapper (audited-service.ts) opens a context for the methods
 * it marks `inTransaction`; the handler calls `recordInTransaction` with its transaction handle and the
 * response it is about to send, after the state change and before the transaction ends. Without a context
 * (a service not wrapped for audit) the call does nothing.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { sharedTransaction, type Store, type StoreOps } from '../../store/store';
import type { SignedLeaf } from '../../x509/profiles';

export interface TransactionalAudit {
  /**
   * Appends the allow records for `response` through `tx`. `detail` is what the handler alone knows and the
   * response does not say (an update's state before it), for the method's describer.
   */
  record(tx: StoreOps, response: unknown, detail?: unknown): Promise<void>;
}

const current = new AsyncLocalStorage<TransactionalAudit>();

/** Runs `fn` (a handler invocation) with `audit` as the context `recordInTransaction` writes through. */
export function withTransactionalAudit<T>(audit: TransactionalAudit, fn: () => T): T {
  return current.run(audit, fn);
}

/** Writes the running call's allow records inside `tx`; a no-op when the call is not audited this way. */
export async function recordInTransaction(tx: StoreOps, response: unknown, detail?: unknown): Promise<void> {
  const audit = current.getStore();
  if (audit === undefined) return;
  await audit.record(tx, response, detail);
}

/** One store transaction whose result is the response, recorded in the same transaction. */
export function auditedTransaction<R>(store: Store, fn: (tx: StoreOps) => Promise<R>): Promise<R> {
  return store.transaction(async (tx) => {
    const response = await fn(tx);
    await recordInTransaction(tx, response);
    return response;
  });
}

/**
 * As `auditedTransaction`, through the store's group commit: the response's rows and records share one
 * durable commit with the other issuance calls in flight, and `fn`'s result is returned only after it.
 */
export function auditedSharedTransaction<R>(store: Store, fn: (tx: StoreOps) => Promise<R>): Promise<R> {
  return sharedTransaction(store, async (tx) => {
    const response = await fn(tx);
    await recordInTransaction(tx, response);
    return response;
  });
}

/** What the Attest stream's audit wrapper lends the handler to write the allow record inside its transaction. */
export interface AttestTransactionalAudit {
  /** Appends the allow record of the SVID `leaf` through `tx`; `spent` names the evidence used up. */
  record(tx: StoreOps, leaf: SignedLeaf, spent?: string): Promise<void>;
}

// A bidirectional stream's handler runs in event callbacks, outside any async context the wrapper could open,
// so the wrapper hands its recorder over keyed by the call object.
const attestAudits = new WeakMap<object, AttestTransactionalAudit>();

export function lendAttestAudit(call: object, audit: AttestTransactionalAudit): void {
  attestAudits.set(call, audit);
}

export function attestAuditOf(call: object): AttestTransactionalAudit | undefined {
  return attestAudits.get(call);
}
