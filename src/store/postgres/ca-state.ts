import { AlreadyExistsError, NotFoundError } from '../../errors';
import { ParsedCertificate } from '../../x509/certificate';
import type { BundleRecord, BundleUpdate, CaAuthorityRecord } from '../types';
import { isUniqueViolation, type Runner } from './sql';
import { bundleFromRow, caFromRow, type BundleRow, type CaRow } from '../rows';

/** Channel of the notification setBundle sends (payload: server id, tab, trust domain). */
export const BUNDLE_CHANNEL = 'lanyard_bundle';

/**
 * CA authorities and trust bundles in PostgreSQL. Each server (serverId) sees and changes only its own CA
 * authorities; setBundle records the roots this server needs and publishes the union of every server's.
 */
export class PgCaState {
  constructor(
    private readonly run: Runner,
    private readonly now: () => Date,
    private readonly serverId: string,
  ) {}

  putCaAuthority(r: CaAuthorityRecord): Promise<void> {
    return this.run.write(async (sql) => {
      try {
        await sql
          .query(
            `INSERT INTO ca_authorities (id, status, cert_der, upstream_chain_der, key_ref, not_before, not_after,
             created_at, activated_at, server_id)
           VALUES ($1, $2, $3, $4::bytea[], $5, $6, $7, $8, $9, $10)
           ON CONFLICT (id) DO UPDATE SET status = excluded.status, cert_der = excluded.cert_der,
             upstream_chain_der = excluded.upstream_chain_der, key_ref = excluded.key_ref,
             not_before = excluded.not_before, not_after = excluded.not_after, created_at = excluded.created_at,
             activated_at = excluded.activated_at
           WHERE ca_authorities.server_id = excluded.server_id`,
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
              this.serverId,
            ],
          )
          .then((result) => {
            // The id is another server's CA: never overwritten (ids are random, so this is a bug, not a race).
            if (result.rowCount !== 1)
              throw new AlreadyExistsError(`CA authority ${r.id} belongs to another server`);
          });
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

  getCaAuthority(id: string): Promise<CaAuthorityRecord> {
    return this.run.read(async (sql) => {
      const row = (
        await sql.query<CaRow>('SELECT * FROM ca_authorities WHERE id = $1 AND server_id = $2', [
          id,
          this.serverId,
        ])
      ).rows[0];
      if (!row) throw new NotFoundError(`no CA authority with id ${JSON.stringify(id)}`);
      return caFromRow(row);
    });
  }

  listCaAuthorities(): Promise<CaAuthorityRecord[]> {
    return this.run.read(async (sql) =>
      (
        await sql.query<CaRow>('SELECT * FROM ca_authorities WHERE server_id = $1 ORDER BY not_before, id', [
          this.serverId,
        ])
      ).rows.map(caFromRow),
    );
  }

  deleteCaAuthority(id: string): Promise<void> {
    return this.run.write(async (sql) => {
      const deleted = await sql.query('DELETE FROM ca_authorities WHERE id = $1 AND server_id = $2', [
        id,
        this.serverId,
      ]);
      if (deleted.rowCount !== 1) {
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
      const now = this.now();
      await sql.query(
        `INSERT INTO bundle_parts (trust_domain, server_id, x509_authorities_der, refresh_hint_seconds, updated_at)
         VALUES ($1, $2, $3::bytea[], $4, $5)
         ON CONFLICT (trust_domain, server_id) DO UPDATE SET x509_authorities_der = excluded.x509_authorities_der,
           refresh_hint_seconds = excluded.refresh_hint_seconds, updated_at = excluded.updated_at`,
        [trustDomain, this.serverId, update.x509AuthoritiesDer, update.refreshHintSeconds, now],
      );
      const { rows: parts } = await sql.query<{
        server_id: string;
        x509_authorities_der: Buffer[];
        refresh_hint_seconds: number;
      }>(
        `SELECT server_id, x509_authorities_der, refresh_hint_seconds FROM bundle_parts WHERE trust_domain = $1
         ORDER BY server_id = $2 DESC, server_id`,
        [trustDomain, this.serverId],
      );
      const union = unionOfRoots(
        parts.map((p) =>
          p.server_id === this.serverId ? update.x509AuthoritiesDer : p.x509_authorities_der,
        ),
        now,
      );
      const refreshHint = Math.min(...parts.map((p) => p.refresh_hint_seconds));
      // One statement reads the old sequence and writes the next: two writers can never publish the same one.
      const { rows } = await sql.query<BundleRow>(
        `INSERT INTO bundles (trust_domain, sequence, x509_authorities_der, refresh_hint_seconds, updated_at)
         VALUES ($1, 1, $2::bytea[], $3, $4)
         ON CONFLICT (trust_domain) DO UPDATE SET sequence = bundles.sequence + 1,
           x509_authorities_der = excluded.x509_authorities_der,
           refresh_hint_seconds = excluded.refresh_hint_seconds, updated_at = excluded.updated_at
         RETURNING *`,
        [trustDomain, union, refreshHint, now],
      );
      const row = rows[0];
      if (!row) throw new Error('the bundle upsert returned no row');
      // Delivered at commit, to every other server listening: their bundles and WatchBundle streams follow.
      await sql.query('SELECT pg_notify($1, $2)', [BUNDLE_CHANNEL, `${this.serverId}\t${trustDomain}`]);
      return bundleFromRow(row);
    });
  }
}

/**
 * The roots of every part, this server's first and in its order (so a single server's bundle is exactly what it
 * set), each once, leaving out another server's roots that have expired: a server removed for good drops out of
 * the bundle once its CAs can no longer have valid SVIDs.
 */
function unionOfRoots(parts: readonly (readonly Buffer[])[], now: Date): Buffer[] {
  const seen = new Set<string>();
  const out: Buffer[] = [];
  parts.forEach((ders, i) => {
    for (const der of ders) {
      const key = der.toString('base64');
      if (seen.has(key)) continue;
      if (i > 0 && ParsedCertificate.fromDer(der).notAfter.getTime() <= now.getTime()) continue;
      seen.add(key);
      out.push(Buffer.from(der));
    }
  });
  return out;
}
