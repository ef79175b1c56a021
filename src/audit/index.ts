export { AUDIT_KEY_USE, AuditPublicKey, AuditSigningKey, type AuditPublicJwk } from './audit-key';
export { canonicalJson, sha256Hex } from './canonical';
export { emptyHead, genesisHash, nextRecord, recordHash, recordLine, type ChainHead } from './chain';
export {
  checkpointLine,
  checkpointSignatureValid,
  parseCheckpoint,
  signCheckpoint,
  type AuditCheckpoint,
} from './checkpoint';
export { type AppendHandle, FileAuditLog, type FileAuditLogOptions } from './file-log';
export { FileWitness, readWitnessFile } from './file-witness';
export { introduceKey, ringFromIntroductions, type AuditKeyIntroduction } from './key-history';
export { AuditKeyRing, type AuditKeyEntry, type PublishedAuditJwk } from './key-ring';
export { SHIPPED_EVENT_TYPES, checkShippedRecords, type ShippedRecordLimits } from './shipped-records';
export { SyslogWitness, type SyslogFacility, type SyslogWitnessOptions } from './syslog-witness';
export {
  parseWitnessLines,
  witnessLine,
  type AuditWitness,
  type ChainKeyPin,
  type WitnessContent,
  type WitnessEntry,
} from './witness';
export { crossCheckWitnesses, type WitnessCheckInput, type WitnessedVerification } from './witness-check';
export { chainLines, parseChainText, type ParsedChain } from './jsonl';
export {
  AUDIT_QUERY_KEYS,
  MAX_AUDIT_PAGE,
  storeAuditLog,
  type AuditChainInfo,
  type AuditLog,
  type AuditPage,
  type AuditQuery,
  type AuditQueryKey,
  type AuditStore,
} from './log';
export {
  AUDIT_EVENT_TYPES,
  checkEvent,
  parseRecord,
  type AuditDecision,
  type AuditEvent,
  type AuditEventType,
  type AuditFieldChange,
  type AuditRecord,
} from './record';
export {
  buildTrace,
  renderTraceText,
  type Trace,
  type TraceOptions,
  type TraceEvent,
  type TracePrincipal,
  type TraceSession,
} from './trace';
export {
  verifyAuditChain,
  type ChainBreak,
  type ChainBreakKind,
  type ChainVerification,
  type VerifyAuditChainOptions,
} from './verify-chain';
