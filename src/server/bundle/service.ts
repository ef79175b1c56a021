/**
 * BundleService: the trust bundle of this server's trust domain, once (GetBundle) or as a stream that
 * sends the full bundle at once and again after every change (WatchBundle). Full bundles, not diffs: a
 * watcher that missed a message still ends up with the right set of roots.
 */
import type * as grpc from '@grpc/grpc-js';
import type { CaManager } from '../../ca';
import { NotFoundError } from '../../errors';
import {
  BundleServiceService,
  type BundleServiceServer,
  type WatchBundleRequest,
  type WatchBundleResponse,
} from '../../gen/lanyard/v1/bundle';
import { toStatus, unaryHandler } from '../../internal/grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import type { Logger } from '../../internal/logging';
import type { SpiffeBundleJwk } from '../../bundle/spiffe-bundle-format';
import { bundleToProto } from './to-proto';

export const BUNDLE_SERVICE_NAME = 'lanyard.v1.BundleService';

export interface BundleServiceDeps {
  ca: CaManager;
  logger: Logger;
  /**
   * Keys published beside the CA roots in the SPIFFE bundle document: the JWT-SVID keys and the audit keys
   * (use "lanyard-audit").
   */
  extraKeys?: () => readonly SpiffeBundleJwk[];
}

export function createBundleService(deps: BundleServiceDeps): ServiceRegistration {
  const { ca } = deps;
  const log = deps.logger.child({ service: BUNDLE_SERVICE_NAME });
  const watches = new Set<grpc.ServerWritableStream<WatchBundleRequest, WatchBundleResponse>>();

  const checkTrustDomain = (td: string): void => {
    // Only our own trust domain is served; federation would add others here.
    if (td !== '' && td !== ca.trustDomain.name) {
      throw new NotFoundError(
        `this server only serves the bundle of trust domain "${ca.trustDomain.name}", not "${td.slice(0, 255)}"`,
      );
    }
  };

  const implementation: BundleServiceServer = {
    getBundle: unaryHandler(
      'GetBundle',
      log,
      (req) => {
        checkTrustDomain(req.trustDomain);
        return Promise.resolve({ bundle: bundleToProto(ca.bundle(), deps.extraKeys?.()) });
      },
      { okLevel: 'debug' },
    ),

    watchBundle: (call) => {
      try {
        checkTrustDomain(call.request.trustDomain);
        call.write({ bundle: bundleToProto(ca.bundle(), deps.extraKeys?.()) });
      } catch (e) {
        call.emit('error', toStatus(e));
        return;
      }
      const unsubscribe = ca.onBundleChange((bundle) => {
        call.write({ bundle: bundleToProto(bundle, deps.extraKeys?.()) });
      });
      watches.add(call);
      const forget = (): void => {
        unsubscribe();
        watches.delete(call);
      };
      call.on('cancelled', forget);
      call.on('finish', forget);
      call.on('close', forget);
      log.debug({ method: 'WatchBundle', peer: call.getPeer() }, 'bundle watch opened');
    },
  };

  return {
    name: BUNDLE_SERVICE_NAME,
    definition: BundleServiceService,
    implementation,
    // Watches never end on their own: end them so a graceful close does not wait for the grace period.
    onClosing: () => {
      for (const w of watches) w.end();
      watches.clear();
    },
  };
}
