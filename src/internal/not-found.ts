/** Looking a record up where its absence is an answer of the caller's own, not the store's NotFoundError. */
import { ErrorCode, isLanyardError } from '../errors';

/**
 * What `lookup()` resolves to, or what `onMissing` returns (or throws) when it fails with NOT_FOUND. Any other
 * failure passes through unchanged, so a store that is down is never mistaken for a missing record.
 */
export async function ifNotFound<T, U>(lookup: () => Promise<T>, onMissing: () => U): Promise<T | U> {
  try {
    return await lookup();
  } catch (e) {
    if (isLanyardError(e) && e.code === ErrorCode.NOT_FOUND) return onMissing();
    throw e;
  }
}
