/**
 * `lanyard/client`: the workload side. X509Sources (from the server, the agent's Workload API, or files),
 * attestation, task sessions and delegation (grant and redeem). Loads grpc-js.
 * A module that is public as a whole is re-exported whole (the API report still holds every name it adds).
 */
export { attestToServer } from '../client/attest';
export type { AttestOptions, AttestResult } from '../client/attest';
export { LANYARD_CHANNEL_OPTIONS, lanyardChannelCredentials } from '../client/server-credentials';
export type { X509Source, X509SourceEvents } from '../client/x509-source';
export type { MarshaledX509Svid, OwnSvidOptions, X509Svid } from '../svid';
export * from '../client/server-x509-source';
export type { ServerAddresses } from '../client/server-endpoints';
export { StaticX509Source } from '../client/static-x509-source';
export type { StaticX509SourceFiles } from '../client/static-x509-source';
export { WORKLOAD_API_HEADER, WorkloadApiX509Source } from '../client/workload-api-source';
export type { WorkloadApiX509SourceOptions } from '../client/workload-api-source';
export * from '../client/handoff';
export * from '../client/handoff-keys';
export type { ChildKey } from '../client/delegation';
export type { KeyAlgorithm } from '../x509/keys';
