/**
 * The one rule between a domain record's fields and its table's columns, which every table of both stores follows:
 * a field's column is the field's name in snake_case (`x509SvidTtlSeconds` → `x509_svid_ttl_seconds`), and an
 * optional field that is absent is a NULL column. The few columns that break the rule (an entry's '' parent, a
 * session's principal in three columns) are mapped by hand in src/store/rows.ts.
 */

/** A field's column name, as a type: `spiffeId` → `spiffe_id`. */
export type ColumnName<F extends string> = F extends `${infer H}${infer T}`
  ? `${H extends Lowercase<H> ? H : `_${Lowercase<H>}`}${ColumnName<T>}`
  : F;

/** A field's column name: `spiffeId` → `spiffe_id`. */
export function columnName(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The words of a space-separated list, as a union type. */
type Words<S extends string> = S extends `${infer H} ${infer T}` ? H | Words<T> : S;

/**
 * The fields of record R named in `list`, space-separated, in the order the record lists them; a name that is not
 * a field of R does not compile.
 */
export function fieldsOf<R>() {
  return <S extends string>(
    list: S & (Words<S> extends keyof R & string ? unknown : { unknownField: Exclude<Words<S>, keyof R> }),
  ): readonly Words<S>[] => list.split(' ') as Words<S>[];
}

/** The keys of R's optional fields. */
type OptionalKeys<R> = { [K in keyof R]-?: object extends Pick<R, K> ? K : never }[keyof R];

/** The decoded row (src/store/rows.ts) that holds fields F of record R: each under its column, NULL when absent. */
export type RowOf<R, F extends keyof R & string> = {
  [K in F as ColumnName<K>]-?: K extends OptionalKeys<R> ? Exclude<R[K], undefined> | null : R[K];
};

/** The fields a mapper derives from a row other than by the rule (undefined: the field is absent). */
export type DerivedFields<R> = { [K in keyof R]?: R[K] | undefined };

/**
 * The mapper from a decoded row to record R, for `fields` in the order the record lists them. Each field comes from
 * `derive` when that names it, else from its column; NULL (or undefined) leaves it absent.
 */
export function recordFromRow<R, Row extends object>(
  fields: readonly (keyof R & string)[],
  derive?: (row: Row) => DerivedFields<R>,
): (row: Row) => R {
  const columns = fields.map((f) => [f, columnName(f)] as const);
  return (row) => {
    const source = row as Record<string, unknown>;
    const derived = derive?.(row);
    const out: Record<string, unknown> = {};
    for (const [field, column] of columns) {
      const v = derived !== undefined && field in derived ? derived[field] : source[column];
      if (v !== null && v !== undefined) out[field] = v;
    }
    return out as R;
  };
}

/**
 * The column values of `record`'s `fields`, keyed by column, in the order of `fields`: an absent field is null.
 * A store encodes them for its driver (SQLite: src/store/sqlite/codec.ts) and binds them by name or in order.
 */
export function columnValues<R extends object>(
  record: R,
  fields: readonly (keyof R & string)[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) out[columnName(f)] = record[f] ?? null;
  return out;
}
