/**
 * One audit record: who did what to which identity, for whom, under which policy and scope, and what was
 * decided. Identifiers only (data minimisation): never a prompt, payload, token, key or certificate body.
 */
import { AuditError, AuditRecordInvalidError } from '../errors';

/** What happened. New types may be added; a type is never renamed (investigators search by it). */
export const AUDIT_EVENT_TYPES = [
  'svid.attest',
  'svid.renew',
  'svid.revoke',
  'session.start',
  'session.end',
  'grant.create',
  'grant.redeem',
  'entry.create',
  'entry.update',
  'entry.delete',
  'join_token.create',
  'ca.rotate',
  'hop.decision',
  'audit.ingest',
  'svid.issue',
  'jwt_svid.issue',
  'policy.reload',
  'key.rotate',
  'admin.read',
  'federation.create',
  'federation.update',
  'federation.delete',
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export type AuditDecision = 'allow' | 'deny';

/** What a caller records; the chain adds `chain`, `seq`, `prevHash` and `hash`. */
export interface AuditEvent {
  /** When it happened; the recorder's clock when absent. */
  time?: Date;
  event: AuditEventType;
  decision: AuditDecision;
  /** A stable error code or policy reason for a refusal; a short note (never a secret) for an allowed action. */
  reason?: string;
  /** Who acted: a SPIFFE ID, or `admin-socket` for the local admin socket. On a refusal, as presented. */
  actor?: string;
  /** What was acted on: the SPIFFE ID issued, the entry id, the grant id, the revoked serial. */
  subject?: string;
  /** The registration entry (agent) of the session or SVID concerned. */
  agentId?: string;
  sessionId?: string;
  rootSessionId?: string;
  /** For a delegated session: the session it was delegated from. */
  parentSessionId?: string;
  /** The originating principal's id and issuer. */
  principal?: string;
  principalIssuer?: string;
  scopes?: string[];
  policyVersion?: string;
  /** Serial of the certificate concerned, lowercase hex without leading zeros. */
  serial?: string;
  /** SHA-256 (hex) of the parent's certificate for a delegated SVID. */
  parentCertSha256?: string;
  /** The gRPC method or HTTP route of a hop decision; the attestor type of an attestation. */
  action?: string;
  /** The service that recorded a hop decision. */
  service?: string;
  /** For an update (entry.update): every field it changed, with the value before and after. */
  changes?: AuditFieldChange[];
}

/**
 * One changed field: its proto name and its values as canonical JSON text (`true`, `1200`, `["a:b"]`,
 * `null` for an unset optional field), so any value type fits one string pair and compares byte for byte.
 */
export type AuditFieldChange = {
  field: string;
  before: string;
  after: string;
};

/** An event as chained: every field of the event plus its place in the chain. */
export interface AuditRecord extends Omit<AuditEvent, 'time'> {
  /** Which chain: the server's own, or a shipped one named by its shipper. */
  chain: string;
  /** 1 for the first record of a chain, then +1 each. */
  seq: number;
  /** ISO 8601 with milliseconds, UTC. */
  time: string;
  /** `hash` of the record before, or the chain's genesis hash for seq 1 (hex). */
  prevHash: string;
  /** SHA-256 (hex) of the canonical form of every other field (canonical.ts). */
  hash: string;
}

/** Longest string field accepted; identifiers only, so this is generous. */
const MAX_FIELD_BYTES = 2048;
const MAX_SCOPES = 64;
/** An entry has 11 mutable fields; room for more without admitting unbounded lists. */
const MAX_CHANGES = 32;
/**
 * A changed value is a whole field: 256 delegates of up to 2048 bytes each fit. Before and after are kept in
 * full (a truncated value would hide what changed), which is why this is much larger than MAX_FIELD_BYTES.
 */
const MAX_CHANGE_VALUE_BYTES = 1024 * 1024;

const STRING_FIELDS = [
  'reason',
  'actor',
  'subject',
  'agentId',
  'sessionId',
  'rootSessionId',
  'parentSessionId',
  'principal',
  'principalIssuer',
  'policyVersion',
  'serial',
  'parentCertSha256',
  'action',
  'service',
] as const satisfies readonly (keyof AuditEvent)[];

function invalid(message: string): AuditError {
  return new AuditRecordInvalidError(message);
}

const EVENT_TYPES: ReadonlySet<string> = new Set(AUDIT_EVENT_TYPES);

/** Whether `v` is at most MAX_FIELD_BYTES in UTF-8, without encoding the (usual) short string. */
function withinFieldBytes(v: string): boolean {
  // A UTF-16 code unit is at most 3 bytes of UTF-8.
  return v.length * 3 <= MAX_FIELD_BYTES || Buffer.byteLength(v) <= MAX_FIELD_BYTES;
}

/**
 * The event fields of `e` checked and copied (not its time, which `time` gives already checked). Reads `e` as
 * a bag of unknown values, so a parsed record is checked without copying it first.
 */
function checkedEvent(e: Record<string, unknown>, time: Date | undefined): AuditEvent {
  if (typeof e.event !== 'string' || !EVENT_TYPES.has(e.event)) {
    throw invalid(`unknown audit event type ${JSON.stringify(String(e.event).slice(0, 64))}`);
  }
  if (e.decision !== 'allow' && e.decision !== 'deny') throw invalid('decision must be "allow" or "deny"');
  const out: AuditEvent = { event: e.event as AuditEventType, decision: e.decision };
  if (time !== undefined) out.time = time;
  for (const f of STRING_FIELDS) {
    const v = e[f];
    if (v === undefined || v === '') continue;
    if (typeof v !== 'string') throw invalid(`${f} must be a string`);
    if (!withinFieldBytes(v)) throw invalid(`${f} is longer than ${MAX_FIELD_BYTES} bytes`);
    out[f] = v;
  }
  const scopes = e.scopes;
  if (scopes !== undefined) {
    if (!Array.isArray(scopes) || scopes.length > MAX_SCOPES) throw invalid(`scopes: at most ${MAX_SCOPES}`);
    for (const s of scopes as unknown[]) {
      if (typeof s !== 'string' || !withinFieldBytes(s)) throw invalid('scopes: bad scope');
    }
    out.scopes = [...(scopes as string[])];
  }
  if (e.changes !== undefined) out.changes = checkChanges(e.changes);
  return out;
}

/** Fails closed on anything that is not a well-formed event; returns a copy without empty optional fields. */
export function checkEvent(e: AuditEvent): AuditEvent {
  return checkedEvent(e as unknown as Record<string, unknown>, checkTime(e));
}

/**
 * checkEvent, with the copy left without its time (returned beside it): a copy the chain completes into a record
 * in place, instead of copying it once more without `time`.
 */
export function checkEventApart(e: AuditEvent): { fields: AuditEvent; time: Date | undefined } {
  const time = checkTime(e);
  return { fields: checkedEvent(e as unknown as Record<string, unknown>, undefined), time };
}

/** The event's own time, checked; undefined when it has none. Fails closed as checkEvent does. */
function checkTime(e: AuditEvent): Date | undefined {
  const fields = e as unknown as Record<string, unknown>;
  if (typeof fields.event !== 'string' || !EVENT_TYPES.has(fields.event)) {
    throw invalid(`unknown audit event type ${JSON.stringify(String(e.event).slice(0, 64))}`);
  }
  if (e.decision !== 'allow' && e.decision !== 'deny') throw invalid('decision must be "allow" or "deny"');
  if (e.time !== undefined && (!(e.time instanceof Date) || Number.isNaN(e.time.getTime())))
    throw invalid('time is not a valid date');
  return e.time;
}

function checkChanges(changes: unknown): AuditFieldChange[] {
  if (!Array.isArray(changes) || changes.length > MAX_CHANGES)
    throw invalid(`changes: at most ${MAX_CHANGES}`);
  return changes.map((c: unknown, i) => {
    if (typeof c !== 'object' || c === null || Array.isArray(c))
      throw invalid(`changes[${i}] is not an object`);
    const o = c as Record<string, unknown>;
    const extra = Object.keys(o).find((k) => k !== 'field' && k !== 'before' && k !== 'after');
    if (extra !== undefined) throw invalid(`changes[${i}]: unknown field "${extra.slice(0, 64)}"`);
    const { field, before, after } = o;
    if (typeof field !== 'string' || field === '' || Buffer.byteLength(field) > 256) {
      throw invalid(`changes[${i}].field must be a non-empty string`);
    }
    for (const [name, v] of [
      ['before', before],
      ['after', after],
    ] as const) {
      if (typeof v !== 'string' || Buffer.byteLength(v) > MAX_CHANGE_VALUE_BYTES) {
        throw invalid(`changes[${i}].${name} must be a string of at most ${MAX_CHANGE_VALUE_BYTES} bytes`);
      }
    }
    return { field, before: before as string, after: after as string };
  });
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Every field a record may hold. */
const RECORD_FIELDS: ReadonlySet<string> = new Set<string>([
  ...STRING_FIELDS,
  'event',
  'decision',
  'scopes',
  'changes',
  'chain',
  'seq',
  'time',
  'prevHash',
  'hash',
]);

/**
 * Parses a record from untrusted JSON (a shipped or exported chain): every field typed, nothing unknown.
 * It does not check the hash; verify-chain.ts does.
 */
export function parseRecord(value: unknown): AuditRecord {
  return parseRecordFields(value, undefined);
}

/**
 * parseRecord of a chain line's object, whose `lineKey` field (its line type, read by the caller) is not a
 * record field: spares copying every line's object without it.
 */
export function parseRecordFields(value: unknown, lineKey: string | undefined): AuditRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid('record is not an object');
  const o = value as Record<string, unknown>;
  for (const k in o) {
    if (!Object.hasOwn(o, k) || k === lineKey) continue;
    if (!RECORD_FIELDS.has(k)) throw invalid(`unknown record field "${k.slice(0, 64)}"`);
  }
  const { chain, seq, time, prevHash, hash } = o;
  if (typeof chain !== 'string' || chain === '' || !withinFieldBytes(chain)) {
    throw invalid('chain must be a non-empty string');
  }
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1)
    throw invalid('seq must be an integer >= 1');
  if (typeof time !== 'string' || Number.isNaN(Date.parse(time)))
    throw invalid(`record ${seq}: time is not a date`);
  if (typeof prevHash !== 'string' || !HEX64.test(prevHash))
    throw invalid(`record ${seq}: prevHash is not SHA-256 hex`);
  if (typeof hash !== 'string' || !HEX64.test(hash)) throw invalid(`record ${seq}: hash is not SHA-256 hex`);
  let fields: AuditEvent;
  try {
    fields = checkedEvent(o, undefined);
  } catch (e) {
    throw invalid(`record ${seq}: ${(e as Error).message}`);
  }
  // The checked copy is new and ours: completed in place rather than copied once more.
  const record = fields as unknown as AuditRecord;
  record.chain = chain;
  record.seq = seq;
  record.time = time;
  record.prevHash = prevHash;
  record.hash = hash;
  return record;
}
