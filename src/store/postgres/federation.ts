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
  federatedBundleColumns,
  federatedBundleFromRow,
  newRelationship,
  nextFederatedBundle,
  patchRelationship,
  relationshipColumns,
  relationshipExists,
  relationshipFromRow,
  relationshipNotFound,
  type FederatedBundleRow,
  type RelationshipRow,
} from '../rows';
import { insertRow, updateRow, upsertRow } from '../sql-text';
import { writeRow, type Runner, type Sql } from './sql';

/** Federation relationships and the foreign bundles fetched for them: the same contract as SqliteFederation. */
export class PgFederation {
  constructor(
    private readonly run: Runner,
    private readonly now: () => Date,
  ) {}

  createFederationRelationship(
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
      await writeRow(sql, insertRow('federation_relationships', relationshipColumns(record)));
      if (bootstrap !== undefined) await putBundle(sql, fields.trustDomain, bootstrap, now);
      return record;
    });
  }

  getFederationRelationship(trustDomain: string): Promise<FederationRelationshipRecord> {
    return this.run.read((sql) => getRelationship(sql, trustDomain));
  }

  listFederationRelationships(): Promise<FederationRelationshipRecord[]> {
    return this.run.read(async (sql) =>
      (
        await sql.query<RelationshipRow>('SELECT * FROM federation_relationships ORDER BY trust_domain')
      ).rows.map(relationshipFromRow),
    );
  }

  updateFederationRelationship(
    trustDomain: string,
    patch: FederationRelationshipPatch,
    expectedRevision: number,
  ): Promise<FederationRelationshipRecord> {
    return this.run.write(async (sql) => {
      const current = await getRelationship(sql, trustDomain);
      const next = patchRelationship(current, patch, expectedRevision, this.now());
      await writeRow(sql, updateRow('federation_relationships', 'trust_domain', relationshipColumns(next)));
      return next;
    });
  }

  deleteFederationRelationship(trustDomain: string, expectedRevision?: number): Promise<void> {
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

  getFederatedBundle(trustDomain: string): Promise<FederatedBundleRecord | undefined> {
    return this.run.read(async (sql) => {
      const row = (
        await sql.query<FederatedBundleRow>('SELECT * FROM federated_bundles WHERE trust_domain = $1', [
          trustDomain,
        ])
      ).rows[0];
      return row ? federatedBundleFromRow(row) : undefined;
    });
  }

  putFederatedBundle(
    trustDomain: string,
    update: FederatedBundleUpdate,
    now: Date,
  ): Promise<FederatedBundleRecord> {
    return this.run.write((sql) => putBundle(sql, trustDomain, update, now));
  }

  recordFederatedFetchFailure(trustDomain: string, error: string, now: Date): Promise<void> {
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
  await writeRow(sql, upsertRow('federated_bundles', 'trust_domain', federatedBundleColumns(record)));
  return record;
}
