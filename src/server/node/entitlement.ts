/**
 * Which registration entries a node agent may serve: exactly the unexpired ones whose parent_id is the
 * agent's SPIFFE ID. Every NodeService answer goes through here, so an agent can neither list nor obtain an
 * identity registered under another parent (or under none).
 */
import { ifNotFound } from '../../internal/not-found';
import { AuthorizationError, InvalidArgumentError } from '../../errors';
import type { Store } from '../../store/store';
import type { Entry } from '../../store/types';

const PAGE_SIZE = 500;

export async function entriesUnder(store: Store, parentId: string, now: Date): Promise<Entry[]> {
  const out: Entry[] = [];
  let pageToken = '';
  do {
    const page = await store.listEntries({ parentId, notExpiredAt: now }, { pageSize: PAGE_SIZE, pageToken });
    out.push(...page.entries);
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return out;
}

/**
 * The entry `entryId` when it is under `parentId` and unexpired.
 * @throws AuthorizationError(ERR_UNAUTHORIZED) otherwise — also for an unknown id, so an agent cannot probe
 *   which entries exist elsewhere.
 */
export async function entitledEntry(
  store: Store,
  parentId: string,
  entryId: string,
  now: Date,
): Promise<Entry> {
  if (entryId === '' || entryId.length > 64) {
    throw new InvalidArgumentError('entry_id must be 1-64 characters');
  }
  const entry = await ifNotFound(
    () => store.getEntry(entryId),
    () => {
      throw notUnder(parentId, entryId);
    },
  );
  if (entry.parentId !== parentId) throw notUnder(parentId, entryId);
  if (entry.expiresAt !== undefined && entry.expiresAt.getTime() <= now.getTime()) {
    throw notUnder(parentId, entryId);
  }
  return entry;
}

function notUnder(parentId: string, entryId: string): AuthorizationError {
  return new AuthorizationError(
    `entry ${entryId} is not an unexpired registration entry under ${parentId}: this agent may not issue it`,
  );
}
