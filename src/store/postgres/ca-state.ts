import { AlreadyExistsError, NotFoundError } from '../../errors';
import type { BundleRecord, BundleUpdate, CaAuthorityRecord, CaAuthorityStatus } from '../types';
import { isUniqueViolation, optionalDate, type Runner } from './sql';

interface CaRow {
  id: string;
  status: CaAuthorityStatus;
  cert_der: Buffer;
  upstream_chain_der: Buffer[];
  key_ref: string;
  not_before: Date;
  not_after: Date;
  created_at: Date;
  activated_at: Date | null;
}

interface BundleRow {
  trust_domain: string;
  sequence: number;
  x509_authorities_der: Buffer[];
  refresh_hint_seconds: number;
  updated_at: Date;
}

/** CA authorities and trust bundles in PostgreSQL. */
export class PgCaState {
  constructor(
    private readonly run: Runner,
    private readonly now: () => Date,
  ) {}

  putAuthority(r: CaAuthorityRecord): Promise<void> {
    return this.run.write(async (sql) => {
      try {
        await sql.query(
          `INSERT INTO ca_authorities (id, status, cert_der, upstream_chain_der, key_ref, not_before, not_after,
             created_at, activated_at)
           VALUES ($1, $2, $3, $4::bytea[], $5, $6, $7, $8, $9)
           ON CONFLICT (id) DO UPDATE SET status = excluded.status, cert_der = excluded.cert_der,
             upstream_chain_der = excluded.upstream_chain_der, key_ref = excluded.key_ref,
             not_before = excluded.not_before, not_after = excluded.not_after, created_at = excluded.created_at,
             activated_at = excluded.activated_at`,
          [
            r.id,
            r.status,
            r.certDer,
            r.upstreamChainDer,
            r.keyRef,
            r.notBefore,
            r.notAfter,
            r.createdAt,
            r.activatedAt ?? null,
          ],
        );
      } catch (e) {
        if (isUniqueViolation(e, 'ca_authorities_one_active')) {
          throw new AlreadyExistsError(
            `another CA authority is already active: retire it before activating ${r.id}`,
          );
        }
        throw e;
      }
    });
  }

  getAuthority(id: string): Promise<CaAuthorityRecord> {
    return this.run.read(async (sql) => {
      const row = (await sql.query<CaRow>('SELECT * FROM ca_authorities WHERE id = $1', [id])).rows[0];
      if (!row) throw new NotFoundError(`no CA authority with id ${JSON.stringify(id)}`);
      return caFromRow(row);
    });
  }

  listAuthorities(): Promise<CaAuthorityRecord[]> {
    return this.run.read(async (sql) =>
      (await sql.query<CaRow>('SELECT * FROM ca_authorities ORDER BY not_before, id')).rows.map(caFromRow),
    );
  }

  deleteAuthority(id: string): Promise<void> {
    return this.run.write(async (sql) => {
      if ((await sql.query('DELETE FROM ca_authorities WHERE id = $1', [id])).rowCount !== 1) {
        throw new NotFoundError(`no CA authority with id ${JSON.stringify(id)}`);
      }
    });
  }

  getBundle(trustDomain: string): Promise<BundleRecord | undefined> {
    return this.run.read(async (sql) => {
      const row = (await sql.query<BundleRow>('SELECT * FROM bundles WHERE trust_domain = $1', [trustDomain]))
        .rows[0];
      return row ? bundleFromRow(row) : undefined;
    });
  }

  setBundle(trustDomain: string, update: BundleUpdate): Promise<BundleRecord> {
    return this.run.write(async (sql) => {
      // One statement reads the old sequence and writes the next: two writers can never publish the same one.
      const { rows } = await sql.query<BundleRow>(
        `INSERT INTO bundles (trust_domain, sequence, x509_authorities_der, refresh_hint_seconds, updated_at)
         VALUES ($1, 1, $2::bytea[], $3, $4)
         ON CONFLICT (trust_domain) DO UPDATE SET sequence = bundles.sequence + 1,
           x509_authorities_der = excluded.x509_authorities_der,
           refresh_hint_seconds = excluded.refresh_hint_seconds, updated_at = excluded.updated_at
         RETURNING *`,
        [trustDomain, update.x509AuthoritiesDer, update.refreshHintSeconds, this.now()],
      );
      const row = rows[0];
      if (!row) throw new Error('the bundle upsert returned no row');
      return bundleFromRow(row);
    });
  }
}

function caFromRow(row: CaRow): CaAuthorityRecord {
  const record: CaAuthorityRecord = {
    id: row.id,
    status: row.status,
    certDer: row.cert_der,
    upstreamChainDer: row.upstream_chain_der,
    keyRef: row.key_ref,
    notBefore: row.not_before,
    notAfter: row.not_after,
    createdAt: row.created_at,
  };
  const activatedAt = optionalDate(row.activated_at);
  if (activatedAt) record.activatedAt = activatedAt;
  return record;
}

function bundleFromRow(row: BundleRow): BundleRecord {
  return {
    trustDomain: row.trust_domain,
    sequence: row.sequence,
    x509AuthoritiesDer: row.x509_authorities_der,
    refreshHintSeconds: row.refresh_hint_seconds,
    updatedAt: row.updated_at,
  };
}
