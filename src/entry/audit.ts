/**
 * `lanyard/audit`: the tamper-evident audit trail a service keeps for its hop decisions (a signed hash chain in a
 * JSONL file), and verification and trace of any chain — a service's own or one exported from the server.
 * The chain's building blocks (heads, record hashing, canonical JSON) stay internal: records are appended
 * through an AuditLog and checked through verifyAuditChain.
 */
export { AuditPublicKey, AuditSigningKey } from '../audit/audit-key';
export type { AuditPublicJwk } from '../audit/audit-key';
export { AuditKeyRing } from '../audit/key-ring';
export type { AuditKeyEntry, PublishedAuditJwk } from '../audit/key-ring';
export { FileAuditLog } from '../audit/file-log';
export type { AppendHandle, FileAuditLogOptions } from '../audit/file-log';
export type { AuditLog } from '../audit/log';
export { auditHopDecisions, hopDecisionEvent } from '../hop/audit';
export type { HopAuditListener, HopAuditOptions } from '../hop/audit';
export { AUDIT_EVENT_TYPES, parseRecord } from '../audit/record';
export type { AuditDecision, AuditEvent, AuditEventType, AuditRecord } from '../audit/record';
export type { AuditCheckpoint } from '../audit/checkpoint';
export { parseChainText } from '../audit/jsonl';
export type { ParsedChain } from '../audit/jsonl';
export { verifyAuditChain } from '../audit/verify-chain';
export type {
  ChainBreak,
  ChainBreakKind,
  ChainVerification,
  VerifyAuditChainOptions,
} from '../audit/verify-chain';
export { FileWitness, readWitnessFile } from '../audit/file-witness';
export { SyslogWitness } from '../audit/syslog-witness';
export type { SyslogFacility, SyslogWitnessOptions } from '../audit/syslog-witness';
export { parseWitnessLines } from '../audit/witness';
export type { AuditWitness, WitnessContent, WitnessEntry } from '../audit/witness';
export { crossCheckWitnesses } from '../audit/witness-check';
export type { WitnessCheckInput, WitnessedVerification } from '../audit/witness-check';
export { buildTrace, renderTraceText } from '../audit/trace';
export type { Trace, TraceEvent, TraceOptions, TracePrincipal, TraceSession } from '../audit/trace';
