/**
 * Which registration entry an attested runtime gets. Decisions (docs/operator/server.md, "Which entry an attested workload gets"):
 * - evidence bound to an entry (join token): exactly that entry, by id; the token's binding is the
 *   authorization, so the entry's selectors are not matched against the token's selector, and the caller's
 *   spiffe_id is ignored. Several entries may share the token's SPIFFE ID (one of them admin): the token
 *   never picks among them. An entry that was deleted (or re-created under its id after the token), changed
 *   its SPIFFE ID, moved under a node agent or expired is refused with NoMatchingEntryError (and the token is spent).
 * - otherwise: the unexpired entries whose selectors are all among the attested ones. None ->
 *   PERMISSION_DENIED. One -> it. Several -> the caller's spiffe_id picks one of them; without it (or with
 *   one that is not among them) FAILED_PRECONDITION listing the candidates. One SVID per attestation, not
 *   one per match: an SVID has exactly one SPIFFE ID, and issuing every match would hand a runtime
 *   identities it never asked for.
 */
import { ifNotFound } from '../../internal/not-found';
import { EntryAmbiguousError, NoMatchingEntryError } from '../../errors';
import type { StoreOps } from '../../store/store';
import type { Entry, Selector } from '../../store/types';

/** More candidates than this are not listed one by one in the error message. */
const MAX_LISTED = 10;
const PAGE_SIZE = 500;

export interface MatchRequest {
  selectors: Selector[];
  /** The SPIFFE ID the evidence is bound to (join token). */
  boundSpiffeId?: string;
  /** The entry the evidence is bound to (join token); required whenever boundSpiffeId is set. */
  boundEntryId?: string;
  /** When the binding was made (the token's creation). */
  boundAt?: Date;
  /** AttestParams.spiffe_id; '' when not given. */
  requestedSpiffeId: string;
  now: Date;
}

/** Evidence bound to an entry (a join token): it gets exactly that entry or nothing. */
export function isBound(evidence: Pick<MatchRequest, 'boundSpiffeId' | 'boundEntryId'>): boolean {
  return evidence.boundSpiffeId !== undefined || evidence.boundEntryId !== undefined;
}

export async function matchEntry(
  store: Pick<StoreOps, 'listEntries' | 'getEntry'>,
  req: MatchRequest,
): Promise<Entry> {
  if (isBound(req)) return boundEntry(store, req);

  const candidates = await listAll(store, {
    selectors: { selectors: req.selectors, match: 'subset' },
    notExpiredAt: req.now,
  });
  if (candidates.length === 0) {
    throw new NoMatchingEntryError(
      `no registration entry matches the attested selectors (${req.selectors.map(fmt).join(', ')})`,
    );
  }
  if (req.requestedSpiffeId !== '') {
    const chosen = candidates.find((e) => e.spiffeId === req.requestedSpiffeId);
    if (chosen === undefined) {
      throw new NoMatchingEntryError(
        `spiffe_id ${req.requestedSpiffeId.slice(0, 2048)} is not among the entries the attested selectors match: ${list(candidates)}`,
      );
    }
    return chosen;
  }
  const only = candidates[0];
  if (candidates.length === 1 && only !== undefined) return only;
  const ids = new Set(candidates.map((e) => e.spiffeId));
  if (ids.size === 1 && only !== undefined) return only;
  throw new EntryAmbiguousError(
    `the attested selectors match ${candidates.length} entries; choose one with spiffe_id: ${list(candidates)}`,
  );
}

/**
 * The entry the evidence is bound to, or NoMatchingEntryError when it can never be issued with it (gone,
 * changed, expired, or the token names none): attest-stream then spends the token anyway.
 */
async function boundEntry(store: Pick<StoreOps, 'getEntry'>, req: MatchRequest): Promise<Entry> {
  const spiffeId = req.boundSpiffeId ?? '';
  const id = req.boundEntryId;
  if (id === undefined) {
    throw new NoMatchingEntryError(
      `the join token is bound to ${spiffeId} but names no entry (it predates tokens bound to one entry, and ` +
        'several entries had that SPIFFE ID): create a new token for an entry id',
    );
  }
  const entry = await ifNotFound(
    () => store.getEntry(id),
    () => {
      throw new NoMatchingEntryError(`the registration entry ${id} the join token is bound to was deleted`);
    },
  );
  if (req.boundAt !== undefined && entry.createdAt.getTime() > req.boundAt.getTime()) {
    throw new NoMatchingEntryError(
      `the registration entry ${id} was created after the join token (the entry it was bound to was deleted)`,
    );
  }
  if (req.boundSpiffeId !== undefined && entry.spiffeId !== req.boundSpiffeId) {
    throw new NoMatchingEntryError(
      `the registration entry ${id} now issues ${entry.spiffeId}, not ${req.boundSpiffeId} as when the join token was created`,
    );
  }
  if (entry.parentId !== undefined) {
    throw new NoMatchingEntryError(
      `the registration entry ${id} is now issued through its node agent (${entry.parentId}), not with a join token`,
    );
  }
  if (entry.expiresAt !== undefined && entry.expiresAt.getTime() <= req.now.getTime()) {
    throw new NoMatchingEntryError(
      `the registration entry ${id} the join token is bound to expired at ${entry.expiresAt.toISOString()}`,
    );
  }
  return entry;
}

async function listAll(
  store: Pick<StoreOps, 'listEntries'>,
  filter: Parameters<StoreOps['listEntries']>[0],
): Promise<Entry[]> {
  const out: Entry[] = [];
  let pageToken = '';
  do {
    const page = await store.listEntries(filter, { pageSize: PAGE_SIZE, pageToken });
    // An entry with a parent_id is issued only through that node agent (NodeService), which attests the
    // local workload itself: attesting to the server directly must not reach it.
    out.push(...page.entries.filter((e) => e.parentId === undefined));
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return out;
}

function list(entries: Entry[]): string {
  const ids = [...new Set(entries.map((e) => e.spiffeId))];
  const shown = ids.slice(0, MAX_LISTED).join(', ');
  return ids.length > MAX_LISTED ? `${shown} and ${ids.length - MAX_LISTED} more` : shown;
}

function fmt(s: Selector): string {
  return `${s.type}:${s.value}`;
}
