/** The workload side of the server API: attest and get an SVID, with the server checked by SPIFFE ID. */
export { attestToServer } from './attest';
export type { AttestOptions, AttestedSvid } from './attest';
export { lanyardChannelCredentials, LANYARD_CHANNEL_OPTIONS, SERVER_ID_PATH } from './server-credentials';
export type { ClientSvid } from './server-credentials';
