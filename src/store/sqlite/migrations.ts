import type Database from 'better-sqlite3';
import { latestVersion, pendingMigrations, schemaMigrationsTable, type Migration } from '../migrations';
import {
  AUDIT_RECORD_INDEXES,
  AUDIT_RECORD_KEY_COLUMNS,
  ENTRY_LOOKUP_INDEXES,
  GRANT_MAX_DEPTH,
} from '../schema-parts';

/** The SQLite schema, as versioned migrations (src/store/migrations.ts). */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'registration entries, join tokens, CA authorities, bundles',
    sql: `
      CREATE TABLE entries (
        id TEXT PRIMARY KEY,
        spiffe_id TEXT NOT NULL,
        -- '' = no parent, so the uniqueness rule below also holds for entries without one.
        parent_id TEXT NOT NULL DEFAULT '',
        -- Canonical JSON of the selector set (src/store/selectors.ts): part of the uniqueness rule.
        selectors_key TEXT NOT NULL,
        x509_svid_ttl_seconds INTEGER NOT NULL,
        allowed_scopes TEXT NOT NULL,      -- JSON array of strings
        max_delegation_depth INTEGER NOT NULL,
        allowed_delegates TEXT NOT NULL,   -- JSON array of strings
        admin INTEGER NOT NULL,
        dns_names TEXT NOT NULL,           -- JSON array of strings
        expires_at INTEGER,                -- ms since the epoch; NULL = never
        can_assert_principal INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        UNIQUE (spiffe_id, parent_id, selectors_key)
      );
      -- List order and keyset pagination.
      CREATE INDEX entries_by_spiffe_id ON entries (spiffe_id, id);
      CREATE INDEX entries_by_parent_id ON entries (parent_id);

      -- The selectors again, one row each, so selector filters can use an index.
      CREATE TABLE entry_selectors (
        entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (entry_id, type, value)
      ) WITHOUT ROWID;
      CREATE INDEX entry_selectors_by_selector ON entry_selectors (type, value);

      CREATE TABLE join_tokens (
        id TEXT PRIMARY KEY,
        token_hash BLOB NOT NULL UNIQUE,   -- SHA-256 of the token; the token itself is never stored
        spiffe_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        spent_at INTEGER
      );
      CREATE INDEX join_tokens_by_expiry ON join_tokens (expires_at);

      CREATE TABLE ca_authorities (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('prepared', 'active', 'retired')),
        cert_der BLOB NOT NULL,
        upstream_chain_der TEXT NOT NULL,  -- JSON array of base64 DER
        key_ref TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        activated_at INTEGER
      );
      -- Two active CAs would make "which key signs" ambiguous.
      CREATE UNIQUE INDEX ca_authorities_one_active ON ca_authorities (status) WHERE status = 'active';

      CREATE TABLE bundles (
        trust_domain TEXT PRIMARY KEY,
        sequence INTEGER NOT NULL,
        x509_authorities_der TEXT NOT NULL, -- JSON array of base64 DER
        refresh_hint_seconds INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    description: 'task sessions, delegation grants, revocations',
    sql: `
      CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        entry_id TEXT NOT NULL,            -- no foreign key: a deleted entry must not erase session history
        spiffe_id TEXT NOT NULL,
        root_session_id TEXT NOT NULL,
        parent_session_id TEXT REFERENCES sessions (id),
        principal_id TEXT NOT NULL,
        principal_issuer TEXT NOT NULL,
        principal_provenance TEXT NOT NULL,
        intent TEXT NOT NULL,
        scopes TEXT NOT NULL,              -- JSON array of strings
        depth INTEGER NOT NULL,
        depth_limit INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        ended_at INTEGER,
        end_reason TEXT
      );
      -- The cascade of EndSession walks children by parent.
      CREATE INDEX sessions_by_parent ON sessions (parent_session_id);

      CREATE TABLE session_certificates (
        session_id TEXT NOT NULL REFERENCES sessions (id),
        serial_hex TEXT NOT NULL,
        not_after INTEGER NOT NULL,
        seq INTEGER NOT NULL,              -- issuance order within the session
        PRIMARY KEY (session_id, serial_hex)
      ) WITHOUT ROWID;
      CREATE INDEX session_certificates_by_serial ON session_certificates (serial_hex);

      CREATE TABLE grants (
        id TEXT PRIMARY KEY,               -- SHA-256 (hex) of the binding's nonce
        parent_session_id TEXT NOT NULL REFERENCES sessions (id),
        child_spiffe_id TEXT NOT NULL,
        scopes TEXT NOT NULL,              -- JSON array of strings
        not_after INTEGER NOT NULL,
        redeem_by INTEGER NOT NULL,
        binding_der BLOB NOT NULL,
        signature BLOB NOT NULL,
        parent_cert_der BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        redeemed_at INTEGER,
        redeemed_session_id TEXT
      );

      -- AUTOINCREMENT: a sequence number is never handed out twice, even after old rows are pruned, so a
      -- watcher resuming from a sequence can never miss a revocation that reused a number.
      CREATE TABLE revocations (
        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('certificate', 'session')),
        target_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        revoked_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        UNIQUE (kind, target_id)
      );
      CREATE INDEX revocations_by_expiry ON revocations (expires_at);
    `,
  },
  {
    version: 3,
    description: 'persisted CRL number; indexes for pruning sessions',
    sql: `
      -- RFC 5280 §5.2.3: a CRL issuer's cRLNumber must grow with every CRL. One counter for every CA key of
      -- the server, so a CA rotated in never publishes a number its predecessor already used.
      CREATE TABLE crl_number (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last INTEGER NOT NULL
      );
      -- Before this counter, cRLNumber was the publication time in ms since the epoch. A database that
      -- already has a CA may have published such numbers, so its counter starts above any of them (now plus a
      -- day for clock skew); a fresh database starts at 0.
      INSERT INTO crl_number (id, last) VALUES (1, CASE
        WHEN EXISTS (SELECT 1 FROM ca_authorities)
        THEN CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + 86400000
        ELSE 0 END);

      CREATE INDEX sessions_by_expiry ON sessions (expires_at);
      CREATE INDEX grants_by_parent ON grants (parent_session_id);
    `,
  },
  {
    version: 4,
    description: 'audit trail: hash-chained records, signed checkpoints, pinned keys of shipped chains',
    sql: `
      -- One row per record. body = the canonical JSON the hash covers (src/audit/chain.ts), so the stored
      -- record is verifiable as is; the key columns are copies of body fields for the indexes below. No
      -- foreign keys: the trail outlives the sessions, entries and CAs it describes (they are pruned).
      CREATE TABLE audit_records (
        chain TEXT NOT NULL,               -- the server's SPIFFE ID, or a shipper's for a shipped chain
        seq INTEGER NOT NULL,              -- storage position; the body holds the record's own seq
        time TEXT NOT NULL,                -- ISO 8601 UTC with ms: sorts as text
${AUDIT_RECORD_KEY_COLUMNS}
      ) WITHOUT ROWID;
      -- The investigator's keys (lanyard audit trace, AuditService.Query), in result order.
${AUDIT_RECORD_INDEXES}

      CREATE TABLE audit_checkpoints (
        chain TEXT NOT NULL,
        seq INTEGER NOT NULL,
        head_hash TEXT NOT NULL,
        time TEXT NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL,
        PRIMARY KEY (chain, seq, time)
      ) WITHOUT ROWID;

      -- The audit key of each shipped chain, pinned at its first ingest: later shipments must be signed by it.
      CREATE TABLE audit_chain_keys (
        chain TEXT PRIMARY KEY,
        public_jwk TEXT NOT NULL,
        pinned_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 5,
    description: 'compact cascaded revocations; per-agent session counts',
    sql: `
      -- A session ended by a cascade points at the revocation that caused it and stores no reason of its own
      -- (reason = ''): one EndSession's reason is stored once, however many descendants it ends.
      ALTER TABLE revocations ADD COLUMN cause_sequence INTEGER;
      -- The per-agent limits count an entry's live sessions and the ones that ended in a window.
      CREATE INDEX sessions_by_entry ON sessions (entry_id, ended_at);
    `,
  },
  {
    version: 6,
    description: 'join tokens bound to one entry; who opened each session and with which parent certificate',
    sql: `
      -- A join token names the one entry it issues (a SPIFFE ID can belong to several entries, one of them
      -- perhaps admin). Tokens from before this column are bound where that was unambiguous: exactly one
      -- entry without a parent has the token's SPIFFE ID, created before the token. The others stay NULL and
      -- are refused at attestation (fail closed): their operator creates a new token for an entry id.
      ALTER TABLE join_tokens ADD COLUMN entry_id TEXT;
      UPDATE join_tokens SET entry_id = (
          SELECT e.id FROM entries e
          WHERE e.spiffe_id = join_tokens.spiffe_id AND e.parent_id = '' AND e.created_at <= join_tokens.created_at)
        WHERE spent_at IS NULL
          AND (SELECT count(*) FROM entries e WHERE e.spiffe_id = join_tokens.spiffe_id AND e.parent_id = '') = 1;

      -- The serial of the SVID that opened the session (the workload SVID of StartSession, the redeemer's SVID
      -- of RedeemGrant) and, for a delegated session, of the parent's session SVID that signed the grant: a
      -- session is refused once either is revoked. NULL for sessions from before this column: the server
      -- cannot tell what they hang on, so session-aware calls refuse them (they end within their TTL).
      ALTER TABLE sessions ADD COLUMN opener_serial TEXT;
      ALTER TABLE sessions ADD COLUMN parent_cert_serial TEXT;
    `,
  },
  {
    version: 7,
    description: 'SPIFFE federation: relationships, foreign bundles, entries federating with them',
    sql: `
      CREATE TABLE federation_relationships (
        trust_domain TEXT PRIMARY KEY,
        bundle_endpoint_url TEXT NOT NULL,
        profile TEXT NOT NULL CHECK (profile IN ('https_web', 'https_spiffe')),
        endpoint_spiffe_id TEXT,           -- https_spiffe: the pinned SPIFFE ID of the endpoint
        web_trust_roots_pem TEXT,          -- https_web: roots instead of the system's
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        revision INTEGER NOT NULL
      );

      -- The last good bundle of each foreign trust domain. A fetch that fails updates only the last_* columns.
      CREATE TABLE federated_bundles (
        trust_domain TEXT PRIMARY KEY REFERENCES federation_relationships (trust_domain) ON DELETE CASCADE,
        bundle_json TEXT NOT NULL,         -- the SPIFFE bundle document as received
        sequence INTEGER,                  -- its spiffe_sequence (NULL: the publisher sets none)
        refresh_hint_seconds INTEGER,
        updated_at INTEGER NOT NULL,
        last_success_at INTEGER,
        last_attempt_at INTEGER,
        last_error TEXT NOT NULL DEFAULT ''
      );

      -- JSON array of trust domain names, sorted.
      ALTER TABLE entries ADD COLUMN federates_with TEXT NOT NULL DEFAULT '[]';
    `,
  },
  {
    version: 8,
    description:
      "the server's audit key history in the database (as several servers on PostgreSQL keep theirs)",
    sql: `
      CREATE TABLE audit_server_keys (
        server_id TEXT PRIMARY KEY,
        introductions_json TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 9,
    ...ENTRY_LOOKUP_INDEXES,
    sql: `${ENTRY_LOOKUP_INDEXES.sql}
    `,
  },
  { version: 10, ...GRANT_MAX_DEPTH },
];

export const LATEST_SCHEMA_VERSION = latestVersion(MIGRATIONS);

/**
 * Brings the database to LATEST_SCHEMA_VERSION in one transaction: a crash mid-way leaves the old schema.
 * Returns the versions applied.
 * @throws StoreError(ERR_STORE_SCHEMA_TOO_NEW) when a newer Lanyard wrote the database: running older code
 *   on it could silently drop what the newer schema means.
 */
export function migrate(db: Database.Database, now: () => Date): number[] {
  const run = db.transaction((): number[] => {
    db.exec(schemaMigrationsTable('INTEGER'));
    const record = db.prepare(
      'INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)',
    );
    const applied: number[] = [];
    for (const m of pendingMigrations(MIGRATIONS, schemaVersion(db))) {
      db.exec(m.sql);
      record.run(m.version, m.description, now().getTime());
      applied.push(m.version);
    }
    return applied;
  });
  return run.immediate();
}

export function schemaVersion(db: Database.Database): number {
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? 0;
}
