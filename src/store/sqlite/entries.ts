import type Database from 'better-sqlite3';
import { InvalidArgumentError, NotFoundError } from '../../errors';
import { assertRevision } from '../revision';
import { decodeEntryCursor, encodeEntryCursor } from '../page-token';
import { prefixRange } from '../prefix-range';
import { canonicalSelectors, selectorSetKey } from '../selectors';
import { MAX_PAGE_SIZE } from '../store';
import type { Entry, EntryFilter, EntryPage, EntryPatch, NewEntry, PageRequest, Selector } from '../types';
import { isConstraintError, stringsToJson, toMs, rowDecoder, type SqliteRow } from './codec';
import { assertEntryUnique, entryFromRow, newEntry, patchEntry } from '../rows';
import type { EntryRow } from '../rows';

interface SelectorRow {
  entry_id: string;
  type: string;
  value: string;
}

/**
 * Registration entries on one SQLite connection. Methods are synchronous and each runs in its own
 * transaction (a savepoint when the caller already opened one), so a failure leaves nothing behind.
 * Writes begin IMMEDIATE: a deferred transaction that reads first and then writes fails with SQLITE_BUSY
 * (no retry) in WAL mode when another connection committed in between.
 */
export class SqliteEntries {
  private readonly insertEntry: Database.Statement;
  private readonly insertSelector: Database.Statement;
  private readonly deleteSelectors: Database.Statement;
  private readonly selectById: Database.Statement<[string], SqliteRow<EntryRow>>;
  private readonly selectSelectors: Database.Statement<[string], SelectorRow>;
  private readonly selectPageSelectors: Database.Statement<[string], SelectorRow>;
  private readonly selectDuplicate: Database.Statement<[string, string, string], { id: string }>;
  private readonly updateRow: Database.Statement;
  private readonly deleteRow: Database.Statement;

  constructor(
    private readonly db: Database.Database,
    private readonly now: () => Date,
  ) {
    this.insertEntry = db.prepare(`INSERT INTO entries (
        id, spiffe_id, parent_id, selectors_key, x509_svid_ttl_seconds, allowed_scopes, max_delegation_depth,
        allowed_delegates, admin, dns_names, expires_at, can_assert_principal, federates_with, created_at,
        updated_at, revision)
      VALUES (@id, @spiffe_id, @parent_id, @selectors_key, @x509_svid_ttl_seconds, @allowed_scopes,
        @max_delegation_depth, @allowed_delegates, @admin, @dns_names, @expires_at, @can_assert_principal,
        @federates_with, @created_at, @updated_at, @revision)`);
    this.insertSelector = db.prepare('INSERT INTO entry_selectors (entry_id, type, value) VALUES (?, ?, ?)');
    this.deleteSelectors = db.prepare('DELETE FROM entry_selectors WHERE entry_id = ?');
    this.selectById = db.prepare('SELECT * FROM entries WHERE id = ?');
    this.selectSelectors = db.prepare(
      'SELECT entry_id, type, value FROM entry_selectors WHERE entry_id = ? ORDER BY type, value',
    );
    // A page's selectors in one indexed query (the primary key's order), not one query per entry.
    this.selectPageSelectors = db.prepare(
      `SELECT entry_id, type, value FROM entry_selectors
        WHERE entry_id IN (SELECT value FROM json_each(?)) ORDER BY entry_id, type, value`,
    );
    this.selectDuplicate = db.prepare(
      'SELECT id FROM entries WHERE spiffe_id = ? AND parent_id = ? AND selectors_key = ?',
    );
    this.updateRow = db.prepare(`UPDATE entries SET
        spiffe_id = @spiffe_id, parent_id = @parent_id, selectors_key = @selectors_key,
        x509_svid_ttl_seconds = @x509_svid_ttl_seconds, allowed_scopes = @allowed_scopes,
        max_delegation_depth = @max_delegation_depth, allowed_delegates = @allowed_delegates, admin = @admin,
        dns_names = @dns_names, expires_at = @expires_at, can_assert_principal = @can_assert_principal,
        federates_with = @federates_with, updated_at = @updated_at, revision = @revision
      WHERE id = @id AND revision = @expected_revision`);
    this.deleteRow = db.prepare('DELETE FROM entries WHERE id = ?');
  }

  createEntry(input: NewEntry): Entry {
    return this.db
      .transaction((): Entry => {
        const entry = newEntry(input, this.now());
        this.assertNoDuplicate(entry, this.selectById.get(entry.id) !== undefined);
        this.insertEntry.run(toRow(entry));
        this.writeSelectors(entry);
        return entry;
      })
      .immediate();
  }

  getEntry(id: string): Entry {
    const row = this.selectById.get(id);
    if (!row) throw notFound(id);
    return this.fromRow(row);
  }

  updateEntry(id: string, patch: EntryPatch, expectedRevision: number): Entry {
    return this.db
      .transaction((): Entry => {
        const next = patchEntry(this.getEntry(id), patch, expectedRevision, this.now());
        this.assertNoDuplicate(next);
        const result = this.updateRow.run({ ...toRow(next), expected_revision: expectedRevision });
        // The revision check above ran in this transaction, so this can only fail if the row vanished.
        if (result.changes !== 1) throw notFound(id);
        this.deleteSelectors.run(id);
        this.writeSelectors(next);
        return next;
      })
      .immediate();
  }

  deleteEntry(id: string, expectedRevision?: number): void {
    this.db
      .transaction(() => {
        const current = this.getEntry(id);
        assertRevision(`entry ${JSON.stringify(id)}`, current, expectedRevision, 'not deleted');
        this.deleteRow.run(id);
      })
      .immediate();
  }

  listEntries(filter: EntryFilter, page: PageRequest): EntryPage {
    if (!Number.isInteger(page.pageSize) || page.pageSize < 1) {
      throw new InvalidArgumentError(`page size must be a positive integer, got ${page.pageSize}`);
    }
    const limit = Math.min(page.pageSize, MAX_PAGE_SIZE);
    const where: string[] = [];
    const params: Record<string, string | number> = { limit: limit + 1 };
    let cte = '';

    if (filter.spiffeId !== undefined) {
      where.push('e.spiffe_id = @spiffe_id');
      params.spiffe_id = filter.spiffeId;
    }
    if (filter.spiffeIdPrefix) {
      // A range on the index bounds the scan to the IDs with the prefix; substr() (not LIKE, where % and _ are
      // wildcards) is the exact test.
      const range = prefixRange(filter.spiffeIdPrefix);
      where.push('e.spiffe_id >= @prefix', 'substr(e.spiffe_id, 1, length(@prefix)) = @prefix');
      params.prefix = filter.spiffeIdPrefix;
      if (range.end !== undefined) {
        where.push('e.spiffe_id < @prefix_end');
        params.prefix_end = range.end;
      }
    }
    if (filter.parentId !== undefined) {
      where.push('e.parent_id = @parent_id');
      params.parent_id = filter.parentId;
    }
    if (filter.notExpiredAt) {
      where.push('(e.expires_at IS NULL OR e.expires_at > @not_expired_at)');
      params.not_expired_at = toMs(filter.notExpiredAt);
    }
    if (filter.selectors) {
      const wanted = canonicalSelectors(filter.selectors.selectors);
      params.wanted = JSON.stringify(wanted.map((s) => [s.type, s.value]));
      params.wanted_count = wanted.length;
      params.wanted_key = selectorSetKey(wanted);
      cte = `WITH wanted (type, value) AS (
          SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(@wanted))`;
      where.push(selectorCondition(filter.selectors.match, wanted.length > 0));
    }
    if (page.pageToken) {
      const after = decodeEntryCursor(page.pageToken);
      where.push('(e.spiffe_id, e.id) > (@after_spiffe_id, @after_id)');
      params.after_spiffe_id = after.spiffeId;
      params.after_id = after.id;
    }

    const sql = `${cte} SELECT e.* FROM entries e
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY e.spiffe_id, e.id LIMIT @limit`;
    // One read transaction, so the page and its selectors come from the same snapshot.
    return this.db.transaction((): EntryPage => {
      const rows = this.db.prepare<[Record<string, string | number>], SqliteRow<EntryRow>>(sql).all(params);
      const more = rows.length > limit;
      const pageRows = rows.slice(0, limit);
      const selectors = this.pageSelectors(pageRows.map((r) => r.id));
      const entries = pageRows.map((r) => entryFromRow(decodeEntry(r), selectors.get(r.id) ?? []));
      const last = entries[entries.length - 1];
      return { entries, nextPageToken: more && last ? encodeEntryCursor(last) : '' };
    })();
  }

  /** The selectors of the given entries, each list in canonical order. */
  private pageSelectors(ids: readonly string[]): Map<string, Selector[]> {
    const out = new Map<string, Selector[]>();
    if (ids.length === 0) return out;
    for (const s of this.selectPageSelectors.all(JSON.stringify(ids))) {
      let list = out.get(s.entry_id);
      if (list === undefined) out.set(s.entry_id, (list = []));
      list.push({ type: s.type, value: s.value });
    }
    return out;
  }

  private assertNoDuplicate(entry: Entry, idTaken = false): void {
    assertEntryUnique(
      entry,
      this.selectDuplicate.get(entry.spiffeId, entry.parentId ?? '', selectorSetKey(entry.selectors)),
      idTaken,
    );
  }

  private writeSelectors(entry: Entry): void {
    for (const s of entry.selectors) {
      try {
        this.insertSelector.run(entry.id, s.type, s.value);
      } catch (e) {
        // Selectors are de-duplicated by normaliseEntryFields(), so this is a bug, not bad input.
        if (isConstraintError(e))
          throw new Error(`duplicate selector row for entry ${entry.id}`, { cause: e });
        throw e;
      }
    }
  }

  private fromRow(row: SqliteRow<EntryRow>): Entry {
    const selectors = this.selectSelectors.all(row.id).map((s) => ({ type: s.type, value: s.value }));
    return entryFromRow(decodeEntry(row), selectors);
  }
}

/**
 * S is the entry's selector set, F the filter's (the `wanted` CTE). With a non-empty F, the candidates for
 * subset, superset and any are the entries holding at least one selector of F, found through the selector index
 * (`e.id IN candidates`), so the entries that share none of them are never read.
 */
function selectorCondition(match: 'exact' | 'subset' | 'superset' | 'any', wantedAny: boolean): string {
  const candidates = `e.id IN (SELECT s.entry_id FROM wanted w CROSS JOIN entry_selectors s
      WHERE s.type = w.type AND s.value = w.value)`;
  const inWanted = 'EXISTS (SELECT 1 FROM wanted w WHERE w.type = s.type AND w.value = s.value)';
  const subset = `NOT EXISTS (SELECT 1 FROM entry_selectors s WHERE s.entry_id = e.id AND NOT ${inWanted})`;
  const superset = `(SELECT COUNT(*) FROM entry_selectors s WHERE s.entry_id = e.id AND ${inWanted}) = @wanted_count`;
  switch (match) {
    case 'exact':
      return 'e.selectors_key = @wanted_key';
    case 'subset':
      // Being a candidate also keeps a selector-less (join-token-only) entry out of every match: the empty set
      // is a subset of anything, which would hand it to any workload. An empty F is a superset of no set but
      // the empty one, so it matches nothing.
      return wantedAny ? `${candidates} AND ${subset}` : '0';
    case 'superset':
      // Every set is a superset of the empty one; only a non-empty F can use the candidates.
      return wantedAny ? `${candidates} AND ${superset}` : '1';
    case 'any':
      return wantedAny ? candidates : '0';
  }
}

function toRow(e: Entry): Record<string, string | number | null> {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
    parent_id: e.parentId ?? '',
    selectors_key: selectorSetKey(e.selectors),
    x509_svid_ttl_seconds: e.x509SvidTtlSeconds,
    allowed_scopes: stringsToJson(e.allowedScopes),
    max_delegation_depth: e.maxDelegationDepth,
    allowed_delegates: stringsToJson(e.allowedDelegates),
    admin: e.admin ? 1 : 0,
    dns_names: stringsToJson(e.dnsNames),
    expires_at: e.expiresAt ? toMs(e.expiresAt) : null,
    can_assert_principal: e.canAssertPrincipal ? 1 : 0,
    federates_with: stringsToJson(e.federatesWith ?? []),
    created_at: toMs(e.createdAt),
    updated_at: toMs(e.updatedAt),
    revision: e.revision,
  };
}

function notFound(id: string): NotFoundError {
  return new NotFoundError(`no entry with id ${JSON.stringify(id)}`);
}

export const decodeEntry = rowDecoder<EntryRow>({
  allowed_scopes: 'strings',
  allowed_delegates: 'strings',
  admin: 'bool',
  dns_names: 'strings',
  expires_at: 'time',
  can_assert_principal: 'bool',
  federates_with: 'strings',
  created_at: 'time',
  updated_at: 'time',
});
