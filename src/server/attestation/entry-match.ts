/**
 * Which registration entry an attested runtime gets. Decisions (README "When several entries match"):
 * - evidence bound to a SPIFFE ID (join token): the entry with exactly that SPIFFE ID; the token's binding
 *   is the authorization, so the entry's selectors are not matched against the token's selector, and the
 *   caller's spiffe_id is ignored. The entry is still required: it carries TTL, scopes and the admin flag,
 *   and deleting it stops renewal.
 * - otherwise: the unexpired entries whose selectors are all among the attested ones. None ->
 *   PERMISSION_DENIED. One -> it. Several -> the caller's spiffe_id picks one of them; without it (or with
 *   one that is not among them) FAILED_PRECONDITION listing the candidates. One SVID per attestation, not
 *   one per match: an SVID has exactly one SPIFFE ID, and issuing every match would hand a runtime
 *   identities it never asked for.
 */
import { ErrorCode, IssuanceError } from '../../errors';
import type { StoreOps } from '../../store/store';
import type { Entry, Selector } from '../../store/types';

/** More candidates than this are not listed one by one in the error message. */
const MAX_LISTED = 10;
const PAGE_SIZE = 500;

export interface MatchRequest {
  selectors: Selector[];
  boundSpiffeId?: string;
  /** AttestParams.spiffe_id; '' when not given. */
  requestedSpiffeId: string;
  now: Date;
}

export async function matchEntry(store: Pick<StoreOps, 'listEntries'>, req: MatchRequest): Promise<Entry> {
  if (req.boundSpiffeId !== undefined) {
    const all = await listAll(store, { spiffeIdPrefix: req.boundSpiffeId, notExpiredAt: req.now });
    const exact = all.filter((e) => e.spiffeId === req.boundSpiffeId);
    const entry = exact[0];
    if (entry === undefined) {
      throw new IssuanceError(
        ErrorCode.NO_MATCHING_ENTRY,
        `the join token is bound to ${req.boundSpiffeId}, but no unexpired registration entry has that SPIFFE ID`,
      );
    }
    // Several entries with one SPIFFE ID (different selectors or parents): any gives the same identity;
    // the oldest is stable across calls.
    return exact.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || cmp(a.id, b.id))[0] ?? entry;
  }

  const candidates = await listAll(store, {
    selectors: { selectors: req.selectors, match: 'subset' },
    notExpiredAt: req.now,
  });
  if (candidates.length === 0) {
    throw new IssuanceError(
      ErrorCode.NO_MATCHING_ENTRY,
      `no registration entry matches the attested selectors (${req.selectors.map(fmt).join(', ')})`,
    );
  }
  if (req.requestedSpiffeId !== '') {
    const chosen = candidates.find((e) => e.spiffeId === req.requestedSpiffeId);
    if (chosen === undefined) {
      throw new IssuanceError(
        ErrorCode.NO_MATCHING_ENTRY,
        `spiffe_id ${req.requestedSpiffeId.slice(0, 2048)} is not among the entries the attested selectors match: ${list(candidates)}`,
      );
    }
    return chosen;
  }
  const only = candidates[0];
  if (candidates.length === 1 && only !== undefined) return only;
  const ids = new Set(candidates.map((e) => e.spiffeId));
  if (ids.size === 1 && only !== undefined) return only;
  throw new IssuanceError(
    ErrorCode.ENTRY_AMBIGUOUS,
    `the attested selectors match ${candidates.length} entries; choose one with spiffe_id: ${list(candidates)}`,
  );
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

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
