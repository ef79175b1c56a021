/**
 * Handoff at a hop: the caller sends a grant id with its request (the `lanyard-grant` header or gRPC metadata
 * key); the service redeems it against the caller it verified, and calls the next hop with the delegated SVID.
 * The halves themselves live in src/client/handoff.ts.
 */
import { redeemGrant, type HandoffServer } from '../client/handoff';
import type { StaticX509Source } from '../client/static-x509-source';
import type { X509Source } from '../client/x509-source';
import type { HopPeer } from './peer';

export { grantFor, redeemGrant, startSession } from '../client/handoff';
export type {
  GrantForOptions,
  HandoffGrant,
  RedeemGrantOptions,
  StartSessionOptions,
} from '../client/handoff';

/** HTTP header and gRPC metadata key that carries a grant id to the service that redeems it. */
export const HANDOFF_GRANT_HEADER = 'lanyard-grant';

/**
 * Redeems `grantId` for this service, requiring that `caller` (the verified peer of the request that carried
 * it) signed the grant with the certificate it authenticated with.
 */
export function redeemFromCaller(
  caller: HopPeer,
  grantId: string,
  options: HandoffServer & { source: X509Source },
): Promise<StaticX509Source> {
  return redeemGrant({ ...options, grantId, caller });
}
