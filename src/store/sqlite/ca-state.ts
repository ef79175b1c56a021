import type Database from 'better-sqlite3';
import { AlreadyExistsError, NotFoundError } from '../../errors';
import type { BundleRecord, BundleUpdate, CaAuthorityRecord } from '../types';
import { dersToJson, isConstraintError, toMs, rowDecoder, type SqliteRow } from './codec';
import { bundleFromRow, caFromRow, type BundleRow, type CaRow } from '../rows';

/** CA authorities and trust bundles on one SQLite connection. */
export class SqliteCaState {
  private readonly upsertCa: Database.Statement;
  private readonly selectCa: Database.Statement<[string], SqliteRow<CaRow>>;
  private readonly selectAllCa: Database.Statement<[], SqliteRow<CaRow>>;
  private readonly deleteCa: Database.Statement<[string]>;
  private readonly selectBundle: Database.Statement<[string], SqliteRow<BundleRow>>;
  private readonly upsertBundle: Database.Statement;

  constructor(
    private readonly db: Database.Database,
    private readonly now: () => Date,
  ) {
    this.upsertCa = db.prepare(`INSERT INTO ca_authorities (
        id, status, cert_der, upstream_chain_der, key_ref, not_before, not_after, created_at, activated_at)
      VALUES (@id, @status, @cert_der, @upstream_chain_der, @key_ref, @not_before, @not_after, @created_at,
        @activated_at)
      ON CONFLICT (id) DO UPDATE SET status = excluded.status, cert_der = excluded.cert_der,
        upstream_chain_der = excluded.upstream_chain_der, key_ref = excluded.key_ref,
        not_before = excluded.not_before, not_after = excluded.not_after, created_at = excluded.created_at,
        activated_at = excluded.activated_at`);
    this.selectCa = db.prepare('SELECT * FROM ca_authorities WHERE id = ?');
    this.selectAllCa = db.prepare('SELECT * FROM ca_authorities ORDER BY not_before, id');
    this.deleteCa = db.prepare('DELETE FROM ca_authorities WHERE id = ?');
    this.selectBundle = db.prepare('SELECT * FROM bundles WHERE trust_domain = ?');
    this.upsertBundle = db.prepare(`INSERT INTO bundles (
        trust_domain, sequence, x509_authorities_der, refresh_hint_seconds, updated_at)
      VALUES (@trust_domain, @sequence, @x509_authorities_der, @refresh_hint_seconds, @updated_at)
      ON CONFLICT (trust_domain) DO UPDATE SET sequence = excluded.sequence,
        x509_authorities_der = excluded.x509_authorities_der, refresh_hint_seconds = excluded.refresh_hint_seconds,
        updated_at = excluded.updated_at`);
  }

  putCaAuthority(r: CaAuthorityRecord): void {
    try {
      this.upsertCa.run({
        id: r.id,
        status: r.status,
        cert_der: r.certDer,
        upstream_chain_der: dersToJson(r.upstreamChainDer),
        key_ref: r.keyRef,
        not_before: toMs(r.notBefore),
        not_after: toMs(r.notAfter),
        created_at: toMs(r.createdAt),
        activated_at: r.activatedAt ? toMs(r.activatedAt) : null,
      });
    } catch (e) {
      if (isConstraintError(e)) {
        throw new AlreadyExistsError(
          `another CA authority is already active: retire it before activating ${r.id}`,
        );
      }
      throw e;
    }
  }

  getCaAuthority(id: string): CaAuthorityRecord {
    const row = this.selectCa.get(id);
    if (!row) throw new NotFoundError(`no CA authority with id ${JSON.stringify(id)}`);
    return caFromRow(decodeCa(row));
  }

  listCaAuthorities(): CaAuthorityRecord[] {
    return this.selectAllCa.all().map((row) => caFromRow(decodeCa(row)));
  }

  deleteCaAuthority(id: string): void {
    if (this.deleteCa.run(id).changes !== 1)
      throw new NotFoundError(`no CA authority with id ${JSON.stringify(id)}`);
  }

  getBundle(trustDomain: string): BundleRecord | undefined {
    const row = this.selectBundle.get(trustDomain);
    return row ? bundleFromRow(decodeBundle(row)) : undefined;
  }

  setBundle(trustDomain: string, update: BundleUpdate): BundleRecord {
    // Read and write in one transaction, so two writers can never publish the same sequence number.
    return this.db
      .transaction((): BundleRecord => {
        const previous = this.selectBundle.get(trustDomain);
        const record: BundleRecord = {
          trustDomain,
          sequence: (previous?.sequence ?? 0) + 1,
          x509AuthoritiesDer: update.x509AuthoritiesDer.map((b) => Buffer.from(b)),
          refreshHintSeconds: update.refreshHintSeconds,
          updatedAt: this.now(),
        };
        this.upsertBundle.run({
          trust_domain: trustDomain,
          sequence: record.sequence,
          x509_authorities_der: dersToJson(record.x509AuthoritiesDer),
          refresh_hint_seconds: record.refreshHintSeconds,
          updated_at: toMs(record.updatedAt),
        });
        return record;
      })
      .immediate();
  }
}

const decodeCa = rowDecoder<CaRow>({
  upstream_chain_der: 'ders',
  not_before: 'time',
  not_after: 'time',
  created_at: 'time',
  activated_at: 'time',
});
const decodeBundle = rowDecoder<BundleRow>({ x509_authorities_der: 'ders', updated_at: 'time' });
