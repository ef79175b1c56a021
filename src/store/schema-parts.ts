/**
 * The parts of the schema that the SQLite and PostgreSQL migrations declare to the letter alike, written once and
 * interpolated into both lists. They are parts of shipped migrations: never edit one (test/store/migrations.test.ts
 * holds the text of every shipped migration); a schema change is a new migration at the end of each list.
 */
import type { Migration } from './migrations';

/** The columns of audit_records after (chain, seq, time), whose types both dialects spell the same. */
export const AUDIT_RECORD_KEY_COLUMNS = `        event TEXT NOT NULL,
        session_id TEXT,
        root_session_id TEXT,
        serial TEXT,
        principal TEXT,
        agent_id TEXT,
        body TEXT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (chain, seq)`;

/** The investigator's keys (lanyard audit trace, AuditService.Query), in result order. */
export const AUDIT_RECORD_INDEXES = `      CREATE INDEX audit_by_session ON audit_records (session_id, time, chain, seq) WHERE session_id IS NOT NULL;
      CREATE INDEX audit_by_root_session ON audit_records (root_session_id, time, chain, seq)
        WHERE root_session_id IS NOT NULL;
      CREATE INDEX audit_by_serial ON audit_records (serial, time, chain, seq) WHERE serial IS NOT NULL;
      CREATE INDEX audit_by_principal ON audit_records (principal, time, chain, seq) WHERE principal IS NOT NULL;
      CREATE INDEX audit_by_agent ON audit_records (agent_id, time, chain, seq) WHERE agent_id IS NOT NULL;`;

/** What SQLite's migration 9 and PostgreSQL's 3 share: the entry indexes for a node agent's and a selector set's lookups. */
export const ENTRY_LOOKUP_INDEXES: Omit<Migration, 'version'> = {
  description: 'entry lookups by parent and by selector set through indexes, in list order',
  sql: `
      -- A node agent's entries in list order (parent, then SPIFFE ID and id for the keyset pages), so its listing
      -- reads only its own rows and needs no sort.
      DROP INDEX entries_by_parent_id;
      CREATE INDEX entries_by_parent_id ON entries (parent_id, spiffe_id, id);
      -- An exact selector-set filter.
      CREATE INDEX entries_by_selectors_key ON entries (selectors_key);`,
};

/** SQLite's migration 10 and PostgreSQL's 4, the same statement. */
export const GRANT_MAX_DEPTH: Omit<Migration, 'version'> = {
  description: "a grant's bound on how many further delegations its child may make",
  sql: `
      -- NULL: no bound beyond the parent's (every grant made before this column). Kept by the server only:
      -- the signed binding has no such field.
      ALTER TABLE grants ADD COLUMN max_depth INTEGER CHECK (max_depth >= 0);
    `,
};
