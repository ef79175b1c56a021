/** The workload side of the server API: attest and get an SVID, with the server checked by SPIFFE ID. */
export { attestToServer } from './attest';
export type { AttestOptions, AttestResult } from './attest';
export { lanyardChannelCredentials, LANYARD_CHANNEL_OPTIONS, SERVER_ID_PATH } from './server-credentials';
/** X509Sources: what the hop helpers read the workload's SVID and bundles from. */
export type { X509Source, X509SourceEvents } from './x509-source';
export type { MarshaledX509Svid, X509Svid } from '../svid/x509-svid';
export { ServerX509Source } from './server-x509-source';
export type {
  ExistingSvidOptions,
  RetryOptions,
  ServerX509SourceOptions,
  SessionBounds,
} from './server-x509-source';
export type { ServerAddresses } from './server-endpoints';
export { StaticX509Source } from './static-x509-source';
export { loadX509Svid, parseX509Svid, parseX509SvidRaw, toX509Svid } from '../svid/x509-svid';
export type { StaticX509SourceFiles } from './static-x509-source';
export type { OwnSvidOptions } from '../svid/x509-svid';
export { WorkloadApiX509Source, WORKLOAD_API_HEADER } from './workload-api-source';
export type { WorkloadApiX509SourceOptions } from './workload-api-source';
/**
 * Sessions and handoff: a session SVID to start a chain, the key the service will hold (generated first), a grant
 * by the caller naming it, its redemption by the service.
 */
export { grantAcross, grantFor, redeemForeignGrant, redeemGrant, startSession } from './handoff';
export type {
  ForeignGrant,
  GrantForOptions,
  HandoffCaller,
  HandoffGrant,
  HandoffServer,
  RedeemForeignGrantOptions,
  RedeemGrantOptions,
  SessionRenewalOptions,
  SessionX509Source,
  StartSessionOptions,
} from './handoff';
export { HandoffKey, HandoffKeys } from './handoff-keys';
export type { HandoffKeyOffer, HandoffKeysOptions } from './handoff-keys';
export { childKeySha256, signGrant } from './delegation';
export type { ChildKey, GrantParams, SignedGrant } from './delegation';
export { watchRevocationsInto } from './revocation-watch';
export type { RevocationWatchHandle, RevocationWatchOptions } from './revocation-watch';
