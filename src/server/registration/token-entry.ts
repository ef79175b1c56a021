/**
 * Which entry a new join token is bound to. A token yields exactly one entry, chosen here by the operator:
 * by entry id, or by a SPIFFE ID that names exactly one entry. Several entries may share a SPIFFE ID (other
 * selectors, parents, flags — one may be admin), so an ambiguous SPIFFE ID is refused with the candidates'
 * ids rather than resolved to one of them.
 */
import { ifNotFound } from '../../internal/not-found';
import { EntryAmbiguousError, NotFoundError } from '../../errors';
import type { StoreOps } from '../../store/store';
import type { Entry } from '../../store/types';
import { invalid, validateEntryId, validateWorkloadId, type ValidationContext } from './validate';

const PAGE_SIZE = 500;
/** Candidate ids listed in an ambiguity error. */
const MAX_LISTED = 20;

export async function joinTokenEntry(
  tx: Pick<StoreOps, 'getEntry' | 'listEntries'>,
  req: { entryId: string; spiffeId: string },
  ctx: ValidationContext,
): Promise<Entry> {
  if (req.entryId === '' && req.spiffeId === '') {
    throw invalid('entry_id', 'required: the entry the token is for (or spiffe_id naming exactly one entry)');
  }
  if (req.entryId !== '') {
    const entryId = validateEntryId('entry_id', req.entryId);
    const entry = await ifNotFound(
      () => tx.getEntry(entryId),
      () => {
        throw new NotFoundError(`entry_id: no registration entry ${entryId}`);
      },
    );
    if (req.spiffeId !== '' && validateWorkloadId('spiffe_id', req.spiffeId, ctx) !== entry.spiffeId) {
      throw invalid('spiffe_id', `entry ${entry.id} issues ${entry.spiffeId}, not ${req.spiffeId}`);
    }
    return attestable(entry, ctx.now);
  }
  const spiffeId = validateWorkloadId('spiffe_id', req.spiffeId, ctx);
  const all: Entry[] = [];
  let pageToken = '';
  do {
    // The exact ID through the index: IDs that merely start with it (spiffe://td/a/b for spiffe://td/a) are
    // never read.
    const page = await tx.listEntries({ spiffeId }, { pageSize: PAGE_SIZE, pageToken });
    all.push(...page.entries);
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  const direct = all.filter(
    (e) => e.parentId === undefined && (e.expiresAt === undefined || e.expiresAt > ctx.now),
  );
  const only = direct[0];
  if (direct.length === 1 && only !== undefined) return only;
  if (direct.length === 0) {
    throw new NotFoundError(
      `spiffe_id: no unexpired registration entry without a parent_id has ${spiffeId}` +
        (all.length > 0 ? ` (${all.length} under a node agent or expired: ${ids(all)})` : '') +
        ': create the entry first',
    );
  }
  throw new EntryAmbiguousError(
    `spiffe_id: ${direct.length} registration entries have ${spiffeId} (${ids(direct)}): give entry_id to choose one`,
  );
}

/** A join token's entry is attested directly, so it must be one the server issues directly, now. */
function attestable(entry: Entry, now: Date): Entry {
  if (entry.parentId !== undefined) {
    throw invalid(
      'entry_id',
      `entry ${entry.id} has parent_id ${entry.parentId}: it is issued through that node agent, not with a join token`,
    );
  }
  if (entry.expiresAt !== undefined && entry.expiresAt.getTime() <= now.getTime()) {
    throw invalid('entry_id', `entry ${entry.id} expired at ${entry.expiresAt.toISOString()}`);
  }
  return entry;
}

function ids(entries: readonly Entry[]): string {
  const shown = entries.slice(0, MAX_LISTED).map((e) => e.id);
  return entries.length > MAX_LISTED
    ? `${shown.join(', ')} and ${entries.length - MAX_LISTED} more`
    : shown.join(', ');
}
