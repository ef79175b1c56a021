/**
 * The one verification path every hop helper runs: the peer's certificate chain through verifyX509Svid (trust
 * domain, revocation), then the authorizer or policy, then a HopDecision to `onDecision` and a log line, for an
 * accept and for every refusal. Nothing here knows about sockets or frameworks.
 */
import {
  ClientCertRequiredError,
  ErrorCode,
  InternalError,
  InvalidArgumentError,
  isLanyardError,
  LanyardError,
  WrongTrustDomainError,
} from '../errors';
import type { X509BundleSource } from '../bundle';
import { SpiffeId, type TrustDomain } from '../spiffe';
import {
  verifyX509Svid,
  type VerifyX509SvidResult,
  type VerifyX509SvidOptions,
} from '../verify/verify-x509-svid';
import type { RevocationChecker } from '../verify/revocation';
import { spiffeIdOfLeaf } from '../svid/rules';
import type { VerificationCache } from '../verify/cache';
import { resolveAgentContextOid } from '../x509/agent-context/oid';
import type { AgentContext } from '../x509/agent-context/types';
import type { HopLogger } from '../internal/logging';
import { ParsedCertificate } from '../x509/certificate';
import type { HopDecision, HopDecisionListener, HopTransport } from './decision';
import type { KeptVerdict } from './kept-verdict';
import { objectSlot } from './object-slot';
import {
  callAuthorize,
  type HopAuthorize,
  type HopRequest,
  type PolicyDecision,
  PolicyDeniedError,
  policyOutcome,
} from './policy';

/** The verified peer a helper hands to the application (`req.agent`, `peerOf(socket)`, `hopPeerOf(call)`). */
export interface HopPeer {
  /** The peer's SPIFFE ID as a string, e.g. `spiffe://lanyard.local/agents/planner`. */
  readonly spiffeId: string;
  readonly id: SpiffeId;
  /** Who acts, for whom, with which scopes, and through which delegation chain. */
  readonly context?: Readonly<AgentContext>;
  /** The validated path, the leaf first and the bundle's root last. */
  readonly chain: readonly ParsedCertificate[];
  /** Serial of the peer's leaf, lowercase hex. */
  readonly serialHex: string;
  /** The policy set version that allowed this request, when a policy decided. */
  readonly policyVersion?: string;
}

export interface HopVerifyOptions {
  /** Where peers' trust bundles come from: usually the service's own X509Source. */
  bundles: X509BundleSource;
  /**
   * Decides about each verified peer. Required so that "anyone with an SVID" is a visible choice:
   * pass `authorizeAny()` or `authorizeMemberOf(td)` for that.
   */
  authorize: HopAuthorize;
  /**
   * The service's own trust domain; default the trust domain of `source`'s SVID. Peers of any other trust
   * domain are refused (ERR_WRONG_TRUST_DOMAIN) unless it is listed in `federatedTrustDomains`. When neither
   * this nor an SVID of the source is known, any domain `bundles` holds is accepted.
   */
  trustDomain?: TrustDomain | string;
  /**
   * Federated trust domains whose peers this hop accepts (then the authorizer decides about each). A source
   * that holds a federated bundle (an entry with federates_with) makes that domain's SVIDs verifiable; this
   * list is where a service says it serves them. Default: none.
   */
  federatedTrustDomains?: readonly (TrustDomain | string)[];
  /** Consulted for every peer, e.g. a ServerX509Source's `revocations`, fed by the server's stream. */
  revocation?: RevocationChecker;
  /** Name of this service in decisions and policy requests; default the SPIFFE ID of `source`. */
  service?: string;
  /** The service's own X509Source: names the service when `service` is not given. */
  source?: { getX509Svid(): { id: SpiffeId } };
  onDecision?: HopDecisionListener;
  logger?: HopLogger;
  /** Default: the verifier's process-wide cache; null: none. */
  cache?: VerificationCache | null;
  /**
   * OID peers' agent contexts are read under: the issuing server's `agent_context.oid`. Default
   * 1.3.6.1.4.1.262144.1.1. A peer whose context sits under another OID is refused (ERR_AGENT_CONTEXT_OID_MISMATCH).
   */
  agentContextOid?: string;
}

/**
 * Checks the options a helper is built with, so that a bad `agentContextOid` fails when the helper is made, not
 * on every peer. @throws AgentContextError(ERR_INVALID_AGENT_CONTEXT_OID)
 */
export function checkHopVerifyOptions<T extends Pick<HopVerifyOptions, 'agentContextOid'>>(options: T): T {
  resolveAgentContextOid(options.agentContextOid);
  return options;
}

/**
 * The verifier's options of a helper's own verify options, made when the helper is made (`prepareHopVerifyOptions`)
 * instead of with four spreads on every handshake and every request that misses the kept verdict.
 */
const preparedSvidOptions = objectSlot<VerifyX509SvidOptions>();

/**
 * Makes the verifier's options of `options` once, for a helper that made `options` itself and never changes
 * them (its own copy, `federatedTrustDomains` copied too): every later check reads them instead of rebuilding.
 */
export function prepareHopVerifyOptions<T extends HopVerifyOptions>(options: T): T {
  preparedSvidOptions.set(options, Object.freeze(svidOptions(options, true)));
  return options;
}

/** The verifier's options for a hop: everything but the authorizer, which runs after. */
function svidOptions(options: HopVerifyOptions, withRevocation: boolean): VerifyX509SvidOptions {
  // With federated domains the trust domain rule is checkPeerDomain's; without, the verifier's own.
  const single = options.trustDomain !== undefined && (options.federatedTrustDomains ?? []).length === 0;
  return {
    ...(single ? { trustDomain: options.trustDomain } : {}),
    ...(withRevocation && options.revocation !== undefined ? { revocation: options.revocation } : {}),
    ...(options.cache !== undefined ? { cache: options.cache } : {}),
    ...(options.agentContextOid !== undefined ? { agentContextOid: options.agentContextOid } : {}),
  };
}

/** Refused before a certificate was seen: ERR_CLIENT_CERT_REQUIRED (UNAUTHENTICATED, HTTP 401). */
export function noPeerCertificate(
  message = 'no peer certificate: connect with an X509-SVID as the TLS certificate',
): LanyardError {
  return new ClientCertRequiredError(message);
}

/** What a helper tells verifyHopPeer about the request besides the chain. */
export interface HopRequestInfo {
  transport: HopTransport;
  action?: string;
  /** The refusal message when there is no chain (a transport may know more about why). */
  noCertificateMessage?: string;
}

/**
 * Verifies `chain` (DER, leaf first; undefined or empty when the peer presented none) and authorizes it for
 * `request`. Reports the decision either way.
 * @throws LanyardError with the refusal's stable code.
 */
export async function verifyHopPeer(
  chain: readonly Uint8Array[] | undefined,
  options: HopVerifyOptions,
  request: HopRequestInfo,
): Promise<HopPeer> {
  return checkHopPeer({ chain }, options, request);
}

/**
 * What a helper verifies a peer by. `chain` is tried first; when it does not verify and `presented` is given,
 * `presented()` is read and its verdict is the one reported (as if only it had been tried). The TLS helpers pass
 * the peer's leaf with the intermediates this service knows as `chain` and the chain the peer presented as
 * `presented`: Node copies and converts every certificate of a detailed peer chain on each read (about twice a
 * whole verification of a known chain), so it is read only for a peer whose issuer this service does not know.
 * Trying the shorter chain first never accepts more: it holds only certificates the longer one has too, and
 * the verifier accepts any valid path to a bundle root, whichever certificates it was offered.
 */
export interface PeerChains {
  readonly chain: readonly Uint8Array[] | undefined;
  readonly presented?: () => readonly Uint8Array[] | undefined;
  /** Where a connection keeps the verdict on its chain for its next requests (kept-verdict.ts). */
  readonly kept?: KeptVerdict;
}

/**
 * verifyHopPeer without the promise when nothing asynchronous decides: an Authorizer's accept is returned as the
 * peer itself, a HopPolicy's decision as a promise. A refusal of the chain or by an Authorizer throws.
 * @throws LanyardError with the refusal's stable code (synchronously, or as the promise's rejection).
 */
export function checkHopPeer(
  chains: PeerChains,
  options: HopVerifyOptions,
  request: HopRequestInfo,
): HopPeer | Promise<HopPeer> {
  const service = hopServiceName(options);
  const tried: Tried = { chain: chains.chain };
  let svid: VerifyX509SvidResult;
  try {
    svid = verifyChains(chains, options, request, tried);
  } catch (e) {
    throw denied(options, service, request, tried.chain, undefined, e);
  }
  return authorizeHopPeer(svid, tried.chain, options, service, request);
}

/**
 * The part of checkHopPeer after the chain verified: the authorizer or policy for `request`, then the decision
 * reported. For a helper that recalled `svid` itself (a kept-alive HTTP connection's kept verdict, re-checked
 * for this request); `chain` is the chain it verified by, named in a refusal's record, and `service` is
 * `hopServiceName(options)` as of the same own SVID.
 * @throws LanyardError with the refusal's stable code (synchronously, or as the promise's rejection).
 */
export function authorizeHopPeer(
  svid: VerifyX509SvidResult,
  chain: readonly Uint8Array[] | undefined,
  options: HopVerifyOptions,
  service: string,
  request: HopRequestInfo,
): HopPeer | Promise<HopPeer> {
  let hopRequest: HopRequest;
  let answer: PolicyDecision | Promise<PolicyDecision> | undefined;
  try {
    hopRequest =
      request.action !== undefined
        ? { transport: request.transport, service, action: request.action }
        : { transport: request.transport, service };
    answer = callAuthorize(options.authorize, svid, hopRequest);
    if (answer === undefined) return allowed(options, service, request, svid, undefined);
  } catch (e) {
    throw denied(options, service, request, chain, svid, e);
  }
  return Promise.resolve(answer).then(
    (decision) => {
      let outcome: { policyVersion?: string };
      try {
        outcome = policyOutcome(decision, svid, hopRequest);
      } catch (e) {
        throw denied(options, service, request, chain, svid, e);
      }
      return allowed(options, service, request, svid, outcome.policyVersion);
    },
    (e: unknown) => {
      throw denied(options, service, request, chain, svid, e);
    },
  );
}

/**
 * The same, for places that must answer synchronously (a TLS client's checkServerIdentity): `authorize`
 * must be an Authorizer; a HopPolicy that returns a decision is refused (fails closed) with ERR_INVALID_ARGUMENT.
 */
export function verifyHopPeerSync(
  chain: readonly Uint8Array[] | undefined,
  options: HopVerifyOptions,
  request: HopRequestInfo,
): HopPeer {
  const service = hopServiceName(options);
  let svid: VerifyX509SvidResult | undefined;
  try {
    svid = verifyAuditChain(chain, options, request);
    const answer = (options.authorize as (p: VerifyX509SvidResult, r: unknown) => unknown)(svid, {
      transport: request.transport,
      service,
      ...(request.action !== undefined ? { action: request.action } : {}),
    });
    if (answer !== undefined) {
      if (answer instanceof Promise) answer.catch(() => undefined);
      throw new InvalidArgumentError(
        'this check runs inside the TLS handshake and takes a synchronous Authorizer, not an async policy',
      );
    }
    return allowed(options, service, request, svid, undefined);
  } catch (e) {
    throw denied(options, service, request, chain, svid, e);
  }
}

/** The chain whose verdict stands: the one a refusal is reported about. */
interface Tried {
  chain: readonly Uint8Array[] | undefined;
}

function verifyChains(
  chains: PeerChains,
  options: HopVerifyOptions,
  request: HopRequestInfo,
  tried: Tried,
): VerifyX509SvidResult {
  tried.chain = chains.chain;
  const kept = chains.kept?.recall(options, chains.chain);
  if (kept !== undefined) return kept;
  let svid: VerifyX509SvidResult;
  if (chains.presented === undefined || chains.chain === undefined || chains.chain.length === 0) {
    svid = verifyAuditChain(chains.chain, options, request);
  } else {
    try {
      svid = verifyAuditChain(chains.chain, options, request);
    } catch {
      // Whatever failed, the peer's own chain decides, and its error is the one reported.
      tried.chain = chains.presented();
      svid = verifyAuditChain(tried.chain, options, request);
    }
  }
  chains.kept?.keep(options, tried.chain!, svid);
  return svid;
}

function verifyAuditChain(
  chain: readonly Uint8Array[] | undefined,
  options: HopVerifyOptions,
  request: HopRequestInfo,
): VerifyX509SvidResult {
  if (chain === undefined || chain.length === 0) throw noPeerCertificate(request.noCertificateMessage);
  const svid = verifyX509Svid(
    chain,
    options.bundles,
    preparedSvidOptions.get(options) ?? svidOptions(options, true),
  );
  checkPeerDomain(svid, options);
  return svid;
}

/**
 * A peer of another trust domain than the service's passes only when the service lists that domain: holding a
 * foreign bundle (to verify it) is not consent to serve its workloads. The same holds for a delegation chain
 * that crossed from another domain (a hop of ours acting for a parent of theirs). Runs after verification, so a
 * forged context is still refused with its own code (ERR_CONTEXT_FOREIGN_DOMAIN) first.
 */
function checkPeerDomain(svid: VerifyX509SvidResult, options: HopVerifyOptions): void {
  const own = ownTrustDomain(options);
  if (own === undefined) return;
  const peerTd = svid.id.trustDomain.name;
  if (!acceptedDomain(peerTd, own, options)) {
    throw new WrongTrustDomainError(
      `peer ${svid.id.toString()} is of trust domain "${peerTd}", which this service (of "${own}") does not accept: list it in federatedTrustDomains to serve its workloads`,
    );
  }
  const delegation = svid.context?.delegation;
  if (delegation === undefined) return;
  for (const link of delegation) {
    const td = SpiffeId.parse(link.spiffeId).trustDomain.name;
    if (!acceptedDomain(td, own, options)) {
      throw new WrongTrustDomainError(
        `peer ${svid.id.toString()} acts for ${link.spiffeId} of trust domain "${td}", which this service (of "${own}") does not accept: list it in federatedTrustDomains to serve chains from it`,
      );
    }
  }
}

/** The service's own domain, or one it lists in federatedTrustDomains. */
function acceptedDomain(td: string, own: string, options: HopVerifyOptions): boolean {
  if (td === own) return true;
  for (const f of options.federatedTrustDomains ?? []) {
    if (td === (typeof f === 'string' ? f : f.name)) return true;
  }
  return false;
}

function ownTrustDomain(options: HopVerifyOptions): string | undefined {
  if (options.trustDomain !== undefined) {
    return typeof options.trustDomain === 'string' ? options.trustDomain : options.trustDomain.name;
  }
  const source = options.source ?? (options.bundles as Partial<{ getX509Svid(): { id: SpiffeId } }>);
  if (typeof source.getX509Svid !== 'function') return undefined;
  try {
    return source.getX509Svid().id.trustDomain.name;
  } catch {
    return undefined;
  }
}

/** The HopPeer of a verified SVID (and the policy version that allowed it). */
export function hopPeerOf(svid: VerifyX509SvidResult, policyVersion?: string): HopPeer {
  return Object.freeze({
    spiffeId: svid.id.toString(),
    id: svid.id,
    ...(svid.context !== undefined ? { context: svid.context } : {}),
    chain: svid.chain,
    serialHex: svid.chain[0]!.serialHex,
    ...(policyVersion !== undefined ? { policyVersion } : {}),
  });
}

function allowed(
  options: HopVerifyOptions,
  service: string,
  request: HopRequestInfo,
  svid: VerifyX509SvidResult,
  policyVersion: string | undefined,
): HopPeer {
  const peer = peerFor(svid, policyVersion);
  // Nobody listens: no decision record to build.
  if (options.onDecision === undefined && options.logger === undefined) return peer;
  report(options, {
    at: new Date(),
    transport: request.transport,
    service,
    ...(request.action !== undefined ? { action: request.action } : {}),
    decision: 'allow',
    peerId: peer.spiffeId,
    peerSerial: peer.serialHex,
    ...(peer.context !== undefined ? { context: peer.context } : {}),
    ...(policyVersion !== undefined ? { policyVersion } : {}),
  });
  return peer;
}

/**
 * The last HopPeer made from each verified SVID. The verifier's memo answers a known chain with the very result
 * object it verified, so a kept-alive connection's every request gets the same frozen peer instead of a copy.
 */
const peersOfSvids = new WeakMap<VerifyX509SvidResult, HopPeer>();

function peerFor(svid: VerifyX509SvidResult, policyVersion: string | undefined): HopPeer {
  const known = peersOfSvids.get(svid);
  if (known !== undefined && known.policyVersion === policyVersion) return known;
  const peer = hopPeerOf(svid, policyVersion);
  peersOfSvids.set(svid, peer);
  return peer;
}

function denied(
  options: HopVerifyOptions,
  service: string,
  request: HopRequestInfo,
  chain: readonly Uint8Array[] | undefined,
  svid: VerifyX509SvidResult | undefined,
  e: unknown,
): LanyardError {
  const err = isLanyardError(e)
    ? e
    : new InternalError(`peer check failed: ${e instanceof Error ? e.message : String(e)}`, {
        cause: e,
      });
  const policy = err instanceof PolicyDeniedError ? err : undefined;
  const proven = svid ?? provenButRevoked(chain, options, err);
  const peerInfo =
    proven !== undefined ? { id: proven.id, serialHex: proven.chain[0]!.serialHex } : peekPeer(chain);
  report(
    options,
    {
      at: new Date(),
      transport: request.transport,
      service,
      ...(request.action !== undefined ? { action: request.action } : {}),
      decision: 'deny',
      reason: policy?.policyReason ?? err.code,
      ...(peerInfo?.id !== undefined ? { peerId: peerInfo.id.toString() } : {}),
      ...(peerInfo?.serialHex !== undefined ? { peerSerial: peerInfo.serialHex } : {}),
      ...(proven?.context !== undefined ? { context: proven.context } : {}),
      ...(policy?.policyVersion !== undefined ? { policyVersion: policy.policyVersion } : {}),
    },
    err.message,
  );
  return err;
}

/**
 * For a revoked peer, the SVID as verified without the revocation check, so the refusal can name the session
 * it belongs to: the CA's signature proves the context, only its freshness failed. The whole verification runs
 * again and must pass on its own; a chain that fails anything besides revocation yields nothing.
 */
function provenButRevoked(
  chain: readonly Uint8Array[] | undefined,
  options: HopVerifyOptions,
  err: LanyardError,
): VerifyX509SvidResult | undefined {
  if (err.code !== ErrorCode.REVOKED || chain === undefined || chain.length === 0) return undefined;
  try {
    return verifyX509Svid(chain, options.bundles, svidOptions(options, false));
  } catch {
    return undefined;
  }
}

/**
 * Reports the refusal of a peer accepted earlier whose connection or stream is being closed now (its SVID was
 * revoked, or the revocation state turned stale): a 'deny' decision for the same transport and action.
 */
export function reportClosedPeer(
  options: HopVerifyOptions,
  request: HopRequestInfo,
  peer: HopPeer,
  err: LanyardError,
): void {
  report(
    options,
    {
      at: new Date(),
      transport: request.transport,
      service: hopServiceName(options),
      ...(request.action !== undefined ? { action: request.action } : {}),
      decision: 'deny',
      reason: err.code,
      peerId: peer.spiffeId,
      peerSerial: peer.serialHex,
      ...(peer.context !== undefined ? { context: peer.context } : {}),
    },
    `open ${request.transport === 'grpc' ? 'stream' : 'connection'} closed: ${err.message}`,
  );
}

/** The name a decision and a policy request give the service: `service`, else its own SVID's ID. */
export function hopServiceName(options: HopVerifyOptions): string {
  if (options.service !== undefined) return options.service;
  const source = options.source ?? (options.bundles as Partial<{ getX509Svid(): { id: SpiffeId } }>);
  if (typeof source.getX509Svid === 'function') {
    try {
      return source.getX509Svid().id.toString();
    } catch {
      // No current SVID: the decision still needs a name.
    }
  }
  return 'unknown';
}

/** Identifiers of a peer that failed verification, for the record; never trusted for anything else. */
function peekPeer(
  chain: readonly Uint8Array[] | undefined,
): { id?: SpiffeId; serialHex?: string } | undefined {
  if (chain === undefined || chain.length === 0) return undefined;
  try {
    const leaf = ParsedCertificate.fromDer(chain[0]!);
    let id: SpiffeId | undefined;
    try {
      id = spiffeIdOfLeaf(leaf);
    } catch {
      id = undefined;
    }
    return { serialHex: leaf.serialHex, ...(id !== undefined ? { id } : {}) };
  } catch {
    return undefined;
  }
}

function report(options: HopVerifyOptions, decision: HopDecision, message?: string): void {
  const line = {
    message,
    transport: decision.transport,
    service: decision.service,
    action: decision.action,
    peer: decision.peerId,
    serial: decision.peerSerial,
    decision: decision.decision,
    reason: decision.reason,
    policyVersion: decision.policyVersion,
  };
  if (decision.decision === 'allow') options.logger?.debug(line, 'hop: peer allowed');
  else options.logger?.warn(line, 'hop: peer refused');
  try {
    options.onDecision?.(decision);
  } catch (e) {
    // A failing listener must not turn a refusal into an accept or the reverse; it only loses its record.
    options.logger?.warn(
      { err: e instanceof Error ? e.message : String(e) },
      'hop: onDecision listener threw',
    );
  }
}
