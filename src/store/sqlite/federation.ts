import type Database from 'better-sqlite3';
import type {
  FederatedBundleRecord,
  FederatedBundleUpdate,
  FederationRelationshipFields,
  FederationRelationshipPatch,
  FederationRelationshipRecord,
} from '../types';
import { assertRevision } from '../revision';
import {
  assertRelationshipUnused,
  federatedBundleFromRow,
  newRelationship,
  nextFederatedBundle,
  patchRelationship,
  relationshipExists,
  relationshipFromRow,
  relationshipNotFound,
  type FederatedBundleRow,
  type RelationshipRow,
} from '../rows';
import { rowDecoder, toMs, type SqliteRow } from './codec';

/**
 * Federation relationships and the foreign bundles fetched for them, on one SQLite connection. Each write is
 * one IMMEDIATE transaction (a savepoint inside a caller's transaction): the sequence check and the write of
 * a bundle cannot interleave with another writer's.
 */
export class SqliteFederation {
  private readonly selectRelationship: Database.Statement<[string], SqliteRow<RelationshipRow>>;
  private readonly selectBundle: Database.Statement<[string], SqliteRow<FederatedBundleRow>>;

  constructor(
    private readonly db: Database.Database,
    private readonly now: () => Date,
  ) {
    this.selectRelationship = db.prepare('SELECT * FROM federation_relationships WHERE trust_domain = ?');
    this.selectBundle = db.prepare('SELECT * FROM federated_bundles WHERE trust_domain = ?');
  }

  create(
    fields: FederationRelationshipFields,
    bootstrap?: FederatedBundleUpdate,
  ): FederationRelationshipRecord {
    return this.db
      .transaction((): FederationRelationshipRecord => {
        if (this.selectRelationship.get(fields.trustDomain)) {
          throw relationshipExists(fields.trustDomain);
        }
        const now = this.now();
        const record = newRelationship(fields, now);
        this.db
          .prepare(
            `INSERT INTO federation_relationships (trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id,
               web_trust_roots_pem, created_at, updated_at, revision)
             VALUES (@trust_domain, @bundle_endpoint_url, @profile, @endpoint_spiffe_id, @web_trust_roots_pem,
               @created_at, @updated_at, @revision)`,
          )
          .run(toRow(record));
        if (bootstrap !== undefined) this.put(fields.trustDomain, bootstrap, now);
        return record;
      })
      .immediate();
  }

  get(trustDomain: string): FederationRelationshipRecord {
    const row = this.selectRelationship.get(trustDomain);
    if (!row) throw relationshipNotFound(trustDomain);
    return relationshipFromRow(decodeRelationship(row));
  }

  list(): FederationRelationshipRecord[] {
    return this.db
      .prepare<[], SqliteRow<RelationshipRow>>('SELECT * FROM federation_relationships ORDER BY trust_domain')
      .all()
      .map((row) => relationshipFromRow(decodeRelationship(row)));
  }

  update(
    trustDomain: string,
    patch: FederationRelationshipPatch,
    expectedRevision: number,
  ): FederationRelationshipRecord {
    return this.db
      .transaction((): FederationRelationshipRecord => {
        const current = this.get(trustDomain);
        const next = patchRelationship(current, patch, expectedRevision, this.now());
        this.db
          .prepare(
            `UPDATE federation_relationships SET bundle_endpoint_url = @bundle_endpoint_url, profile = @profile,
               endpoint_spiffe_id = @endpoint_spiffe_id, web_trust_roots_pem = @web_trust_roots_pem,
               updated_at = @updated_at, revision = @revision
             WHERE trust_domain = @trust_domain`,
          )
          .run(toRow(next));
        return next;
      })
      .immediate();
  }

  delete(trustDomain: string, expectedRevision?: number): void {
    this.db
      .transaction(() => {
        const current = this.get(trustDomain);
        assertRevision(`federation relationship "${trustDomain}"`, current, expectedRevision, 'not deleted');
        const users = this.db
          .prepare<[string], { id: string }>(
            `SELECT id FROM entries WHERE EXISTS (SELECT 1 FROM json_each(entries.federates_with) WHERE value = ?)
             ORDER BY id LIMIT 11`,
          )
          .all(trustDomain)
          .map((r) => r.id);
        assertRelationshipUnused(trustDomain, users);
        this.db.prepare('DELETE FROM federation_relationships WHERE trust_domain = ?').run(trustDomain);
      })
      .immediate();
  }

  getBundle(trustDomain: string): FederatedBundleRecord | undefined {
    const row = this.selectBundle.get(trustDomain);
    return row ? federatedBundleFromRow(decodeBundle(row)) : undefined;
  }

  put(trustDomain: string, update: FederatedBundleUpdate, now: Date): FederatedBundleRecord {
    return this.db
      .transaction((): FederatedBundleRecord => {
        this.get(trustDomain);
        const previous = this.selectBundle.get(trustDomain);
        const record = nextFederatedBundle(
          trustDomain,
          previous === undefined ? undefined : decodeBundle(previous),
          update,
          now,
        );
        this.db
          .prepare(
            `INSERT INTO federated_bundles (trust_domain, bundle_json, sequence, refresh_hint_seconds, updated_at,
               last_success_at, last_attempt_at, last_error)
             VALUES (@trust_domain, @bundle_json, @sequence, @refresh_hint_seconds, @updated_at,
               @last_success_at, @last_attempt_at, @last_error)
             ON CONFLICT (trust_domain) DO UPDATE SET bundle_json = excluded.bundle_json,
               sequence = excluded.sequence, refresh_hint_seconds = excluded.refresh_hint_seconds,
               updated_at = excluded.updated_at, last_success_at = excluded.last_success_at,
               last_attempt_at = excluded.last_attempt_at, last_error = excluded.last_error`,
          )
          .run({
            trust_domain: trustDomain,
            bundle_json: record.bundleJson,
            sequence: record.sequence ?? null,
            refresh_hint_seconds: record.refreshHintSeconds ?? null,
            updated_at: toMs(now),
            last_success_at: record.lastSuccessAt ? toMs(record.lastSuccessAt) : null,
            last_attempt_at: record.lastAttemptAt ? toMs(record.lastAttemptAt) : null,
            last_error: record.lastError,
          });
        return record;
      })
      .immediate();
  }

  recordFailure(trustDomain: string, error: string, now: Date): void {
    this.db
      .prepare('UPDATE federated_bundles SET last_attempt_at = ?, last_error = ? WHERE trust_domain = ?')
      .run(toMs(now), error.slice(0, 1024), trustDomain);
  }
}

function toRow(r: FederationRelationshipRecord): Record<string, string | number | null> {
  return {
    trust_domain: r.trustDomain,
    bundle_endpoint_url: r.bundleEndpointUrl,
    profile: r.profile,
    endpoint_spiffe_id: r.endpointSpiffeId ?? null,
    web_trust_roots_pem: r.webTrustRootsPem ?? null,
    created_at: toMs(r.createdAt),
    updated_at: toMs(r.updatedAt),
    revision: r.revision,
  };
}

const decodeRelationship = rowDecoder<RelationshipRow>({ created_at: 'time', updated_at: 'time' });
const decodeBundle = rowDecoder<FederatedBundleRow>({
  updated_at: 'time',
  last_success_at: 'time',
  last_attempt_at: 'time',
});
