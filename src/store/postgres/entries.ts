import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../../errors';
import { assertRevision } from '../revision';
import { decodeEntryCursor, encodeEntryCursor } from '../page-token';
import { prefixRange } from '../prefix-range';
import { canonicalSelectors, selectorSetKey } from '../selectors';
import { MAX_PAGE_SIZE } from '../store';
import type { Entry, EntryFilter, EntryPage, EntryPatch, NewEntry, PageRequest } from '../types';
import { isUniqueViolation, type Runner, type Sql } from './sql';
import { assertEntryUnique, entryFromRow, newEntry, patchEntry } from '../rows';
import type { EntryRow } from '../rows';

/** An entry row with its selectors as [type, value] pairs, from the selectors subquery of SELECT_ENTRY. */
type PgEntryRow = EntryRow & { selectors: [string, string][] | null };

const SELECT_ENTRY = `SELECT e.*, (SELECT json_agg(json_build_array(s.type, s.value) ORDER BY s.type, s.value)
    FROM entry_selectors s WHERE s.entry_id = e.id) AS selectors FROM entries e`;

const COLUMNS = `id, spiffe_id, parent_id, selectors_key, x509_svid_ttl_seconds, allowed_scopes, max_delegation_depth,
  allowed_delegates, admin, dns_names, expires_at, can_assert_principal, created_at, updated_at, revision,
  federates_with`;

/** Registration entries in PostgreSQL: the same contract as SqliteEntries. */
export class PgEntries {
  constructor(
    private readonly run: Runner,
    private readonly now: () => Date,
  ) {}

  createEntry(input: NewEntry): Promise<Entry> {
    return this.run.write(async (sql) => {
      const entry = newEntry(input, this.now());
      const idTaken = (await sql.query('SELECT 1 FROM entries WHERE id = $1', [entry.id])).rowCount !== 0;
      await assertNoDuplicate(sql, entry, idTaken);
      try {
        await sql.query(
          `INSERT INTO entries (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
          toParams(entry),
        );
      } catch (e) {
        // Only reachable without the write lock's serialisation, e.g. a writer outside Lanyard.
        if (isUniqueViolation(e))
          throw new AlreadyExistsError(`entry ${entry.id} collides with another entry`);
        throw e;
      }
      await writeSelectors(sql, entry);
      return entry;
    });
  }

  getEntry(id: string): Promise<Entry> {
    return this.run.read((sql) => getEntry(sql, id));
  }

  updateEntry(id: string, patch: EntryPatch, expectedRevision: number): Promise<Entry> {
    return this.run.write(async (sql) => {
      const next = patchEntry(await getEntry(sql, id, true), patch, expectedRevision, this.now());
      await assertNoDuplicate(sql, next);
      // The INSERT's parameters without created_at, which never changes.
      const params = toParams(next);
      params.splice(12, 1);
      await sql.query(
        `UPDATE entries SET spiffe_id = $2, parent_id = $3, selectors_key = $4, x509_svid_ttl_seconds = $5,
           allowed_scopes = $6, max_delegation_depth = $7, allowed_delegates = $8, admin = $9, dns_names = $10,
           expires_at = $11, can_assert_principal = $12, updated_at = $13, revision = $14, federates_with = $15
         WHERE id = $1`,
        params,
      );
      await sql.query('DELETE FROM entry_selectors WHERE entry_id = $1', [id]);
      await writeSelectors(sql, next);
      return next;
    });
  }

  deleteEntry(id: string, expectedRevision?: number): Promise<void> {
    return this.run.write(async (sql) => {
      const current = await getEntry(sql, id, true);
      assertRevision(`entry ${JSON.stringify(id)}`, current, expectedRevision, 'not deleted');
      await sql.query('DELETE FROM entries WHERE id = $1', [id]);
    });
  }

  listEntries(filter: EntryFilter, page: PageRequest): Promise<EntryPage> {
    if (!Number.isInteger(page.pageSize) || page.pageSize < 1) {
      return Promise.reject(
        new InvalidArgumentError(`page size must be a positive integer, got ${page.pageSize}`),
      );
    }
    let after: { spiffeId: string; id: string } | undefined;
    try {
      after = page.pageToken ? decodeEntryCursor(page.pageToken) : undefined;
    } catch (e) {
      return Promise.reject(e);
    }
    const limit = Math.min(page.pageSize, MAX_PAGE_SIZE);
    const where: string[] = [];
    const params: unknown[] = [];
    const param = (v: unknown): string => {
      params.push(v);
      return `$${params.length}`;
    };
    let cte = '';
    if (filter.spiffeId !== undefined) where.push(`e.spiffe_id = ${param(filter.spiffeId)}`);
    if (filter.spiffeIdPrefix) {
      // A range on the index ("C" collation: code point order) bounds the scan to the IDs with the prefix; a
      // plain comparison (not LIKE, where % and _ are wildcards) is the exact test.
      const p = param(filter.spiffeIdPrefix);
      where.push(`e.spiffe_id >= ${p}`, `substr(e.spiffe_id, 1, length(${p})) = ${p}`);
      const { end } = prefixRange(filter.spiffeIdPrefix);
      if (end !== undefined) where.push(`e.spiffe_id < ${param(end)}`);
    }
    if (filter.parentId !== undefined) where.push(`e.parent_id = ${param(filter.parentId)}`);
    if (filter.notExpiredAt) {
      where.push(`(e.expires_at IS NULL OR e.expires_at > ${param(filter.notExpiredAt)})`);
    }
    if (filter.selectors) {
      const wanted = canonicalSelectors(filter.selectors.selectors);
      const types = param(wanted.map((s) => s.type));
      const values = param(wanted.map((s) => s.value));
      cte = `WITH wanted (type, value) AS (SELECT * FROM unnest(${types}::text[], ${values}::text[]))`;
      // Parameters are bound only when the condition uses them: PostgreSQL cannot type an unused one.
      where.push(
        selectorCondition(
          filter.selectors.match,
          wanted.length > 0,
          () => param(wanted.length),
          () => param(selectorSetKey(wanted)),
        ),
      );
    }
    if (after) {
      where.push(`(e.spiffe_id, e.id) > (${param(after.spiffeId)}, ${param(after.id)})`);
    }
    const text = `${cte} ${SELECT_ENTRY} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY e.spiffe_id, e.id LIMIT ${param(limit + 1)}`;
    // One statement: the page and its selectors come from one snapshot.
    return this.run.read(async (sql) => {
      const rows = (await sql.query<PgEntryRow>(text, params)).rows;
      const more = rows.length > limit;
      const entries = rows.slice(0, limit).map(pgEntryFromRow);
      const last = entries[entries.length - 1];
      return { entries, nextPageToken: more && last ? encodeEntryCursor(last) : '' };
    });
  }
}

async function getEntry(sql: Sql, id: string, forUpdate = false): Promise<Entry> {
  const { rows } = await sql.query<PgEntryRow>(
    `${SELECT_ENTRY} WHERE e.id = $1${forUpdate ? ' FOR UPDATE OF e' : ''}`,
    [id],
  );
  const row = rows[0];
  if (!row) throw new NotFoundError(`no entry with id ${JSON.stringify(id)}`);
  return pgEntryFromRow(row);
}

async function assertNoDuplicate(sql: Sql, entry: Entry, idTaken = false): Promise<void> {
  const { rows } = await sql.query<{ id: string }>(
    'SELECT id FROM entries WHERE spiffe_id = $1 AND parent_id = $2 AND selectors_key = $3',
    [entry.spiffeId, entry.parentId ?? '', selectorSetKey(entry.selectors)],
  );
  assertEntryUnique(entry, rows[0], idTaken);
}

async function writeSelectors(sql: Sql, entry: Entry): Promise<void> {
  await sql.query(
    'INSERT INTO entry_selectors (entry_id, type, value) SELECT $1, t, v FROM unnest($2::text[], $3::text[]) AS s (t, v)',
    [entry.id, entry.selectors.map((s) => s.type), entry.selectors.map((s) => s.value)],
  );
}

/**
 * S is the entry's selector set, F the filter's (the `wanted` CTE). With a non-empty F, the candidates for
 * subset, superset and any are the entries holding at least one selector of F, found through the selector index
 * (`e.id IN candidates`), so the entries that share none of them are never read.
 */
function selectorCondition(
  match: 'exact' | 'subset' | 'superset' | 'any',
  wantedAny: boolean,
  wantedCount: () => string,
  wantedKey: () => string,
): string {
  const candidates = `e.id IN (SELECT s.entry_id FROM wanted w JOIN entry_selectors s
      ON s.type = w.type AND s.value = w.value)`;
  const inWanted = 'EXISTS (SELECT 1 FROM wanted w WHERE w.type = s.type AND w.value = s.value)';
  const subset = `NOT EXISTS (SELECT 1 FROM entry_selectors s WHERE s.entry_id = e.id AND NOT ${inWanted})`;
  const superset = (): string =>
    `(SELECT COUNT(*) FROM entry_selectors s WHERE s.entry_id = e.id AND ${inWanted}) = ${wantedCount()}::bigint`;
  switch (match) {
    case 'exact':
      return `e.selectors_key = ${wantedKey()}`;
    case 'subset':
      // Being a candidate also keeps a selector-less (join-token-only) entry out of every match: the empty set
      // is a subset of anything, which would hand it to any workload. An empty F matches nothing.
      return wantedAny ? `${candidates} AND ${subset}` : 'false';
    case 'superset':
      // Every set is a superset of the empty one; only a non-empty F can use the candidates.
      return wantedAny ? `${candidates} AND ${superset()}` : 'true';
    case 'any':
      return wantedAny ? candidates : 'false';
  }
}

/** In COLUMNS order. */
function toParams(e: Entry): unknown[] {
  return [
    e.id,
    e.spiffeId,
    e.parentId ?? '',
    selectorSetKey(e.selectors),
    e.x509SvidTtlSeconds,
    e.allowedScopes,
    e.maxDelegationDepth,
    e.allowedDelegates,
    e.admin,
    e.dnsNames,
    e.expiresAt ?? null,
    e.canAssertPrincipal,
    e.createdAt,
    e.updatedAt,
    e.revision,
    e.federatesWith ?? [],
  ];
}

function pgEntryFromRow(row: PgEntryRow): Entry {
  return entryFromRow(
    row,
    (row.selectors ?? []).map(([type, value]) => ({ type, value })),
  );
}
