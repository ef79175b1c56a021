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
import type { Runner, Sql } from './sql';

/** Federation relationships and the foreign bundles fetched for them: the same contract as SqliteFederation. */
export class PgFederation {
  constructor(
    private readonly run: Runner,
    private readonly now: () => Date,
  ) {}

  create(
    fields: FederationRelationshipFields,
    bootstrap?: FederatedBundleUpdate,
  ): Promise<FederationRelationshipRecord> {
    return this.run.write(async (sql) => {
      if (
        (
          await sql.query('SELECT 1 FROM federation_relationships WHERE trust_domain = $1', [
            fields.trustDomain,
          ])
        ).rowCount
      ) {
        throw relationshipExists(fields.trustDomain);
      }
      const now = this.now();
      const record = newRelationship(fields, now);
      await sql.query(
        `INSERT INTO federation_relationships (trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id,
           web_trust_roots_pem, created_at, updated_at, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        toParams(record),
      );
      if (bootstrap !== undefined) await putBundle(sql, fields.trustDomain, bootstrap, now);
      return record;
    });
  }

  get(trustDomain: string): Promise<FederationRelationshipRecord> {
    return this.run.read((sql) => getRelationship(sql, trustDomain));
  }

  list(): Promise<FederationRelationshipRecord[]> {
    return this.run.read(async (sql) =>
      (
        await sql.query<RelationshipRow>('SELECT * FROM federation_relationships ORDER BY trust_domain')
      ).rows.map(relationshipFromRow),
    );
  }

  update(
    trustDomain: string,
    patch: FederationRelationshipPatch,
    expectedRevision: number,
  ): Promise<FederationRelationshipRecord> {
    return this.run.write(async (sql) => {
      const current = await getRelationship(sql, trustDomain);
      const next = patchRelationship(current, patch, expectedRevision, this.now());
      const params = toParams(next);
      params.splice(5, 1);
      await sql.query(
        `UPDATE federation_relationships SET bundle_endpoint_url = $2, profile = $3, endpoint_spiffe_id = $4,
           web_trust_roots_pem = $5, updated_at = $6, revision = $7 WHERE trust_domain = $1`,
        params,
      );
      return next;
    });
  }

  delete(trustDomain: string, expectedRevision?: number): Promise<void> {
    return this.run.write(async (sql) => {
      const current = await getRelationship(sql, trustDomain);
      assertRevision(`federation relationship "${trustDomain}"`, current, expectedRevision, 'not deleted');
      const users = (
        await sql.query<{ id: string }>(
          'SELECT id FROM entries WHERE $1 = ANY(federates_with) ORDER BY id LIMIT 11',
          [trustDomain],
        )
      ).rows.map((r) => r.id);
      assertRelationshipUnused(trustDomain, users);
      await sql.query('DELETE FROM federation_relationships WHERE trust_domain = $1', [trustDomain]);
    });
  }

  getBundle(trustDomain: string): Promise<FederatedBundleRecord | undefined> {
    return this.run.read(async (sql) => {
      const row = (
        await sql.query<FederatedBundleRow>('SELECT * FROM federated_bundles WHERE trust_domain = $1', [
          trustDomain,
        ])
      ).rows[0];
      return row ? federatedBundleFromRow(row) : undefined;
    });
  }

  put(trustDomain: string, update: FederatedBundleUpdate, now: Date): Promise<FederatedBundleRecord> {
    return this.run.write((sql) => putBundle(sql, trustDomain, update, now));
  }

  recordFailure(trustDomain: string, error: string, now: Date): Promise<void> {
    return this.run.write(async (sql) => {
      await sql.query(
        'UPDATE federated_bundles SET last_attempt_at = $1, last_error = $2 WHERE trust_domain = $3',
        [now, error.slice(0, 1024), trustDomain],
      );
    });
  }
}

async function getRelationship(sql: Sql, trustDomain: string): Promise<FederationRelationshipRecord> {
  const row = (
    await sql.query<RelationshipRow>('SELECT * FROM federation_relationships WHERE trust_domain = $1', [
      trustDomain,
    ])
  ).rows[0];
  if (!row) throw relationshipNotFound(trustDomain);
  return relationshipFromRow(row);
}

async function putBundle(
  sql: Sql,
  trustDomain: string,
  update: FederatedBundleUpdate,
  now: Date,
): Promise<FederatedBundleRecord> {
  await getRelationship(sql, trustDomain);
  const previous = (
    await sql.query<FederatedBundleRow>('SELECT * FROM federated_bundles WHERE trust_domain = $1', [
      trustDomain,
    ])
  ).rows[0];
  const record = nextFederatedBundle(trustDomain, previous, update, now);
  await sql.query(
    `INSERT INTO federated_bundles (trust_domain, bundle_json, sequence, refresh_hint_seconds, updated_at,
       last_success_at, last_attempt_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (trust_domain) DO UPDATE SET bundle_json = excluded.bundle_json, sequence = excluded.sequence,
       refresh_hint_seconds = excluded.refresh_hint_seconds, updated_at = excluded.updated_at,
       last_success_at = excluded.last_success_at, last_attempt_at = excluded.last_attempt_at,
       last_error = excluded.last_error`,
    [
      trustDomain,
      record.bundleJson,
      record.sequence ?? null,
      record.refreshHintSeconds ?? null,
      now,
      record.lastSuccessAt ?? null,
      record.lastAttemptAt ?? null,
      record.lastError,
    ],
  );
  return record;
}

/** trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id, web_trust_roots_pem, created_at, updated_at, revision */
function toParams(r: FederationRelationshipRecord): unknown[] {
  return [
    r.trustDomain,
    r.bundleEndpointUrl,
    r.profile,
    r.endpointSpiffeId ?? null,
    r.webTrustRootsPem ?? null,
    r.createdAt,
    r.updatedAt,
    r.revision,
  ];
}
