/**
 * `SpiffeWorkloadAPI` as the Workload API and Workload Endpoint standards define it, served from the
 * agent's cache to the attested local caller:
 * - every call needs metadata `workload.spiffe.io: true`, else INVALID_ARGUMENT;
 * - FetchX509SVID / FetchX509Bundles / FetchJWTBundles stream the full state at once and again on every
 *   change (rotation, bundle change, entitlement change); a caller entitled to nothing gets PERMISSION_DENIED,
 *   and an agent that has never reached its server UNAVAILABLE;
 * - FetchJWTSVID needs an audience and mints through the server (cached until half its lifetime);
 *   ValidateJWTSVID checks a token against the JWT keys of the bundle;
 * - the WIT-SVID calls answer UNIMPLEMENTED (the standard's answer for an endpoint without that profile).
 */
import * as grpc from '@grpc/grpc-js';
import {
  AgentNotReadyError,
  InvalidArgumentError,
  isLanyardError,
  LanyardError,
  NotEntitledError,
  SecurityHeaderMissingError,
} from '../../errors';
import {
  SpiffeWorkloadAPIService,
  type JWTBundlesResponse,
  type JWTSVIDRequest,
  type JWTSVIDResponse,
  type SpiffeWorkloadAPIServer,
  type ValidateJWTSVIDRequest,
  type ValidateJWTSVIDResponse,
  type X509BundlesResponse,
  type X509SVIDResponse,
} from '../../gen/spiffe/workload/workload';
import { toStatus } from '../../internal/grpc-call';
import type { Logger } from '../../internal/logging';
import type { Selector } from '../../store/types';
import type { AgentCache, CachedEntry, Entitlement } from '../cache';
import { validateJwtSvid } from '../jwt-svid';
import type { AttestedPeer, ServiceSpec } from './endpoint';
import { ForwardedStatus } from './forwarded-status';

export const WORKLOAD_API_HEADER = 'workload.spiffe.io';

export interface WorkloadApiDeps {
  cache: AgentCache;
  /** Mints a JWT-SVID for an entry under the agent (NodeService.NewJwtSvid). */
  newJwtSvid: (
    entryId: string,
    audience: string[],
  ) => Promise<{ token: string; issuedAt: Date; expiresAt: Date }>;
  clock: () => Date;
  logger: Logger;
}

export type PeerOf = (call: { getPeer(): string }) => AttestedPeer;
type Stream<Req, Res> = grpc.ServerWritableStream<Req, Res>;

export function workloadApiService(deps: WorkloadApiDeps, peerOf: PeerOf): ServiceSpec {
  const log = deps.logger.child({ service: 'SpiffeWorkloadAPI' });
  const implementation: SpiffeWorkloadAPIServer = {
    fetchX509Svid: (call) =>
      watch(deps, log, peerOf, call, 'FetchX509SVID', (selectors, now) =>
        x509SvidResponse(deps, selectors, now),
      ),
    fetchX509Bundles: (call) =>
      watch(deps, log, peerOf, call, 'FetchX509Bundles', (selectors) => x509BundlesResponse(deps, selectors)),
    fetchJwtBundles: (call) =>
      watch(deps, log, peerOf, call, 'FetchJWTBundles', (selectors) => jwtBundlesResponse(deps, selectors)),
    fetchJwtsvid: (call, callback) =>
      unary(log, peerOf, call, callback, 'FetchJWTSVID', async () =>
        fetchJwtSvid(deps, await selectorsOf(peerOf, call), call.request),
      ),
    validateJwtsvid: (call, callback) =>
      unary(log, peerOf, call, callback, 'ValidateJWTSVID', async () => {
        await selectorsOf(peerOf, call);
        return validate(deps, call.request);
      }),
    fetchWitsvid: (call) => call.emit('error', unimplemented('FetchWITSVID')),
    fetchWitBundles: (call) => call.emit('error', unimplemented('FetchWITBundles')),
  };
  return {
    definition: SpiffeWorkloadAPIService,
    implementation: implementation as unknown as grpc.UntypedServiceImplementation,
  };
}

function unimplemented(method: string): Partial<grpc.StatusObject> {
  return { code: grpc.status.UNIMPLEMENTED, details: `${method}: the WIT-SVID profile is not supported` };
}

/** The security header (Workload Endpoint standard §4), then the caller's selectors from attestation. */
export async function selectorsOf(
  peerOf: PeerOf,
  call: { metadata: grpc.Metadata; getPeer(): string },
): Promise<Selector[]> {
  const values = call.metadata.get(WORKLOAD_API_HEADER);
  if (values.length !== 1 || values[0] !== 'true') {
    throw new SecurityHeaderMissingError(`the Workload API needs the metadata ${WORKLOAD_API_HEADER}: true`);
  }
  // Attested again for every call and stream start, not once per connection (see attested-connection.ts).
  return (await peerOf(call).attest()).selectors;
}

/** A unary call: the answer goes out only if the caller is still what it was (checked right before). */
export function unary<Req, Res>(
  log: Logger,
  peerOf: PeerOf,
  call: grpc.ServerUnaryCall<Req, Res>,
  callback: grpc.sendUnaryData<Res>,
  method: string,
  fn: () => Promise<Res>,
): void {
  fn()
    .then(async (res) => {
      await peerOf(call).confirm();
      return res;
    })
    .then(
      (res) => callback(null, res),
      (e: unknown) => {
        logFailure(log, method, call.getPeer(), e);
        const status = e instanceof ForwardedStatus ? e.toStatus() : toStatus(e);
        callback(status as grpc.ServerErrorResponse);
      },
    );
}

function logFailure(log: Logger, method: string, peer: string, e: unknown): void {
  if (isLanyardError(e)) log.warn({ method, peer, errorCode: e.code }, e.message);
  else if (e instanceof ForwardedStatus) log.warn({ method, peer, errorCode: e.errorCode }, e.details);
  else log.error({ method, peer, err: e }, 'call failed');
}

/** undefined: nothing to send yet (entries match but their SVIDs are still being obtained). */
type Snapshot<Res> = { message: Res; fingerprint: string } | undefined;

/**
 * A streaming call: the current state at once, then again whenever the cache changes it (compared by a
 * fingerprint, so unrelated cache updates send nothing), and at the next SVID expiry. Each message goes out
 * only after the caller is confirmed to be what it was (one at a time, in order). Ends with the error when
 * the caller stops being entitled or is no longer the process that connected.
 */
function watch<Req, Res>(
  deps: WorkloadApiDeps,
  log: Logger,
  peerOf: PeerOf,
  call: Stream<Req, Res>,
  method: string,
  snapshot: (selectors: Selector[], now: Date) => Snapshot<Res>,
): void {
  let last = '';
  let done = false;
  let expiry: NodeJS.Timeout | undefined;
  let selectors: Selector[] | undefined;
  let sending: Promise<void> = Promise.resolve();
  const stop = (): void => {
    done = true;
    deps.cache.off('update', push);
    if (expiry !== undefined) clearTimeout(expiry);
  };
  const fail = (e: unknown): void => {
    if (done) return;
    stop();
    logFailure(log, method, call.getPeer(), e);
    call.emit('error', toStatus(e));
  };
  function push(): void {
    sending = sending.then(send);
  }
  async function send(): Promise<void> {
    if (done || selectors === undefined) return;
    try {
      const now = deps.clock();
      const snap = snapshot(selectors, now);
      scheduleExpiry(now);
      if (snap === undefined || snap.fingerprint === last) return;
      await peerOf(call).confirm();
      if (done) return;
      last = snap.fingerprint;
      call.write(snap.message);
    } catch (e) {
      fail(e);
    }
  }
  function scheduleExpiry(now: Date): void {
    if (expiry !== undefined) clearTimeout(expiry);
    const next = Math.min(...deps.cache.entitled(selectors ?? [], now).map((e) => e.svid.notAfter.getTime()));
    if (Number.isFinite(next)) {
      expiry = setTimeout(push, Math.max(0, next - now.getTime()) + 10);
      expiry.unref();
    }
  }
  call.on('cancelled', stop);
  call.on('close', stop);
  deps.cache.on('update', push);
  selectorsOf(peerOf, call).then((s) => {
    selectors = s;
    push();
  }, fail);
}

function requireSynced(deps: WorkloadApiDeps): void {
  if (deps.cache.bundle() === undefined) {
    throw new AgentNotReadyError('the agent has not reached its server yet: retry');
  }
}

function notEntitled(): LanyardError {
  return new NotEntitledError('no identity is registered for this workload on this agent');
}

/** Entries the caller matches; PERMISSION_DENIED when there are none. */
function matching(deps: WorkloadApiDeps, selectors: Selector[]): CachedEntry[] {
  requireSynced(deps);
  const entries = deps.cache.matchingEntries(selectors);
  if (entries.length === 0) throw notEntitled();
  return entries;
}

function bundleDer(deps: WorkloadApiDeps): { td: string; der: Buffer; sequence: number } {
  const b = deps.cache.bundle()!;
  return {
    td: b.trustDomain.idString(),
    der: Buffer.concat(b.x509Authorities.map((c) => c.der)),
    sequence: b.sequence ?? 0,
  };
}

/** The federated bundles of `entries` as [trust domain ID, concatenated DER], the Workload API's shape. */
function federatedDer(deps: WorkloadApiDeps, entries: readonly CachedEntry[]): [string, Buffer][] {
  return deps.cache
    .federatedFor(entries)
    .map((b) => [b.trustDomain.idString(), Buffer.concat(b.x509Authorities.map((c) => c.der))]);
}

function federatedFingerprint(federated: readonly [string, Buffer][]): string {
  return federated.map(([td, der]) => `${td}=${der.toString('base64')}`).join(',');
}

function x509SvidResponse(
  deps: WorkloadApiDeps,
  selectors: Selector[],
  now: Date,
): Snapshot<X509SVIDResponse> {
  const entries = matching(deps, selectors);
  const entitled: Entitlement[] = deps.cache.entitled(selectors, now);
  if (entitled.length === 0) {
    // Every SVID it would get has expired (the server has been unreachable for a whole lifetime): say so
    // rather than leave the caller waiting; one still being obtained for the first time is worth the wait.
    if (entries.every((e) => deps.cache.svid(e.id) !== undefined)) {
      throw new AgentNotReadyError(
        'the SVIDs for this workload expired and the agent cannot reach its server: retry',
      );
    }
    return undefined;
  }
  const bundle = bundleDer(deps);
  const federated = federatedDer(
    deps,
    entitled.map((e) => e.entry),
  );
  return {
    fingerprint: `${bundle.der.toString('base64')}|${federatedFingerprint(federated)}|${entitled.map((e) => e.svid.chain[0]!.sha256Hex).join(',')}`,
    message: {
      svids: entitled.map((e) => {
        // The Workload API's encoding: certificates back to back and a PKCS#8 key, go-spiffe's MarshalRaw.
        const raw = e.svid.marshalRaw();
        return {
          spiffeId: e.svid.id.toString(),
          x509Svid: Buffer.from(raw.certificates),
          x509SvidKey: Buffer.from(raw.key),
          bundle: bundle.der,
          hint: '',
        };
      }),
      crl: [],
      federatedBundles: Object.fromEntries(federated),
    },
  };
}

function x509BundlesResponse(deps: WorkloadApiDeps, selectors: Selector[]): Snapshot<X509BundlesResponse> {
  const entries = matching(deps, selectors);
  const bundle = bundleDer(deps);
  const federated = federatedDer(deps, entries);
  return {
    fingerprint: `${bundle.der.toString('base64')}|${federatedFingerprint(federated)}`,
    message: { crl: [], bundles: { [bundle.td]: bundle.der, ...Object.fromEntries(federated) } },
  };
}

function jwtBundlesResponse(deps: WorkloadApiDeps, selectors: Selector[]): Snapshot<JWTBundlesResponse> {
  const entries = matching(deps, selectors);
  const bundles: Record<string, Buffer> = {};
  for (const b of [deps.cache.bundle()!, ...deps.cache.federatedFor(entries)]) {
    const keys = [...b.jwtAuthorities].map(([kid, key]) => ({
      ...key.export({ format: 'jwk' }),
      use: 'jwt-svid',
      kid,
    }));
    bundles[b.trustDomain.idString()] = Buffer.from(JSON.stringify({ keys }));
  }
  const fingerprint = Object.entries(bundles)
    .map(([td, json]) => `${td}=${json.toString()}`)
    .join('|');
  return { fingerprint, message: { bundles } };
}

async function fetchJwtSvid(
  deps: WorkloadApiDeps,
  selectors: Selector[],
  req: JWTSVIDRequest,
): Promise<JWTSVIDResponse> {
  if (req.audience.length === 0 || req.audience.some((a) => a === '')) {
    throw new InvalidArgumentError('audience is required');
  }
  let entries = matching(deps, selectors);
  if (req.spiffeId !== '') {
    entries = entries.filter((e) => e.spiffeId === req.spiffeId);
    if (entries.length === 0) throw notEntitled();
  }
  const now = deps.clock().getTime();
  const svids = [];
  for (const entry of entries) {
    let jwt = deps.cache.jwt(entry.id, req.audience);
    const half = jwt && jwt.issuedAt.getTime() + (jwt.expiresAt.getTime() - jwt.issuedAt.getTime()) / 2;
    if (jwt === undefined || half === undefined || now >= half) {
      try {
        jwt = await deps.newJwtSvid(entry.id, req.audience);
      } catch (e) {
        if (isLanyardError(e)) throw e;
        throw new AgentNotReadyError(
          `the server could not mint a JWT-SVID: ${(e as { details?: string }).details ?? String(e)}`,
        );
      }
      deps.cache.putJwt(entry.id, req.audience, jwt);
    }
    svids.push({ spiffeId: entry.spiffeId, svid: jwt.token, hint: '' });
  }
  return { svids };
}

function validate(deps: WorkloadApiDeps, req: ValidateJWTSVIDRequest): ValidateJWTSVIDResponse {
  if (req.audience === '') throw new InvalidArgumentError('audience is required');
  if (req.svid === '') throw new InvalidArgumentError('svid is required');
  requireSynced(deps);
  const bundle = deps.cache.bundle()!;
  const v = validateJwtSvid(
    req.svid,
    req.audience,
    (td) => (td.name === bundle.trustDomain.name ? bundle : undefined),
    deps.clock(),
  );
  return { spiffeId: v.spiffeId.toString(), claims: v.claims };
}
