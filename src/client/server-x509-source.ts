/**
 * An X509Source backed by a Lanyard server: attests once (any configured attestor), then keeps the SVID fresh
 * with the Renew RPC at about half its lifetime (with jitter, so a fleet started together does not renew
 * together), follows WatchBundle and WatchRevocations, and retries with exponential back-off and jitter while
 * the server is away. The current SVID keeps serving until it expires; only then do the getters throw.

 * A task session's source (`fromSvid` with `session`, what startSession and redeemGrant return) renews the same
 * way into the same session and delegation chain, but never past the session's end, and ends for good when the
 * session does: ended, expired, revoked (its own SVID, a parent's, an ancestor session), as told by a refused
 * renewal or by the revocation checker it follows. It then emits 'ended' with the typed reason, stops every
 * timer, and its getters throw that reason: nothing is reissued behind the caller's back.
 *
 * Given several servers (or a name resolving to several), it fails over between them (server-endpoints.ts).
 */
import { federatedBundlesFromProto } from './federated-bundles';
import * as grpc from '@grpc/grpc-js';
import { X509Bundle } from '../bundle';
import {
  ErrorCode,
  InternalError,
  type LanyardError,
  RevokedError,
  SessionEndedError,
  SessionExpiredError,
} from '../errors';
import { errorFromStatus } from '../internal/grpc-status-map';
import { AttestationServiceClient, RenewRequest, type RenewResponse } from '../gen/lanyard/v1/attestation';
import { BundleServiceClient, type WatchBundleResponse } from '../gen/lanyard/v1/bundle';
import { SessionServiceClient } from '../gen/lanyard/v1/session';
import type { Bundle as BundleProto } from '../gen/lanyard/v1/types';
import { SpiffeId, TrustDomain } from '../spiffe';
import { authorizeId } from '../verify/authorize';
import type { RevocationChecker, RevocationNotifier } from '../verify/revocation';
import { RevocationCache, type RevocationCacheOptions } from '../verify/revocation-cache';
import { revocationQueryOf, verifyX509Svid } from '../verify/verify-x509-svid';
import { createCsr } from '../x509/csr';
import { generateSigningKeyPair, type KeyAlgorithm } from '../x509/keys';
import { X509SourceCertificateProvider } from './certificate-provider';
import type { HopLogger } from '../internal/logging';
import { peerChainOf } from '../internal/peer-chain';
import { attestToServer } from './attest';
import { watchRevocationsInto, type RevocationWatchHandle } from './revocation-watch';
import { LANYARD_CHANNEL_OPTIONS, lanyardChannelCredentials, SERVER_ID_PATH } from './server-credentials';
import { notReady } from './static-x509-source';
import { currentSvid } from './current-svid';
import { toX509Svid } from '../svid/x509-svid';
import type { X509Source } from './x509-source';
import type { X509Svid } from '../svid/x509-svid';
import { X509SourceEmitter } from './x509-source-events';
import { isFailoverError, ServerEndpoints, type ServerAddresses } from './server-endpoints';

export interface RetryOptions {
  /** First delay after a failure. Default 500 ms. */
  initialMs?: number;
  /** Cap on the delay. Default 30 s. */
  maxMs?: number;
}

interface CommonOptions {
  /**
   * The server's TLS listener (host:port), or several servers of one database: a list, or a name resolving to
   * several addresses (`host:port`, `dns:[//dns-server/]host:port`). Calls go to one until it is unavailable or
   * times out, then to the next; a refusal is never retried on another server.
   */
  server: ServerAddresses;
  /** The bundle to bootstrap with; replaced by the server's as it changes. */
  bundle: X509Bundle;
  keyAlgorithm?: KeyAlgorithm;
  /** Renew at this fraction of the SVID's lifetime. Default 0.5. */
  renewFraction?: number;
  /** Spread of the renewal point, as a fraction of the lifetime (± half of it). Default 0.1. */
  jitterFraction?: number;
  retry?: RetryOptions;
  /** Follow WatchBundle. Default true. */
  watchBundle?: boolean;
  /** Feed `revocations` from WatchRevocations. Default true. */
  watchRevocations?: boolean;
  /**
   * The revocation cache's staleness bound and policy (default 60 s, 'refuse': session SVIDs are refused with
   * ERR_REVOCATION_STALE while the feed is down). The source's logger receives its warnings.
   */
  revocationCache?: Omit<RevocationCacheOptions, 'logger'>;
  logger?: HopLogger;
  /** Per-call deadline for Attest and Renew. Default 15 s. */
  deadlineMs?: number;
  /** OID of the agent-context extension: the server's `agent_context.oid`. Default 1.3.6.1.4.1.262144.1.1. */
  agentContextOid?: string;
}

export interface ServerX509SourceOptions extends CommonOptions {
  attestorType: string;
  /**
   * Attestation evidence. A function is called for every attestation, so a source whose SVID expired while
   * the server was away can attest again with fresh evidence (a re-read PSAT); fixed bytes (a single-use
   * join token) are used once.
   */
  evidence: Uint8Array | (() => Uint8Array | Promise<Uint8Array>);
  answerChallenge?: (challenge: Uint8Array) => Uint8Array;
  spiffeId?: string;
}

export interface ExistingSvidOptions extends CommonOptions {
  /** An SVID obtained some other way (StartSession, a redeemed grant): kept fresh with Renew. */
  svid: X509Svid;
  /** The SVID is a task session's: the source ends with the session (see the class comment). */
  session?: SessionBounds;
}

/** What bounds a task session's source. */
export interface SessionBounds {
  /** When the session ends (StartSession's `expires_at`, a grant's `notAfter`): no renewal reaches past it. */
  expiresAt: Date;
  /**
   * Asked about the current SVID whenever its answers change (e.g. the workload source's `revocations`): the
   * source ends as soon as its session, an ancestor session or its certificate is revoked, not only at its next
   * renewal. Without it, the refused renewal tells.
   */
  revocations?: RevocationChecker & RevocationNotifier;
}

/**
 * The Renew refusals after which a session is over for good: retrying could not succeed, and attesting again
 * would make a new identity, not the session.
 */
const SESSION_OVER: ReadonlySet<string> = new Set([
  ErrorCode.SESSION_ENDED,
  ErrorCode.SESSION_EXPIRED,
  ErrorCode.SESSION_UNKNOWN,
  ErrorCode.REVOKED,
]);

export class ServerX509Source extends X509SourceEmitter implements X509Source {
  /**
   * Revocations streamed from the server: pass it as `revocation` to the hop helpers. It emits 'stale' when
   * the feed has been down for its staleness bound (alert on it) and 'synced' when it is back.
   */
  readonly revocations: RevocationCache;
  private svid: X509Svid | undefined;
  private bundle: X509Bundle;
  private federated = new Map<string, X509Bundle>();
  private closed = false;
  private renewTimer: NodeJS.Timeout | undefined;
  private bundleTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private acceptedAt = 0;
  private bundleCall: grpc.ClientReadableStream<WatchBundleResponse> | undefined;
  private revocationWatch: RevocationWatchHandle | undefined;
  private readonly watchClients = new Map<
    string,
    { bundle?: BundleServiceClient; session?: SessionServiceClient }
  >();
  private readonly serverId: SpiffeId;
  private session: SessionBounds | undefined;
  private endReason: LanyardError | undefined;
  private unfollowRevocations: (() => void) | undefined;
  private readonly endpoints: ServerEndpoints;

  private constructor(
    private readonly options: CommonOptions,
    private readonly attestation: Omit<ServerX509SourceOptions, keyof CommonOptions> | undefined,
  ) {
    super();
    this.revocations = new RevocationCache({
      ...options.revocationCache,
      ...(options.logger !== undefined ? { logger: options.logger } : {}),
      // Without a feed nothing would ever sync it: the timer would only report what the caller chose.
      ...(options.watchRevocations === false ? { checkIntervalMs: 0 } : {}),
    });
    this.bundle = options.bundle;
    this.endpoints = new ServerEndpoints(options.server);
    this.serverId = SpiffeId.fromPath(options.bundle.trustDomain, SERVER_ID_PATH);
  }

  /** Attests, then renews and watches in the background. Rejects when the first attestation is refused. */
  static async start(options: ServerX509SourceOptions): Promise<ServerX509Source> {
    const source = new ServerX509Source(options, {
      attestorType: options.attestorType,
      evidence: options.evidence,
      ...(options.answerChallenge !== undefined ? { answerChallenge: options.answerChallenge } : {}),
      ...(options.spiffeId !== undefined ? { spiffeId: options.spiffeId } : {}),
    });
    try {
      await source.attest();
    } catch (e) {
      await source.close();
      throw e;
    }
    source.startWatches();
    await source.revocationsSynced();
    return source;
  }

  /** Keeps an SVID obtained elsewhere fresh (Renew) and follows the bundle and revocations. */
  static async fromSvid(options: ExistingSvidOptions): Promise<ServerX509Source> {
    const source = new ServerX509Source(options, undefined);
    source.session = options.session;
    // Read again under this source's agentContextOid: the one it will hold its renewals to.
    source.accept(toX509Svid(options.svid.chain, options.svid.privateKey, options));
    const revocations = options.session?.revocations;
    if (revocations !== undefined) {
      source.unfollowRevocations = revocations.onRevocationChange(() => source.checkRevoked(revocations));
      source.checkRevoked(revocations);
    }
    // Names resolved now so the watches start on an address; unresolvable, they start on the name and retry.
    await source.endpoints.addresses().catch(() => undefined);
    source.startWatches();
    await source.revocationsSynced();
    return source;
  }

  /**
   * Resolves true once `revocations` holds the server's complete state (at once when not watching: false), or
   * false after `timeoutMs` (default the call deadline): until then, session SVIDs are refused as stale.
   * `start` and `fromSvid` wait for it, so a service does not begin by refusing every session.
   */
  async revocationsSynced(timeoutMs: number = this.options.deadlineMs ?? 15_000): Promise<boolean> {
    const watch = this.revocationWatch;
    if (watch === undefined) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
    });
    try {
      return await Promise.race([watch.ready.then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Why a session's source ended (undefined while it serves): the error its getters throw. */
  get ended(): LanyardError | undefined {
    return this.endReason;
  }

  getX509Svid(): X509Svid {
    if (this.endReason !== undefined) throw this.endReason;
    if (this.closed) throw notReady('the source is closed');
    return currentSvid(this.svid, 'no SVID yet', ' without renewal');
  }

  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle | undefined {
    if (this.closed) return undefined;
    if (td.equals(this.bundle.trustDomain)) return this.bundle;
    return this.federated.get(td.name);
  }

  /** The federated trust domains whose bundles this source holds (those its entry federates_with). */
  federatedTrustDomains(): TrustDomain[] {
    return [...this.federated.values()].map((b) => b.trustDomain);
  }

  /** Renews now (tests, or after an operator changed the entry); resolves once the new SVID is current. */
  async renewNow(): Promise<void> {
    clearTimeout(this.renewTimer);
    await this.renew();
    this.scheduleRenewal();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stop();
    this.removeAllListeners();
    return Promise.resolve();
  }

  /** Stops timers and streams and drops the SVID; listeners stay (so 'ended' can still be heard). */
  private stop(): void {
    this.closed = true;
    this.unfollowRevocations?.();
    clearTimeout(this.renewTimer);
    clearTimeout(this.bundleTimer);
    this.bundleCall?.cancel();
    this.revocationWatch?.close();
    this.revocations.close();
    for (const c of this.watchClients.values()) {
      c.bundle?.close();
      c.session?.close();
    }
    this.svid = undefined;
  }

  /** A session's source is over: report why once, then serve nothing. */
  private end(reason: LanyardError): void {
    if (this.closed) return;
    this.endReason = reason;
    this.stop();
    this.options.logger?.debug({ code: reason.code, err: reason.message }, 'x509 source: session over');
    this.emit('ended', reason);
    if (this.listenerCount('error') > 0) this.emit('error', reason);
  }

  /** Ends the source when the checker says its current SVID is revoked; a checker that cannot tell is ignored. */
  private checkRevoked(revocations: RevocationChecker): void {
    const svid = this.svid;
    if (svid === undefined || this.closed) return;
    let found: ReturnType<RevocationChecker['isRevoked']>;
    try {
      found = revocations.isRevoked(revocationQueryOf(svid));
    } catch {
      // Stale state cannot say the session ended; the next renewal will, if it did.
      return;
    }
    if (found === false) return;
    const what = svid.context?.sessionId ?? svid.id.toString();
    if (found !== true && found.kind === 'session') {
      this.end(
        new SessionEndedError(
          `session ${what} has ended: session ${found.id} (${found.relation ?? 'own'}) was revoked` +
            (found.detail !== undefined ? ` (${found.detail})` : ''),
        ),
      );
    } else {
      this.end(
        new RevokedError(`session ${what}: its SVID (serial ${svid.chain[0]!.serialHex}) was revoked`),
      );
    }
  }

  private async attest(): Promise<void> {
    const a = this.attestation;
    if (a === undefined) throw notReady('this source has no attestor: its SVID can only be renewed');
    const evidence = typeof a.evidence === 'function' ? await a.evidence() : a.evidence;
    const result = await this.endpoints.call(
      (server) =>
        attestToServer({
          server,
          bundle: this.bundle,
          attestorType: a.attestorType,
          evidence,
          ...(a.answerChallenge !== undefined ? { answerChallenge: a.answerChallenge } : {}),
          ...(a.spiffeId !== undefined ? { spiffeId: a.spiffeId } : {}),
          ...(this.options.keyAlgorithm !== undefined ? { keyAlgorithm: this.options.keyAlgorithm } : {}),
          deadlineMs: this.options.deadlineMs ?? 15_000,
          ...(this.options.agentContextOid !== undefined
            ? { agentContextOid: this.options.agentContextOid }
            : {}),
        }),
      { onFailover: this.logFailover('Attest') },
    );
    if (this.closed) return;
    this.setBundle(result.bundle, false);
    this.setFederated(result.federatedBundles);
    this.accept(result.svid);
  }

  private async renew(): Promise<void> {
    const current = this.svid;
    if (current === undefined) throw notReady('no SVID to renew');
    // A delegated session SVID keeps its key: its parent's binding names that key, and the server renews it for
    // that key only. Every other SVID gets a fresh key at each renewal.
    const privateKey =
      (current.context?.delegation.length ?? 0) > 0
        ? current.privateKey
        : generateSigningKeyPair(this.options.keyAlgorithm ?? 'ec-p256').privateKey;
    const csr = Buffer.from(createCsr(privateKey).der);
    const credentials = lanyardChannelCredentials(this.bundle, current);
    const res = await this.endpoints.call(
      async (server) => {
        const client = new AttestationServiceClient(server, credentials, LANYARD_CHANNEL_OPTIONS);
        try {
          return await new Promise<RenewResponse>((resolve, reject) => {
            client.renew(
              RenewRequest.fromPartial({ csr }),
              new grpc.Metadata(),
              { deadline: Date.now() + (this.options.deadlineMs ?? 15_000) },
              (e, r) => (e ? reject(e) : resolve(r)),
            );
          });
        } finally {
          client.close();
        }
      },
      { onFailover: this.logFailover('Renew') },
    );
    if (this.closed) return;
    if (res.svid === undefined || res.svid.certChain.length === 0) {
      throw new InternalError('Renew answered without an SVID');
    }
    if (res.bundle !== undefined) this.setBundle(bundleFromProto(res.bundle, this.bundle.trustDomain), false);
    // Checked like any peer would: a renewal that does not verify (a tampered chain, a dropped link) is not used.
    const chain = res.svid.certChain.map((b) => new Uint8Array(b));
    if (this.session !== undefined) {
      verifyX509Svid(chain, this, {
        trustDomain: this.bundle.trustDomain,
        cache: null,
        ...(this.options.agentContextOid !== undefined
          ? { agentContextOid: this.options.agentContextOid }
          : {}),
      });
    }
    this.setFederated(federatedBundlesFromProto(res.federatedBundles, this.bundle.trustDomain));
    this.accept(toX509Svid(chain, privateKey, this.options));
  }

  private logFailover(call: string): (address: string, e: Error) => void {
    return (address, e) =>
      this.options.logger?.warn(
        { server: address, next: this.endpoints.current(), err: e.message },
        `x509 source: ${call} did not reach the server: failing over`,
      );
  }

  /** The watch clients of the current server (one channel per server, kept for the source's life). */
  private watchClientsFor(creds: grpc.ChannelCredentials): {
    address: string;
    bundle: BundleServiceClient;
    session: SessionServiceClient;
  } {
    const address = this.endpoints.current();
    let c = this.watchClients.get(address);
    if (c === undefined) {
      c = {};
      this.watchClients.set(address, c);
    }
    c.bundle ??= new BundleServiceClient(address, creds, LANYARD_CHANNEL_OPTIONS);
    c.session ??= new SessionServiceClient(address, creds, LANYARD_CHANNEL_OPTIONS);
    return { address, bundle: c.bundle, session: c.session };
  }

  /** A watch stream broke: when its server did not answer, the next server becomes current. */
  private watchBroke(address: string, e: grpc.ServiceError, what: string): void {
    if (this.closed || !isFailoverError(e)) return;
    this.endpoints.failed(address);
    if (this.endpoints.current() !== address) {
      this.options.logger?.warn(
        { server: address, next: this.endpoints.current(), err: e.message },
        `x509 source: ${what} stream lost its server: failing over`,
      );
    }
  }

  /** Makes `svid` current, emits update, and schedules its renewal. */
  private accept(svid: X509Svid): void {
    this.svid = svid;
    this.acceptedAt = Date.now();
    this.failures = 0;
    this.options.logger?.debug(
      {
        spiffeId: svid.id.toString(),
        notAfter: svid.notAfter.toISOString(),
        serial: svid.chain[0]!.serialHex,
      },
      'x509 source: SVID current',
    );
    this.emit('update');
    this.scheduleRenewal();
    const revocations = this.session?.revocations;
    if (revocations !== undefined) this.checkRevoked(revocations);
  }

  private scheduleRenewal(): void {
    if (this.closed || this.svid === undefined) return;
    clearTimeout(this.renewTimer);
    // From when the SVID arrived, not its notBefore: issuers backdate notBefore, and half of a backdated lifetime
    // can already be over on arrival (a renewal storm).
    if (
      this.session !== undefined &&
      this.svid.notAfter.getTime() >= this.session.expiresAt.getTime() - 1000
    ) {
      // The session's last SVID: nothing may renew past the session, so the source ends with it.
      const svid = this.svid;
      this.renewTimer = setTimeout(
        () =>
          this.end(
            new SessionExpiredError(
              `session ${svid.context?.sessionId ?? svid.id.toString()} ended at ${svid.notAfter.toISOString()}`,
            ),
          ),
        Math.max(0, svid.notAfter.getTime() - Date.now()),
      );
      this.renewTimer.unref();
      return;
    }
    const start = Math.max(this.svid.chain[0]!.notBefore.getTime(), this.acceptedAt);
    const lifetime = Math.max(1000, this.svid.notAfter.getTime() - start);
    const fraction = this.options.renewFraction ?? 0.5;
    const jitter = (Math.random() - 0.5) * (this.options.jitterFraction ?? 0.1);
    const at = start + lifetime * Math.min(0.95, Math.max(0.05, fraction + jitter));
    this.renewTimer = setTimeout(() => void this.refresh(), Math.max(0, at - Date.now()));
    this.renewTimer.unref();
  }

  /** One renewal attempt; on failure a retry after back-off. Attests again once the SVID has expired. */
  private async refresh(): Promise<void> {
    if (this.closed) return;
    const expired = this.svid === undefined || this.svid.notAfter.getTime() <= Date.now();
    if (expired && this.session !== undefined) {
      // An expired session SVID cannot authenticate a renewal, and nothing else may stand in for it.
      this.end(
        new SessionExpiredError(
          `the session SVID expired at ${this.svid?.notAfter.toISOString() ?? '?'} before a renewal succeeded`,
        ),
      );
      return;
    }
    try {
      if (expired && typeof this.attestation?.evidence === 'function') await this.attest();
      else await this.renew();
    } catch (e) {
      if (this.closed) return;
      const err = typedError(e);
      if (this.session !== undefined && SESSION_OVER.has((err as Partial<LanyardError>).code ?? '')) {
        this.end(err as LanyardError);
        return;
      }
      this.failures += 1;
      this.options.logger?.warn({ err: err.message, failures: this.failures }, 'x509 source: refresh failed');
      if (this.listenerCount('error') > 0) this.emit('error', err);
      clearTimeout(this.renewTimer);
      let delay = this.backoff(this.failures);
      // A session's source retries no later than its SVID's expiry, where it ends instead of waiting on.
      if (this.session !== undefined && this.svid !== undefined) {
        delay = Math.min(delay, Math.max(0, this.svid.notAfter.getTime() - Date.now()));
      }
      this.renewTimer = setTimeout(() => void this.refresh(), delay);
      this.renewTimer.unref();
    }
  }

  /** Exponential with "equal jitter": half the delay fixed, half random, so retries spread out. */
  private backoff(attempt: number): number {
    const initial = this.options.retry?.initialMs ?? 500;
    const max = this.options.retry?.maxMs ?? 30_000;
    const d = Math.min(max, initial * 2 ** Math.min(attempt - 1, 20));
    return d / 2 + Math.random() * (d / 2);
  }

  private startWatches(): void {
    if (this.closed) return;
    if (this.options.watchBundle === false && this.options.watchRevocations === false) return;
    // mTLS with the source's own SVID (the server admits revocation watchers by identity), following the
    // SVID and the bundle as they rotate; the server is checked by SPIFFE ID.
    const provider = new X509SourceCertificateProvider(this, [this.bundle.trustDomain]);
    const authorize = authorizeId(this.serverId);
    const creds = grpc.experimental.createCertificateProviderChannelCredentials(provider, provider, {
      checkServerIdentity: (_host, cert) => {
        try {
          authorize(
            verifyX509Svid(peerChainOf(cert), this, {
              trustDomain: this.bundle.trustDomain,
              ...(this.options.agentContextOid !== undefined
                ? { agentContextOid: this.options.agentContextOid }
                : {}),
            }),
          );
          return undefined;
        } catch (e) {
          return e instanceof Error ? e : new Error(String(e));
        }
      },
    });
    if (this.options.watchBundle !== false) this.watchBundle(creds, 0);
    if (this.options.watchRevocations !== false) {
      let address = this.endpoints.current();
      const client = (): SessionServiceClient => {
        const c = this.watchClientsFor(creds);
        address = c.address;
        return c.session;
      };
      this.revocationWatch = watchRevocationsInto(client, this.revocations, {
        onError: (e) => this.watchBroke(address, e, 'revocation'),
        retryMs: this.options.retry?.initialMs ?? 500,
        ...(this.options.retry?.maxMs !== undefined ? { maxRetryMs: this.options.retry.maxMs } : {}),
        ...(this.options.logger !== undefined ? { logger: this.options.logger } : {}),
      });
    }
  }

  private watchBundle(creds: grpc.ChannelCredentials, attempt: number): void {
    if (this.closed) return;
    const { address, bundle: client } = this.watchClientsFor(creds);
    const call = client.watchBundle({ trustDomain: '' });
    this.bundleCall = call;
    let retried = false;
    const retry = (): void => {
      if (this.closed || retried) return;
      retried = true;
      this.bundleTimer = setTimeout(() => this.watchBundle(creds, attempt + 1), this.backoff(attempt + 1));
      this.bundleTimer.unref();
    };
    call.on('data', (m: WatchBundleResponse) => {
      attempt = 0;
      if (m.bundle !== undefined) this.setBundle(bundleFromProto(m.bundle, this.bundle.trustDomain), true);
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (!this.closed) this.options.logger?.debug({ err: e.message }, 'x509 source: bundle stream broke');
      this.watchBroke(address, e, 'bundle');
      retry();
    });
    call.on('end', retry);
  }

  /**
   * The entry's federated bundles as of the latest Attest or Renew: they follow the foreign domain's
   * rotation at each renewal, and a domain the entry no longer federates with is dropped.
   */
  private setFederated(bundles: readonly X509Bundle[]): void {
    this.federated = new Map(bundles.map((b) => [b.trustDomain.name, b]));
  }

  private setBundle(bundle: X509Bundle, emit: boolean): void {
    if (sameRoots(bundle, this.bundle)) return;
    this.bundle = bundle;
    this.options.logger?.debug(
      { trustDomain: bundle.trustDomain.name, roots: bundle.x509Authorities.length },
      'x509 source: bundle changed',
    );
    if (emit) this.emit('update');
  }
}

/** A server refusal as the LanyardError its code names (from the `lanyard-error-code` trailer); else as it is. */
function typedError(e: unknown): Error {
  if (e instanceof Error) {
    const remote = errorFromStatus(e as grpc.ServiceError);
    return remote ?? e;
  }
  return new Error(String(e));
}

function bundleFromProto(b: BundleProto, fallback: TrustDomain): X509Bundle {
  return X509Bundle.fromDer(
    b.trustDomain ? TrustDomain.parse(b.trustDomain) : fallback,
    b.x509Authorities.map((d) => new Uint8Array(d)),
  );
}

function sameRoots(a: X509Bundle, b: X509Bundle): boolean {
  if (!a.trustDomain.equals(b.trustDomain) || a.x509Authorities.length !== b.x509Authorities.length)
    return false;
  const known = new Set(b.x509Authorities.map((c) => c.sha256Hex));
  return a.x509Authorities.every((c) => known.has(c.sha256Hex));
}
