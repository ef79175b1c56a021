/**
 * The server's certificate authority: key managers, self-signed or upstream CA, rotation (prepare/activate),
 * the trust bundle, SVID signing and the server's own SVID. (The CLI's development CA is in dev-ca.ts.)
 * A module whose every export belongs to the CA's face is re-exported whole; the others name what they lend.
 */
export * from './ca-manager';
export type { CaAuthorityInfo, CaAuthorityState } from './authority';
export type { KeyManager, ManagedKey } from './key-manager';
export { KEY_ID_PATTERN } from './key-manager';
export * from './disk-key-manager';
export * from './memory-key-manager';
export * from './upstream-authority';
export { SERVER_SPIFFE_PATH } from './server-svid';
export { serverTlsPem, type ServerSvid } from './server-svid';
export { rotationTimes } from './rotation-schedule';
export type { RotationTimes } from './rotation-schedule';
export * from './rotation-timer';
export { SELF_TEST_SPIFFE_PATH } from './self-test';
