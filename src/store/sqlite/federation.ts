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
import { StatementCache } from './statement-cache';
import { rowDecoder, toMs, type SqliteRow } from './codec';

/**
 * Federation relationships and the foreign bundles fetched for them, on one SQLite connection. Each write is
 * one IMMEDIATE transaction (a savepoint inside a caller's transaction): the sequence check and the write of
 * a bundle cannot interleave with another writer's.
 */
export class SqliteFederation {
  private readonly selectRelationship: Database.Statement<[string], SqliteRow<RelationshipRow>>;
  private readonly selectBundle: Database.Statement<[string], SqliteRow<FederatedBundleRow>>;
  private readonly statements: StatementCache;

  constructor(
    private readonly db: Database.Database,
    private readonly now: () => Date,
  ) {
    this.statements = new StatementCache(db);
    this.selectRelationship = db.prepare('SELECT * FROM federation_relationships WHERE trust_domain = ?');
    this.selectBundle = db.prepare('SELECT * FROM federated_bundles WHERE trust_domain = ?');
  }

  createFederationRelationship(
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
        this.statements.writeRow(insertRow('federation_relationships', relationshipColumns(record)));
        if (bootstrap !== undefined) this.putFederatedBundle(fields.trustDomain, bootstrap, now);
        return record;
      })
      .immediate();
  }

  getFederationRelationship(trustDomain: string): FederationRelationshipRecord {
    const row = this.selectRelationship.get(trustDomain);
    if (!row) throw relationshipNotFound(trustDomain);
    return relationshipFromRow(decodeRelationship(row));
  }

  listFederationRelationships(): FederationRelationshipRecord[] {
    return this.db
      .prepare<[], SqliteRow<RelationshipRow>>('SELECT * FROM federation_relationships ORDER BY trust_domain')
      .all()
      .map((row) => relationshipFromRow(decodeRelationship(row)));
  }

  updateFederationRelationship(
    trustDomain: string,
    patch: FederationRelationshipPatch,
    expectedRevision: number,
  ): FederationRelationshipRecord {
    return this.db
      .transaction((): FederationRelationshipRecord => {
        const current = this.getFederationRelationship(trustDomain);
        const next = patchRelationship(current, patch, expectedRevision, this.now());
        this.statements.writeRow(
          updateRow('federation_relationships', 'trust_domain', relationshipColumns(next)),
        );
        return next;
      })
      .immediate();
  }

  deleteFederationRelationship(trustDomain: string, expectedRevision?: number): void {
    this.db
      .transaction(() => {
        const current = this.getFederationRelationship(trustDomain);
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

  getFederatedBundle(trustDomain: string): FederatedBundleRecord | undefined {
    const row = this.selectBundle.get(trustDomain);
    return row ? federatedBundleFromRow(decodeBundle(row)) : undefined;
  }

  putFederatedBundle(trustDomain: string, update: FederatedBundleUpdate, now: Date): FederatedBundleRecord {
    return this.db
      .transaction((): FederatedBundleRecord => {
        this.getFederationRelationship(trustDomain);
        const previous = this.selectBundle.get(trustDomain);
        const record = nextFederatedBundle(
          trustDomain,
          previous === undefined ? undefined : decodeBundle(previous),
          update,
          now,
        );
        this.statements.writeRow(
          upsertRow('federated_bundles', 'trust_domain', federatedBundleColumns(record)),
        );
        return record;
      })
      .immediate();
  }

  recordFederatedFetchFailure(trustDomain: string, error: string, now: Date): void {
    this.db
      .prepare('UPDATE federated_bundles SET last_attempt_at = ?, last_error = ? WHERE trust_domain = ?')
      .run(toMs(now), error.slice(0, 1024), trustDomain);
  }
}

const decodeRelationship = rowDecoder<RelationshipRow>({ created_at: 'time', updated_at: 'time' });
const decodeBundle = rowDecoder<FederatedBundleRow>({
  updated_at: 'time',
  last_success_at: 'time',
  last_attempt_at: 'time',
});
