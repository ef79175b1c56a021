/**
 * The server's certificate authority: key managers, self-signed or upstream CA, rotation (prepare/activate),
 * the trust bundle, SVID signing and the server's own SVID. (The CLI's development CA is in dev-ca.ts.)
 */
export { CaManager, CA_KEY_ID_PREFIX, CA_MANAGER_DEFAULTS } from './ca-manager';
export type {
  CaLogger,
  CaManagerOptions,
  CaReadiness,
  RotationStep,
  RotationStepResult,
  SignedX509Svid,
  SignX509SvidRequest,
  TickResult,
} from './ca-manager';
export type { CaAuthorityInfo, CaAuthorityState } from './authority';
export type { KeyManager, ManagedKey } from './key-manager';
export { KEY_ID_PATTERN } from './key-manager';
export { DiskKeyManager, KEYS_DIR_NAME } from './disk-key-manager';
export { MemoryKeyManager } from './memory-key-manager';
export { loadUpstreamAuthority } from './upstream-authority';
export type { UpstreamAuthority, UpstreamAuthorityFiles } from './upstream-authority';
export { SERVER_SPIFFE_PATH } from './server-svid';
export { serverTlsPem, type ServerSvid } from './server-svid';
export { rotationTimes } from './rotation-schedule';
export type { RotationTimes } from './rotation-schedule';
export { startRotationTimer } from './rotation-timer';
export type { RotationTimer, RotationTimerOptions } from './rotation-timer';
export { SELF_TEST_SPIFFE_PATH } from './self-test';
