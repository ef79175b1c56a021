/**
 * Envoy's Secret Discovery Service (v3) on the Workload API socket, as SPIRE's agent serves it: Envoy (or any
 * xDS client) asks for secrets by name and gets the calling workload's SVIDs and bundles (secrets.ts), from
 * the same per-call attestation as the Workload API. Envoy sends no `workload.spiffe.io` header, so none is
 * required here (SPIRE does the same).
 *
 * StreamSecrets follows the xDS state-of-the-world protocol: a request whose resource names differ from the
 * last ones is answered at once; an ACK (the last nonce, no error) or a NACK (the last nonce with
 * error_detail) is answered by nothing, a NACK is logged, and the next change of the content (rotation,
 * bundle or entitlement change, an SVID expiring) is pushed with a new version and nonce; a request carrying
 * an older nonce is stale and ignored. FetchSecrets answers once. DeltaSecrets is refused with UNIMPLEMENTED.
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { AgentNotReadyError, InvalidArgumentError, isLanyardError, NotEntitledError } from '../../errors';
import type { DiscoveryRequest, DiscoveryResponse } from '../../gen/envoy/service/discovery/v3/discovery';
import {
  SecretDiscoveryServiceService,
  type SecretDiscoveryServiceServer,
} from '../../gen/envoy/service/secret/v3/sds';
import { toStatus } from '../../internal/grpc-call';
import type { Logger } from '../../internal/logging';
import type { Selector } from '../../store/types';
import type { AgentCache } from '../cache';
import type { PeerOf } from '../workload-api/service';
import type { ServiceSpec } from '../workload-api/endpoint';
import { SECRET_TYPE_URL, secretsFor, selectSecrets, versionOf } from './secrets';

/**
 * What the agent answers on each method of the service, by its name in the .proto: the gRPC API reference is
 * generated from this (scripts/docs.ts, which fails when a method of the vendored file is missing here), so the
 * reference and the refusal below say the same.
 */
export const SDS_METHODS = {
  StreamSecrets: {
    implemented: true,
    summary:
      "State-of-the-world xDS: the caller's secrets for the names asked, at once and again whenever they change (rotation, bundle or entry change, an SVID expiring); ACKs and NACKs are answered by nothing.",
  },
  FetchSecrets: {
    implemented: true,
    summary: "One answer with the secrets for the names asked (all of the caller's when none).",
  },
  DeltaSecrets: {
    implemented: false,
    summary: 'incremental xDS is not supported; use StreamSecrets (state of the world)',
  },
} as const satisfies Record<
  Capitalize<keyof SecretDiscoveryServiceService>,
  { implemented: boolean; summary: string }
>;

export interface SdsDeps {
  cache: AgentCache;
  clock: () => Date;
  logger: Logger;
}

interface Built {
  versionInfo: string;
  resources: DiscoveryResponse['resources'];
}

export function sdsService(deps: SdsDeps, peerOf: PeerOf): ServiceSpec {
  const log = deps.logger.child({ service: 'SecretDiscoveryService' });
  const implementation: SecretDiscoveryServiceServer = {
    streamSecrets: (call) => streamSecrets(deps, log, peerOf, call),
    fetchSecrets: (call, callback) => {
      (async () => {
        checkTypeUrl(call.request.typeUrl);
        const selectors = (await peerOf(call).attest()).selectors;
        const built = build(deps, selectors, call.request.resourceNames);
        if (built === undefined) {
          throw new AgentNotReadyError("the workload's SVIDs are still being obtained: retry");
        }
        await peerOf(call).confirm();
        return response(built);
      })().then(
        (r) => callback(null, r),
        (e: unknown) => {
          logFailure(log, 'FetchSecrets', call.getPeer(), e);
          callback(toStatus(e) as grpc.ServerErrorResponse);
        },
      );
    },
    deltaSecrets: (call) =>
      call.emit('error', {
        code: grpc.status.UNIMPLEMENTED,
        details: `DeltaSecrets: ${SDS_METHODS.DeltaSecrets.summary}`,
      }),
  };
  return {
    definition: SecretDiscoveryServiceService,
    implementation: implementation as unknown as grpc.UntypedServiceImplementation,
  };
}

function checkTypeUrl(typeUrl: string): void {
  if (typeUrl !== '' && typeUrl !== SECRET_TYPE_URL) {
    throw new InvalidArgumentError(
      `type_url ${JSON.stringify(typeUrl)}: this endpoint serves ${SECRET_TYPE_URL} only`,
    );
  }
}

/**
 * The secrets `names` ask for, now; undefined while the caller's entries match but none of its SVIDs has
 * arrived yet (worth waiting for). PERMISSION_DENIED when no entry matches the caller.
 */
function build(deps: SdsDeps, selectors: Selector[], names: readonly string[]): Built | undefined {
  const bundle = deps.cache.bundle();
  if (bundle === undefined) throw new AgentNotReadyError('the agent has not reached its server yet: retry');
  const entries = deps.cache.matchingEntries(selectors);
  if (entries.length === 0)
    throw new NotEntitledError('no identity is registered for this workload on this agent');
  const entitled = deps.cache.entitled(selectors, deps.clock());
  if (entitled.length === 0) {
    if (entries.every((e) => deps.cache.svid(e.id) !== undefined)) {
      throw new AgentNotReadyError(
        'the SVIDs for this workload expired and the agent cannot reach its server: retry',
      );
    }
    return undefined;
  }
  const set = secretsFor(entitled, bundle, deps.cache.federatedFor(entries));
  const resources = selectSecrets(set, names);
  return { versionInfo: versionOf(resources), resources };
}

function response(b: Built, nonce = randomUUID()): DiscoveryResponse {
  return {
    versionInfo: b.versionInfo,
    resources: b.resources,
    canary: false,
    typeUrl: SECRET_TYPE_URL,
    nonce,
    controlPlane: undefined,
  };
}

function streamSecrets(
  deps: SdsDeps,
  log: Logger,
  peerOf: PeerOf,
  call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>,
): void {
  const peer = call.getPeer();
  let done = false;
  /** The resource names of the last request that changed them; undefined before the first request. */
  let names: string[] | undefined;
  let selectors: Selector[] | undefined;
  let lastNonce: string | undefined;
  let lastVersion: string | undefined;
  let expiry: NodeJS.Timeout | undefined;
  let queue: Promise<void> = Promise.resolve();

  const stop = (): void => {
    done = true;
    deps.cache.off('update', onUpdate);
    if (expiry !== undefined) clearTimeout(expiry);
  };
  const fail = (e: unknown): void => {
    if (done) return;
    stop();
    logFailure(log, 'StreamSecrets', peer, e);
    call.emit('error', toStatus(e));
  };
  // Requests and cache updates are handled one at a time, in arrival order.
  const enqueue = (step: () => Promise<void>): void => {
    queue = queue.then(async () => {
      if (done) return;
      try {
        await step();
      } catch (e) {
        fail(e);
      }
    });
  };

  /** Sends the current content for `names` unless `onlyIfChanged` and it is what was last sent. */
  async function send(onlyIfChanged: boolean): Promise<void> {
    if (names === undefined || selectors === undefined) return;
    const now = deps.clock();
    scheduleExpiry(now);
    const built = build(deps, selectors, names);
    if (built === undefined) return;
    if (onlyIfChanged && built.versionInfo === lastVersion) return;
    await peerOf(call).confirm();
    if (done) return;
    const r = response(built);
    lastNonce = r.nonce;
    lastVersion = r.versionInfo;
    call.write(r);
  }

  function scheduleExpiry(now: Date): void {
    if (expiry !== undefined) clearTimeout(expiry);
    const next = Math.min(...deps.cache.entitled(selectors ?? [], now).map((e) => e.svid.notAfter.getTime()));
    if (Number.isFinite(next)) {
      expiry = setTimeout(onUpdate, Math.max(0, next - now.getTime()) + 10);
      expiry.unref();
    }
  }

  function onUpdate(): void {
    enqueue(() => send(true));
  }

  call.on('data', (req: DiscoveryRequest) => {
    enqueue(async () => {
      checkTypeUrl(req.typeUrl);
      selectors ??= (await peerOf(call).attest()).selectors;
      // A reply to a response before the last one: the client has not seen the newest yet.
      if (lastNonce !== undefined && req.responseNonce !== '' && req.responseNonce !== lastNonce) return;
      const changed = names === undefined || !sameNames(names, req.resourceNames);
      names = [...req.resourceNames];
      if (req.errorDetail !== undefined && req.responseNonce !== '') {
        log.warn(
          {
            method: 'StreamSecrets',
            peer,
            rejectedVersion: lastVersion,
            nonce: req.responseNonce,
            errorCode: req.errorDetail.code,
            error: req.errorDetail.message,
          },
          'the SDS client rejected (NACKed) the secrets it was sent; the next change is sent when it comes',
        );
      }
      if (changed) await send(false);
    });
  });
  call.on('end', () => {
    stop();
    call.end();
  });
  call.on('cancelled', stop);
  call.on('close', stop);
  call.on('error', stop);
  deps.cache.on('update', onUpdate);
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((n, i) => n === y[i]);
}

function logFailure(log: Logger, method: string, peer: string, e: unknown): void {
  if (isLanyardError(e)) log.warn({ method, peer, errorCode: e.code }, e.message);
  else log.error({ method, peer, err: e }, 'call failed');
}
