/** Optimistic concurrency for records that carry a revision (registration entries, federation relationships). */
import { RevisionConflictError } from '../errors';

/**
 * Refuses a write made against a revision that is no longer current; `expected` undefined means the caller
 * did not ask for the check (an unconditional delete). Run inside the write's transaction, so nothing can
 * change the record between this check and the write.
 */
export function assertRevision(
  what: string,
  current: { readonly revision: number },
  expected: number | undefined,
  outcome: 're-read it and retry' | 'not deleted',
): void {
  if (expected === undefined || current.revision === expected) return;
  throw new RevisionConflictError(`${what} is at revision ${current.revision}, not ${expected}: ${outcome}`, {
    currentRevision: current.revision,
  });
}
