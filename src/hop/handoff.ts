/**
 * Handoff at a hop, over the connection the caller already has to the service:
 *  1. the caller asks the service for a key (`HandoffService.OfferKey`, served by `addHandoffService`): the
 *     service generates the key its delegated SVID will hold and answers with the key's SHA-256;
 *  2. the caller signs a grant naming that key and registers it (`grantFor`; `grantForPeer` does 1 and 2), then
 *     sends the grant id with its request (the `lanyard-grant` header or gRPC metadata key);
 *  3. the service redeems it with the key it offered that caller, requiring that the caller signed the grant with
 *     the certificate it authenticated with (`redeemFromCaller`), and calls the next hop with the delegated SVID.
 * The halves that need no hop live in src/client/handoff.ts.
 */
import * as grpc from '@grpc/grpc-js';
import {
  redeemGrant,
  grantFor,
  type GrantForOptions,
  type HandoffGrant,
  type HandoffServer,
  type SessionRenewalOptions,
  type SessionX509Source,
} from '../client/handoff';
import type { HandoffKeyOffer, HandoffKeys } from '../client/handoff-keys';
import type { X509Source } from '../client/x509-source';
import { InternalError } from '../errors';
import { errorFromStatus } from '../internal/grpc-status-map';
import {
  HandoffServiceService,
  OfferKeyRequest,
  OfferKeyResponse,
  type HandoffServiceServer,
} from '../gen/lanyard/v1/handoff';
import { hopPeerOf, hopErrorStatus, hopService, type HopGrpcServiceOptions } from './grpc';
import type { HopPeer } from './peer';

export { grantFor, redeemGrant, startSession } from '../client/handoff';
export type {
  GrantForOptions,
  HandoffGrant,
  RedeemGrantOptions,
  SessionRenewalOptions,
  SessionX509Source,
  StartSessionOptions,
} from '../client/handoff';
export { HandoffKey, HandoffKeys } from '../client/handoff-keys';
export type { HandoffKeyOffer, HandoffKeysOptions } from '../client/handoff-keys';

/** HTTP header and gRPC metadata key that carries a grant id to the service that redeems it. */
export const HANDOFF_GRANT_HEADER = 'lanyard-grant';

/** Method path of HandoffService.OfferKey: the action a hop policy sees for a key request. */
export const OFFER_KEY_METHOD = '/lanyard.v1.HandoffService/OfferKey';

/**
 * Redeems `grantId` for this service with the key it offered `caller` (the verified peer of the request that
 * carried it), requiring that `caller` signed the grant with the certificate it authenticated with.
 * @throws LanyardError ERR_HANDOFF_KEY_UNKNOWN when this service offered `caller` no such key (or it expired),
 *   the server's refusal (ERR_GRANT_*), or AuthorizationError when the grant is not the caller's.
 */
export async function redeemFromCaller(
  caller: HopPeer,
  grantId: string,
  options: HandoffServer & SessionRenewalOptions & { source: X509Source; keys: HandoffKeys },
): Promise<SessionX509Source> {
  const { keys, ...rest } = options;
  // Taken before the server is asked: a key serves one redemption, whatever the server answers.
  const key = keys.take(grantId, caller.spiffeId);
  return redeemGrant({ ...rest, key, caller });
}

/**
 * Serves HandoffService on `server`: every verified, authorized caller (the same `authorize` or Cedar policy as
 * the service's own methods, with the action `/lanyard.v1.HandoffService/OfferKey`) may ask for keys, within the
 * bounds `keys` sets.
 */
export function addHandoffService(
  server: grpc.Server,
  keys: HandoffKeys,
  options: HopGrpcServiceOptions,
): void {
  const implementation: HandoffServiceServer = {
    offerKey: (call, callback) => {
      try {
        const peer = hopPeerOf(call);
        // hopService runs this only for a verified peer; without one there is nobody to offer a key to.
        if (peer === undefined) throw new InternalError('OfferKey without a verified peer');
        const offer = keys.offer(peer.spiffeId);
        callback(null, { keySha256: Buffer.from(offer.keySha256, 'hex'), expiresAt: offer.expiresAt });
      } catch (e) {
        callback(hopErrorStatus(e));
      }
    },
  };
  server.addService(HandoffServiceService, hopService(HandoffServiceService, implementation, options));
}

/**
 * Caller side of step 1: asks the service behind `client` (a grpc-js client on a hop channel, so the service
 * was verified as the one it must be) for a key to grant to.
 * @throws LanyardError with the service's code (e.g. ERR_HANDOFF_KEYS_EXHAUSTED), or the grpc-js error.
 */
export function offerKeyFrom(
  client: grpc.Client,
  options: { deadlineMs?: number } = {},
): Promise<HandoffKeyOffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      OFFER_KEY_METHOD,
      (req: OfferKeyRequest) => Buffer.from(OfferKeyRequest.encode(req).finish()),
      (b: Buffer) => OfferKeyResponse.decode(b),
      OfferKeyRequest.fromPartial({}),
      new grpc.Metadata(),
      { deadline: Date.now() + (options.deadlineMs ?? 15_000) },
      (e, res) => {
        if (e !== null || res === undefined) {
          reject(e === null ? new InternalError('OfferKey answered nothing') : fromHopError(e));
          return;
        }
        if (res.keySha256.length !== 32 || res.expiresAt === undefined) {
          reject(new InternalError('OfferKey answered without a 32-byte key hash'));
          return;
        }
        resolve({ keySha256: res.keySha256.toString('hex'), expiresAt: res.expiresAt });
      },
    );
  });
}

/**
 * Steps 1 and 2 in one call: a key from the service behind `client`, then a grant for it. Send the returned
 * `grantId` with the call (HANDOFF_GRANT_HEADER).
 */
export async function grantForPeer(
  client: grpc.Client,
  options: Omit<GrantForOptions, 'childKey'>,
): Promise<HandoffGrant> {
  const offer = await offerKeyFrom(
    client,
    options.deadlineMs !== undefined ? { deadlineMs: options.deadlineMs } : {},
  );
  return grantFor({ ...options, childKey: offer.keySha256 });
}

function fromHopError(e: grpc.ServiceError): Error {
  const remote = errorFromStatus(e);
  if (remote !== undefined) return remote;
  return e;
}
