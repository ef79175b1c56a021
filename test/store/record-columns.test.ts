import * as assert from 'node:assert/strict';
import { columnName, columnValues, fieldsOf, recordFromRow } from '../../src/store/record-columns';
import { insertRow, updateRow, upsertRow } from '../../src/store/sql-text';
import { encodeColumns } from '../../src/store/sqlite/codec';

interface Sample {
  id: string;
  x509SvidTtlSeconds: number;
  scopes: string[];
  expiresAt?: Date;
}

const FIELDS = fieldsOf<Sample>()('id x509SvidTtlSeconds scopes expiresAt');

describe('record columns', () => {
  it('names a column by its field in snake_case', () => {
    assert.equal(columnName('x509SvidTtlSeconds'), 'x509_svid_ttl_seconds');
    assert.equal(columnName('id'), 'id');
  });

  it('reads a NULL column as an absent field and keeps the fields in record order', () => {
    const fromRow = recordFromRow<Sample, object>(FIELDS);
    const row = { scopes: ['a'], expires_at: null, id: 'e1', x509_svid_ttl_seconds: 60, extra: 'x' };
    const record = fromRow(row);
    assert.deepEqual(record, { id: 'e1', x509SvidTtlSeconds: 60, scopes: ['a'] });
    assert.ok(!('expiresAt' in record));
    assert.deepEqual(Object.keys(record), ['id', 'x509SvidTtlSeconds', 'scopes']);
  });

  it('takes a derived field instead of its column', () => {
    const fromRow = recordFromRow<Sample, { id: string }>(FIELDS, (row) => ({ id: row.id.toUpperCase() }));
    assert.equal(
      fromRow({ id: 'e1', x509_svid_ttl_seconds: 1, scopes: [], expires_at: null } as never).id,
      'E1',
    );
  });

  it('writes an absent field as NULL, and a row back to the same record', () => {
    const at = new Date(1_700_000_000_123);
    const values = columnValues<Sample>({ id: 'e1', x509SvidTtlSeconds: 5, scopes: [] }, FIELDS);
    assert.deepEqual(values, { id: 'e1', x509_svid_ttl_seconds: 5, scopes: [], expires_at: null });
    const full: Sample = { id: 'e2', x509SvidTtlSeconds: 5, scopes: ['s'], expiresAt: at };
    assert.deepEqual(recordFromRow<Sample, object>(FIELDS)(columnValues(full, FIELDS)), full);
  });

  it('encodes column values as SQLite stores them', () => {
    const der = Buffer.from([1, 2]);
    assert.deepEqual(
      encodeColumns({
        at: new Date(5),
        on: true,
        off: false,
        list: ['a'],
        ders: [der],
        none: [],
        bytes: der,
        n: null,
      }),
      { at: 5, on: 1, off: 0, list: '["a"]', ders: '["AQI="]', none: '[]', bytes: der, n: null },
    );
  });

  it('writes insert, update and upsert statements in each dialect', () => {
    const columns = { trust_domain: 'td', url: 'u', revision: 2 };
    const pg = (_c: string, i: number): string => `$${i}`;
    const named = (c: string): string => `@${c}`;
    assert.equal(
      insertRow('t', columns).text(pg),
      'INSERT INTO t (trust_domain, url, revision) VALUES ($1, $2, $3)',
    );
    assert.equal(
      updateRow('t', 'trust_domain', columns).text(pg),
      'UPDATE t SET url = $2, revision = $3 WHERE trust_domain = $1',
    );
    assert.equal(
      updateRow('t', 'trust_domain', columns).text(named),
      'UPDATE t SET url = @url, revision = @revision WHERE trust_domain = @trust_domain',
    );
    assert.equal(
      upsertRow('t', 'trust_domain', columns).text(named),
      'INSERT INTO t (trust_domain, url, revision) VALUES (@trust_domain, @url, @revision) ' +
        'ON CONFLICT (trust_domain) DO UPDATE SET url = excluded.url, revision = excluded.revision',
    );
  });
});
