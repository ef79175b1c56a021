import type { PoolClient } from 'pg';
import { latestVersion, pendingMigrations, schemaMigrationsTable, type Migration } from '../migrations';
import {
  AUDIT_RECORD_INDEXES,
  AUDIT_RECORD_KEY_COLUMNS,
  ENTRY_LOOKUP_INDEXES,
  GRANT_MAX_DEPTH,
} from '../schema-parts';

/**
 * The PostgreSQL schema, as versioned migrations applied in order, each exactly once; a shipped migration is never
 * edited, a change is a new one at the end. PostgreSQL has its own numbering: version 1 is the whole schema the
 * SQLite store reached in its migration 6, in PostgreSQL's types.
 *
 * Conventions: instants are timestamptz (millisecond values round-trip exactly); lists of strings are text[] and
 * lists of DER are bytea[]; every text column that is sorted, compared as a range or paged on is COLLATE "C", so
 * order is by code point on every server whatever the database's locale (as in SQLite, and as the page tokens
 * assume).
 */
export const PG_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description:
      'entries, join tokens, CA state, sessions, grants, revocations, CRL number, audit trail, federation',
    sql: `
      CREATE TABLE entries (
        id TEXT COLLATE "C" PRIMARY KEY,
        spiffe_id TEXT COLLATE "C" NOT NULL,
        -- '' = no parent, so the uniqueness rule below also holds for entries without one.
        parent_id TEXT COLLATE "C" NOT NULL DEFAULT '',
        -- Canonical JSON of the selector set (src/store/selectors.ts): part of the uniqueness rule.
        selectors_key TEXT NOT NULL,
        x509_svid_ttl_seconds INTEGER NOT NULL,
        allowed_scopes TEXT[] NOT NULL,
        max_delegation_depth INTEGER NOT NULL,
        allowed_delegates TEXT[] NOT NULL,
        admin BOOLEAN NOT NULL,
        dns_names TEXT[] NOT NULL,
        expires_at TIMESTAMPTZ,
        can_assert_principal BOOLEAN NOT NULL,
        federates_with TEXT[] NOT NULL DEFAULT '{}',  -- trust domain names, sorted
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        revision INTEGER NOT NULL,
        CONSTRAINT entries_unique_identity UNIQUE (spiffe_id, parent_id, selectors_key)
      );
      CREATE INDEX entries_by_spiffe_id ON entries (spiffe_id, id);
      CREATE INDEX entries_by_parent_id ON entries (parent_id);

      CREATE TABLE entry_selectors (
        entry_id TEXT COLLATE "C" NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
        type TEXT COLLATE "C" NOT NULL,
        value TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (entry_id, type, value)
      );
      CREATE INDEX entry_selectors_by_selector ON entry_selectors (type, value);

      CREATE TABLE join_tokens (
        id TEXT PRIMARY KEY,
        token_hash BYTEA NOT NULL UNIQUE,  -- SHA-256 of the token; the token itself is never stored
        entry_id TEXT,
        spiffe_id TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        spent_at TIMESTAMPTZ
      );
      CREATE INDEX join_tokens_by_expiry ON join_tokens (expires_at);

      -- Each server sharing the database has its own signing CAs (its keys stay in its data dir): server_id is
      -- the id in that data dir, and a server sees only its own CAs.
      CREATE TABLE ca_authorities (
        id TEXT COLLATE "C" PRIMARY KEY,
        server_id TEXT COLLATE "C" NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('prepared', 'active', 'retired')),
        cert_der BYTEA NOT NULL,
        upstream_chain_der BYTEA[] NOT NULL,
        key_ref TEXT NOT NULL,
        not_before TIMESTAMPTZ NOT NULL,
        not_after TIMESTAMPTZ NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        activated_at TIMESTAMPTZ
      );
      -- Two active CAs of one server would make "which key signs" ambiguous.
      CREATE UNIQUE INDEX ca_authorities_one_active ON ca_authorities (server_id) WHERE status = 'active';

      -- The roots each server's CAs need in the bundle. The published bundle (bundles) is their union, so an SVID
      -- from any server verifies everywhere; a part's roots leave the union when they expire.
      CREATE TABLE bundle_parts (
        trust_domain TEXT NOT NULL,
        server_id TEXT COLLATE "C" NOT NULL,
        x509_authorities_der BYTEA[] NOT NULL,
        refresh_hint_seconds INTEGER NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (trust_domain, server_id)
      );

      CREATE TABLE bundles (
        trust_domain TEXT PRIMARY KEY,
        sequence BIGINT NOT NULL,
        x509_authorities_der BYTEA[] NOT NULL,
        refresh_hint_seconds INTEGER NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
      );

      CREATE TABLE sessions (
        id TEXT COLLATE "C" PRIMARY KEY,
        entry_id TEXT NOT NULL,            -- no foreign key: a deleted entry must not erase session history
        spiffe_id TEXT NOT NULL,
        root_session_id TEXT NOT NULL,
        parent_session_id TEXT COLLATE "C" REFERENCES sessions (id),
        principal_id TEXT NOT NULL,
        principal_issuer TEXT NOT NULL,
        principal_provenance TEXT NOT NULL,
        intent TEXT NOT NULL,
        scopes TEXT[] NOT NULL,
        depth INTEGER NOT NULL,
        depth_limit INTEGER NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        ended_at TIMESTAMPTZ,
        end_reason TEXT,
        opener_serial TEXT,
        parent_cert_serial TEXT
      );
      CREATE INDEX sessions_by_parent ON sessions (parent_session_id);
      CREATE INDEX sessions_by_expiry ON sessions (expires_at);
      CREATE INDEX sessions_by_entry ON sessions (entry_id, ended_at);

      CREATE TABLE session_certificates (
        session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions (id),
        serial_hex TEXT COLLATE "C" NOT NULL,
        not_after TIMESTAMPTZ NOT NULL,
        -- Issuance order: one sequence for all sessions keeps the order within each.
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (session_id, serial_hex)
      );
      CREATE INDEX session_certificates_by_serial ON session_certificates (serial_hex);

      CREATE TABLE grants (
        id TEXT PRIMARY KEY,
        parent_session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions (id),
        child_spiffe_id TEXT NOT NULL,
        scopes TEXT[] NOT NULL,
        not_after TIMESTAMPTZ NOT NULL,
        redeem_by TIMESTAMPTZ NOT NULL,
        binding_der BYTEA NOT NULL,
        signature BYTEA NOT NULL,
        parent_cert_der BYTEA NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        redeemed_at TIMESTAMPTZ,
        redeemed_session_id TEXT
      );
      CREATE INDEX grants_by_parent ON grants (parent_session_id);

      -- sequence comes from revocation_counter, taken under the store's write lock: gapless, never reused (also
      -- after pruning), and committed in sequence order, so a watcher resuming after a sequence misses nothing.
      CREATE TABLE revocations (
        sequence BIGINT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('certificate', 'session')),
        target_id TEXT COLLATE "C" NOT NULL,
        reason TEXT NOT NULL,
        revoked_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        cause_sequence BIGINT,
        UNIQUE (kind, target_id)
      );
      CREATE INDEX revocations_by_expiry ON revocations (expires_at);
      CREATE TABLE revocation_counter (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last BIGINT NOT NULL
      );
      INSERT INTO revocation_counter (id, last) VALUES (1, 0);

      -- RFC 5280 §5.2.3: cRLNumber grows with every CRL, across every CA key and every server of the database.
      CREATE TABLE crl_number (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last NUMERIC(40, 0) NOT NULL
      );
      INSERT INTO crl_number (id, last) VALUES (1, 0);

      -- The audit trail (see src/store/sqlite/audit.ts for the meaning of each column).
      CREATE TABLE audit_records (
        chain TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        time TEXT COLLATE "C" NOT NULL,    -- ISO 8601 UTC with ms: sorts as text
${AUDIT_RECORD_KEY_COLUMNS}
      );
${AUDIT_RECORD_INDEXES}

      CREATE TABLE audit_checkpoints (
        chain TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        head_hash TEXT NOT NULL,
        time TEXT COLLATE "C" NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL,
        PRIMARY KEY (chain, seq, time)
      );

      CREATE TABLE federation_relationships (
        trust_domain TEXT COLLATE "C" PRIMARY KEY,
        bundle_endpoint_url TEXT NOT NULL,
        profile TEXT NOT NULL CHECK (profile IN ('https_web', 'https_spiffe')),
        endpoint_spiffe_id TEXT,
        web_trust_roots_pem TEXT,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        revision INTEGER NOT NULL
      );
      CREATE TABLE federated_bundles (
        trust_domain TEXT COLLATE "C" PRIMARY KEY REFERENCES federation_relationships (trust_domain) ON DELETE CASCADE,
        bundle_json TEXT NOT NULL,
        sequence BIGINT,
        refresh_hint_seconds INTEGER,
        updated_at TIMESTAMPTZ NOT NULL,
        last_success_at TIMESTAMPTZ,
        last_attempt_at TIMESTAMPTZ,
        last_error TEXT NOT NULL DEFAULT ''
      );

      CREATE TABLE audit_chain_keys (
        chain TEXT COLLATE "C" PRIMARY KEY,
        public_jwk TEXT NOT NULL,
        pinned_at TIMESTAMPTZ NOT NULL
      );
    `,
  },
  {
    version: 2,
    description: "every server's audit key history: the servers sign checkpoints of one shared chain",
    sql: `
      -- Each server's signed key introductions (JSON), replaced when its key rotates. A verifier checks every
      -- history's signatures; the rows are not trusted for more than that (docs/operator/ha.md).
      CREATE TABLE audit_server_keys (
        server_id TEXT COLLATE "C" PRIMARY KEY,
        introductions_json TEXT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
      );
    `,
  },
  {
    version: 3,
    ...ENTRY_LOOKUP_INDEXES,
    sql: `${ENTRY_LOOKUP_INDEXES.sql}
      -- The entries holding a selector, from the index alone (an index-only scan).
      DROP INDEX entry_selectors_by_selector;
      CREATE INDEX entry_selectors_by_selector ON entry_selectors (type, value, entry_id);
    `,
  },
  { version: 4, ...GRANT_MAX_DEPTH },
];

export const PG_LATEST_SCHEMA_VERSION = latestVersion(PG_MIGRATIONS);

/**
 * Session-level advisory lock key for migrations ("lanyard" + 1): several servers starting on one fresh database
 * apply the migrations once, the others wait and then find them applied.
 */
const MIGRATION_LOCK_KEY = 0x6c616e79_0001n;

/**
 * Brings the database to PG_LATEST_SCHEMA_VERSION, each migration in its own transaction, under an advisory lock
 * held for the whole run. Returns the versions applied.
 * @throws StoreSchemaTooNewError when a newer Lanyard wrote the database.
 */
export async function migratePostgres(client: PoolClient, now: () => Date): Promise<number[]> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
  try {
    await client.query(schemaMigrationsTable('TIMESTAMPTZ'));
    const applied: number[] = [];
    for (const m of pendingMigrations(PG_MIGRATIONS, await pgSchemaVersion(client))) {
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query(
          'INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)',
          [m.version, m.description, now()],
        );
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK');
        throw e;
      }
      applied.push(m.version);
    }
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
  }
}

export async function pgSchemaVersion(client: Pick<PoolClient, 'query'>): Promise<number> {
  const { rows } = await client.query<{ v: number | null }>(
    'SELECT MAX(version)::int AS v FROM schema_migrations',
  );
  return rows[0]?.v ?? 0;
}
