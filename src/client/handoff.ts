/**
 * Handing work to the next hop:
 *  - the service first generates the key its delegated SVID will hold (`HandoffKey`, or a key offer over the
 *    hop, see src/hop/handoff.ts) and gives the caller the key's SHA-256;
 *  - the caller (it holds its session SVID's key) signs a grant naming that key locally and registers it with
 *    CreateGrant: `grantFor`;
 *  - the service redeems it with its own workload SVID and a CSR for that key, and gets a delegated SVID for
 *    itself: `redeemGrant`. Given the caller's verified peer (`req.agent`, `hopPeerOf(call)`), it also checks that
 *    the grant was signed with the very certificate that authenticated the request, so a grant relayed by
 *    someone else is refused.
 * The next hop then sees principal -> ... -> caller -> this service in the SVID's delegation chain, every key in
 * it signed for by the hop before.
 *
 * `startSession` (StartSession) gives an agent the session SVID a chain starts from.
 *
 * Both return a SessionX509Source: it renews the session SVID (Renew) at about half its lifetime, keeping the
 * session id and the delegation chain, until the session ends; then it emits 'ended' and stops (see
 * ServerX509Source).
 */
import * as grpc from '@grpc/grpc-js';
import { timingSafeEqual } from 'node:crypto';
import { X509Bundle, type X509BundleSource } from '../bundle';
import { AuthorizationError, InternalError, InvalidArgumentError } from '../errors';
import { errorFromStatus } from '../internal/grpc-status-map';
import {
  type CreateGrantResponse,
  SessionServiceClient,
  type PrincipalEvidence,
  RedeemGrantRequest,
  type RedeemGrantResponse,
  StartSessionRequest,
  type StartSessionResponse,
} from '../gen/lanyard/v1/session';
import type { Bundle as BundleProto } from '../gen/lanyard/v1/types';
import { TrustDomain } from '../spiffe';
import { verifyX509Svid } from '../verify/verify-x509-svid';
import { createCsr } from '../x509/csr';
import { generateSigningKeyPair, type KeyAlgorithm } from '../x509/keys';
import type { ParsedCertificate } from '../x509/certificate';
import { signGrant, type ChildKey } from './delegation';
import type { HandoffKey } from './handoff-keys';
import { LANYARD_CHANNEL_OPTIONS, lanyardChannelCredentials } from './server-credentials';
import { ServerX509Source, type RetryOptions } from './server-x509-source';
import { ServerEndpoints, type ServerAddresses } from './server-endpoints';
import { notReady, StaticX509Source } from './static-x509-source';
import { toX509Svid } from '../svid/x509-svid';
import type { X509Source } from './x509-source';
import type { HopLogger } from '../internal/logging';
import { isRevocationNotifier, type RevocationChecker, type RevocationNotifier } from '../verify/revocation';
import type { X509Svid } from '../svid/x509-svid';
import type { AgentContext } from '../x509/agent-context/types';

/** How a session names its principal (an ID token); absent, the agent is its own principal. */
export type { PrincipalEvidence };

export interface HandoffServer {
  /**
   * host:port of the Lanyard server's TLS listener, or several servers of one database (a list, or a name
   * resolving to several; see ServerX509Source's `server`). Each call goes to the current server and moves to the
   * next when one does not answer (a refusal is never offered to another), and the session source renews
   * through them the same way, so a session outlives the loss of the server that started it.
   */
  server: ServerAddresses;
  deadlineMs?: number;
  /** OID of the agent-context extension: the server's `agent_context.oid`. Default 1.3.6.1.4.1.262144.1.1. */
  agentContextOid?: string;
}

/** How the session source that startSession and redeemGrant return keeps its SVID fresh. */
export interface SessionRenewalOptions {
  /** Renew at this fraction of each SVID's lifetime. Default 0.5. */
  renewFraction?: number;
  /** Spread of the renewal point, as a fraction of the lifetime (± half of it). Default 0.1. */
  jitterFraction?: number;
  /** Back-off after a failed renewal. Default 500 ms doubling to 30 s. */
  retry?: RetryOptions;
  logger?: HopLogger;
  /**
   * Where the source learns at once that its session (or an ancestor, or its certificate) was revoked. Default:
   * the `revocations` of `source` when it has them (a ServerX509Source); `false`: only a refused renewal tells.
   */
  revocations?: (RevocationChecker & RevocationNotifier) | false;
}

/**
 * A task session's SVID as a source that renews within the session and ends with it ('ended' event, `ended`
 * reason). Close it when the task is done.
 */
export type SessionX509Source = ServerX509Source & {
  /** The session's id (the agent context's session id). */
  readonly sessionId: string;
  /** When the session ends: no SVID of it lives past this. */
  readonly sessionExpiresAt: Date;
};

export interface GrantForOptions extends HandoffServer {
  /** The caller's source; its current SVID must be a session SVID (StartSession or a redeemed grant). */
  source: X509Source;
  /** SPIFFE ID of the service that will redeem. */
  childId: string;
  /**
   * The key the service will redeem with, as it gave it: the hex SHA-256 of its SubjectPublicKeyInfo
   * (`HandoffKey.id`, a key offer's `keySha256`), those 32 bytes, or the public key itself.
   */
  childKey: ChildKey;
  /** A subset of the caller's scopes. */
  scopes: string[];
  /** Lifetime of the delegated SVIDs; default (and at most) the caller SVID's remaining lifetime. */
  ttlSeconds?: number;
  /** How long the child has to redeem it. Default 60 s, the most the server accepts. */
  redeemWithinSeconds?: number;
  /**
   * How many further delegations the child may make below itself: 0 = none (the child's session cannot grant),
   * 1 = one more hop, and so on. Absent: no bound beyond what the caller may already allow (its session's depth
   * limit and the entries' `max_delegation_depth`). It only narrows: a value above what the caller may allow is
   * refused (ERR_DELEGATION_TOO_DEEP), as is a grant with it to a child of another trust domain (`grantAcross`,
   * ERR_INVALID_ARGUMENT), whose server the bound cannot reach. The server holds it (the signed binding has no
   * such field), so it binds sessions delegated through this server; verifiers do not see it.
   */
  maxDepth?: number;
}

export interface HandoffGrant {
  /**
   * What the service redeems; pass it along with the request (e.g. the `lanyard-grant` header). It is the hex
   * SHA-256 of the child key, so the service finds the key it offered by it.
   */
  grantId: string;
  redeemBy: Date;
  /**
   * How many further delegations the child may make below itself, as the server holds it: `maxDepth` when it was
   * given, otherwise what the caller may allow. The child's own entry may allow fewer.
   */
  maxDepth: number;
}

/** Caller side: signs a grant for `childId`'s key with the caller's own session key and registers it. */
export async function grantFor(options: GrantForOptions): Promise<HandoffGrant> {
  const { grant } = await signAndRegister(options);
  return grant;
}

/**
 * What a parent hands a child of another (federated) trust domain: the binding it signed, its signature and its
 * own session SVID chain, which the child's server checks with the parent domain's bundle. Nothing in it is
 * secret (the child's key is bound, so only the child can use it), but it is single-use and short-lived.
 */
export interface ForeignGrant {
  binding: Uint8Array;
  signature: Uint8Array;
  /** The parent's session SVID, then any intermediates, DER. */
  parentChain: Uint8Array[];
}

/**
 * Caller side, across trust domains: signs a grant for a child of a federated domain (`childId` of that domain)
 * and registers it with the caller's own server (CreateGrant: its allowed_delegates, scopes and lifetime rules
 * and its audit trail apply as for any grant), then returns what the child redeems at its own server.
 */
export async function grantAcross(options: GrantForOptions): Promise<HandoffGrant & ForeignGrant> {
  const { grant, signed, svid } = await signAndRegister(options);
  return {
    ...grant,
    binding: signed.bindingDer,
    signature: signed.signature,
    parentChain: svid.chain.map((c) => Uint8Array.from(c.der)),
  };
}

async function signAndRegister(
  options: GrantForOptions,
): Promise<{ grant: HandoffGrant; signed: ReturnType<typeof signGrant>; svid: X509Svid }> {
  const { maxDepth } = options;
  // Checked here too: the wire type is an integer, and a fraction would be cut silently on the way.
  if (maxDepth !== undefined && (!Number.isSafeInteger(maxDepth) || maxDepth < 0)) {
    throw new InvalidArgumentError(`maxDepth must be an integer >= 0, got ${maxDepth}`);
  }
  const svid = options.source.getX509Svid();
  const notAfter =
    options.ttlSeconds !== undefined
      ? new Date(Math.min(svid.notAfter.getTime(), Date.now() + options.ttlSeconds * 1000))
      : svid.notAfter;
  const signed = signGrant({
    parentCert: svid.chain[0]!,
    parentKey: svid.privateKey,
    childId: options.childId,
    childKey: options.childKey,
    scopes: options.scopes,
    notAfter,
    ...(options.redeemWithinSeconds !== undefined
      ? { redeemBy: new Date(Date.now() + options.redeemWithinSeconds * 1000) }
      : {}),
    ...(options.agentContextOid !== undefined ? { agentContextOid: options.agentContextOid } : {}),
  });
  const res = await onServers(options, options.source, svid, (client) =>
    unary<CreateGrantResponse>((cb) =>
      client.createGrant(
        {
          binding: Buffer.from(signed.bindingDer),
          signature: Buffer.from(signed.signature),
          maxDepth,
        },
        new grpc.Metadata(),
        { deadline: Date.now() + (options.deadlineMs ?? 15_000) },
        cb,
      ),
    ),
  );
  return {
    grant: {
      grantId: res.grantId,
      redeemBy: res.redeemBy ?? signed.binding.redeemBy,
      maxDepth: res.maxDepth,
    },
    signed,
    svid,
  };
}

/** The verified caller, as a hop helper hands it over (`HopPeer` fits). */
export interface HandoffCaller {
  spiffeId: string;
  chain: readonly ParsedCertificate[];
}

export interface RedeemGrantOptions extends HandoffServer, SessionRenewalOptions {
  /** The service's own source (its workload SVID redeems). */
  source: X509Source;
  /** The key the grant names (the grant's id is its `id`); it becomes the delegated SVID's key. */
  key: HandoffKey;
  /**
   * The verified caller that sent the grant id. When given, the delegated SVID's last link must name the
   * caller's SPIFFE ID and the certificate the caller authenticated with; otherwise ERR_UNAUTHORIZED.
   */
  caller?: HandoffCaller;
}

/**
 * Service side: redeems the grant for `key` and returns the delegated SVID as a source that renews it (same
 * key: the grant names it) until the grant's end; close it when the task is done.
 * @throws the server's gRPC error (ERR_GRANT_* codes in `lanyard-error-code`), or AuthorizationError when the
 *   grant does not come from `caller`.
 */
export async function redeemGrant(options: RedeemGrantOptions): Promise<SessionX509Source> {
  const own = options.source.getX509Svid();
  const res = await callRedeemGrant(options, own, { grantId: options.key.id });
  return toSource(res, own, options.key.privateKey, options.caller, options);
}

/** RedeemGrant with the service's own workload SVID, the grant's key as the CSR's. */
async function callRedeemGrant(
  options: HandoffServer & { source: X509Source; key: HandoffKey },
  own: X509Svid,
  request: Omit<Partial<RedeemGrantRequest>, 'csr'>,
): Promise<RedeemGrantResponse> {
  return onServers(options, options.source, own, (client) =>
    unary<RedeemGrantResponse>((cb) =>
      client.redeemGrant(
        RedeemGrantRequest.fromPartial({ ...request, csr: Buffer.from(options.key.csr()) }),
        new grpc.Metadata(),
        { deadline: Date.now() + (options.deadlineMs ?? 15_000) },
        cb,
      ),
    ),
  );
}

export interface RedeemForeignGrantOptions extends HandoffServer {
  /**
   * The service's own source (its workload SVID redeems). It must hold the parent domain's bundle (an entry that
   * federates with it), with which the delegated SVID is checked before it is used.
   */
  source: X509Source;
  /** The key the grant names; it becomes the delegated SVID's key. */
  key: HandoffKey;
  grant: ForeignGrant;
  /** As for redeemGrant: the verified caller the grant must come from. */
  caller?: HandoffCaller;
}

/**
 * Service side, across trust domains: redeems a parent's foreign grant at this service's own server and returns
 * the delegated SVID (its chain crosses the boundary: the parent's link carries the parent's SVID) as a source.
 * @throws the server's gRPC error (ERR_GRANT_*, ERR_CONTEXT_FOREIGN_DOMAIN for a domain not federated, or the
 *   parent SVID's verification code), or AuthorizationError when the grant does not come from `caller`.
 */
export async function redeemForeignGrant(options: RedeemForeignGrantOptions): Promise<StaticX509Source> {
  const own = options.source.getX509Svid();
  const res = await callRedeemGrant(options, own, {
    foreignGrant: {
      binding: Buffer.from(options.grant.binding),
      signature: Buffer.from(options.grant.signature),
      parentChain: options.grant.parentChain.map((c) => Buffer.from(c)),
    },
  });
  return toStaticSource(res, own, options.key.privateKey, options.caller, options, options.source);
}

export interface StartSessionOptions extends HandoffServer, SessionRenewalOptions {
  /** The agent's workload source. */
  source: X509Source;
  /** Absent: the agent itself is the principal. */
  principal?: PrincipalEvidence;
  intent?: string;
  scopes?: string[];
  /**
   * How long the session lasts; default one SVID lifetime. It may exceed the entry's SVID TTL (up to the
   * server's `limits.max_session_ttl`): the source renews the session SVID within it.
   */
  ttlSeconds?: number;
  keyAlgorithm?: KeyAlgorithm;
}

/** StartSession: a session SVID for the agent, as a renewing source (the start of a delegation chain). */
export async function startSession(options: StartSessionOptions): Promise<SessionX509Source> {
  const own = options.source.getX509Svid();
  const { privateKey } = generateSigningKeyPair(options.keyAlgorithm ?? 'ec-p256');
  const csr = Buffer.from(createCsr(privateKey).der);
  const res = await onServers(options, options.source, own, (client) =>
    unary<StartSessionResponse>((cb) =>
      client.startSession(
        StartSessionRequest.fromPartial({
          csr,
          ...(options.principal !== undefined ? { principal: options.principal } : {}),
          intent: options.intent ?? '',
          scopes: options.scopes ?? [],
          ttlSeconds: options.ttlSeconds ?? 0,
        }),
        new grpc.Metadata(),
        { deadline: Date.now() + (options.deadlineMs ?? 15_000) },
        cb,
      ),
    ),
  );
  return toSource(res, own, privateKey, undefined, options);
}

/** What a redeemed or started session's answer holds, once it verified like any peer would verify it. */
interface CheckedAnswer {
  chain: Uint8Array[];
  bundle: X509Bundle;
  context: AgentContext;
  leafNotAfter: Date;
  contextOid: { agentContextOid?: string };
}

function checkAnswer(
  res: { svid?: { certChain: Buffer[] }; bundle?: BundleProto },
  own: X509Svid,
  caller: HandoffCaller | undefined,
  server: HandoffServer,
  /** Bundles of other trust domains the SVID's chain may cross (the redeeming service's source). */
  federated?: X509BundleSource,
): CheckedAnswer {
  const contextOid = server.agentContextOid !== undefined ? { agentContextOid: server.agentContextOid } : {};
  if (res.svid === undefined || res.svid.certChain.length === 0) {
    throw new InternalError('the server answered without an SVID');
  }
  const td = own.id.trustDomain;
  const bundle =
    res.bundle !== undefined && res.bundle.x509Authorities.length > 0
      ? X509Bundle.fromDer(
          res.bundle.trustDomain ? TrustDomain.parse(res.bundle.trustDomain) : td,
          res.bundle.x509Authorities.map((b) => new Uint8Array(b)),
        )
      : undefined;
  const chain = res.svid.certChain.map((b) => new Uint8Array(b));
  // Checked like any peer would check it: an answer that does not verify is not used.
  const ownBundle = bundle ?? new X509Bundle(td);
  const bundles: X509BundleSource =
    federated === undefined
      ? ownBundle
      : {
          getX509BundleForTrustDomain: (d: TrustDomain) =>
            d.equals(td) ? ownBundle : federated.getX509BundleForTrustDomain(d),
        };
  const verified = verifyX509Svid(chain, bundles, {
    trustDomain: td,
    cache: null,
    ...contextOid,
  });
  if (caller !== undefined) {
    const last = verified.context?.delegation.at(-1);
    const callerLeaf = caller.chain[0];
    if (
      last === undefined ||
      callerLeaf === undefined ||
      last.spiffeId !== caller.spiffeId ||
      !timingSafeEqual(Buffer.from(last.certSha256), Buffer.from(callerLeaf.sha256))
    ) {
      throw new AuthorizationError(
        `the redeemed grant was not signed by the caller ${caller.spiffeId} with the certificate it called with`,
      );
    }
  }
  if (bundle === undefined) throw notReady('the server answered without a bundle');
  const context = verified.context;
  if (context === undefined)
    throw new InternalError('the server answered with an SVID without agent context');
  return { chain, bundle, context, leafNotAfter: verified.chain[0]!.notAfter, contextOid };
}

/**
 * A cross-domain session stays fixed: this domain's server verifies its callers with its own bundle only, so the
 * SVID cannot be renewed there, and it lives at most CROSS_DOMAIN_SESSION_MAX_SECONDS.
 */
function toStaticSource(
  res: { svid?: { certChain: Buffer[] }; bundle?: BundleProto },
  own: X509Svid,
  privateKey: import('node:crypto').KeyObject,
  caller: HandoffCaller | undefined,
  server: HandoffServer,
  federated: X509BundleSource,
): StaticX509Source {
  const { chain, bundle, contextOid } = checkAnswer(res, own, caller, server, federated);
  return new StaticX509Source(toX509Svid(chain, privateKey, contextOid), bundle);
}

async function toSource(
  res: { svid?: { certChain: Buffer[] }; bundle?: BundleProto; expiresAt?: Date | undefined },
  own: X509Svid,
  privateKey: import('node:crypto').KeyObject,
  caller: HandoffCaller | undefined,
  options: HandoffServer & SessionRenewalOptions & { source: X509Source; keyAlgorithm?: KeyAlgorithm },
): Promise<SessionX509Source> {
  const server = options;
  const { chain, bundle, context, leafNotAfter, contextOid } = checkAnswer(res, own, caller, server);
  // A delegated session ends with its grant (the last link's binding); a root session when the server says.
  const expiresAt = context.delegation.at(-1)?.binding.notAfter ?? res.expiresAt ?? leafNotAfter;
  const revocations =
    options.revocations === false ? undefined : (options.revocations ?? revocationsOf(options.source));
  const source = await ServerX509Source.fromSvid({
    server: server.server,
    bundle,
    svid: toX509Svid(chain, privateKey, contextOid),
    session: { expiresAt, ...(revocations !== undefined ? { revocations } : {}) },
    // One pair of streams per session would not scale with sessions; Renew brings the bundle along, and the
    // caller's source (or `revocations`) brings the revocation state.
    watchBundle: false,
    watchRevocations: false,
    ...contextOid,
    ...(server.deadlineMs !== undefined ? { deadlineMs: server.deadlineMs } : {}),
    ...(options.keyAlgorithm !== undefined ? { keyAlgorithm: options.keyAlgorithm } : {}),
    ...(options.renewFraction !== undefined ? { renewFraction: options.renewFraction } : {}),
    ...(options.jitterFraction !== undefined ? { jitterFraction: options.jitterFraction } : {}),
    ...(options.retry !== undefined ? { retry: options.retry } : {}),
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
  });
  return Object.assign(source, { sessionId: context.sessionId, sessionExpiresAt: expiresAt });
}

/** The revocation state a source follows, when it has one (a ServerX509Source's `revocations`). */
function revocationsOf(source: X509Source): (RevocationChecker & RevocationNotifier) | undefined {
  const r = (source as { revocations?: unknown }).revocations;
  return isRevocationNotifier(r) && typeof (r as Partial<RevocationChecker>).isRevoked === 'function'
    ? (r as RevocationChecker & RevocationNotifier)
    : undefined;
}

/**
 * `call` with a SessionService client presenting `svid`, on the current server of `server.server`, failing over
 * to the next when one does not answer (server-endpoints.ts): a refusal is returned as it is.
 */
async function onServers<T>(
  server: HandoffServer,
  source: X509Source,
  svid: X509Svid,
  call: (client: SessionServiceClient) => Promise<T>,
): Promise<T> {
  const bundle = source.getX509BundleForTrustDomain(svid.id.trustDomain);
  if (bundle === undefined) throw notReady(`no bundle for ${svid.id.trustDomain.name}`);
  const credentials = lanyardChannelCredentials(bundle, svid);
  return new ServerEndpoints(server.server).call(async (address) => {
    const client = new SessionServiceClient(address, credentials, LANYARD_CHANNEL_OPTIONS);
    try {
      return await call(client);
    } finally {
      client.close();
    }
  });
}

function unary<T>(start: (cb: (e: grpc.ServiceError | null, r?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    start((e, r) => (e ? reject(fromServiceError(e)) : resolve(r as T))),
  );
}

/** The server's refusal as a LanyardError with its stable code (from the `lanyard-error-code` trailer). */
function fromServiceError(e: grpc.ServiceError): Error {
  const remote = errorFromStatus(e);
  if (remote !== undefined) return remote;
  return e;
}
