import {
  ChainEmptyError,
  ChainTooLongError,
  ErrorCode,
  PathValidationError,
  RevokedError,
  SvidExpiredError,
  UnknownAuthorityError,
  WrongTrustDomainError,
} from '../errors';
import { requireX509Bundle, type X509BundleSource } from '../bundle';
import { SpiffeId, TrustDomain } from '../spiffe';
import { ParsedCertificate } from '../x509/certificate';
import * as agentContextOids from '../x509/agent-context/oid';
import { AgentContext } from '../x509/agent-context/types';
import type { X509Bundle } from '../bundle';
import * as certificateDer from '../x509/certificate-der';
import type { CertificateOutline } from '../x509/certificate-der';
import { defaultVerificationCache, VerificationCache } from './cache';
import * as chainMemo from './chain-memo';
import * as renewalsModule from './renewals';
import type { RenewalEntry } from './renewals';
import { verifiedAgentContext } from './context-rules';
import { MAX_PRESENTED_CERTIFICATES, type PathValidationOptions, validateCertPath } from './path-validation';
import type { ParentChainVerifier } from './parent-chain';
import { describeRevocation, RevocationChecker, type RevocationQuery } from './revocation';
import { checkSvidLeaf, spiffeIdOfLeaf } from '../svid/rules';

// Read once at load: under tsx an imported binding is a getter call on every use (see certificate-der.ts), and
// each of these is read on every verification.
const { readCertificateOutline } = certificateDer;
const { DEFAULT_AGENT_CONTEXT_OID, resolveAgentContextOid } = agentContextOids;
const { chainMemoHint } = chainMemo;
const { renewalHint, verifyRenewal } = renewalsModule;

export interface VerifyX509SvidOptions {
  /** Verification time for every validity check. Default: now. */
  at?: Date;
  /** Only accept SVIDs of this trust domain (ERR_WRONG_TRUST_DOMAIN otherwise), whatever the source holds. */
  trustDomain?: TrustDomain | string;
  /** Most certificates in the path, leaf and root included. Default 8. */
  maxPathDepth?: number;
  /** Most delegation hops in the agent context. Default 8. */
  maxDelegationDepth?: number;
  /** Consulted after every other check passed; anything but `false` rejects with ERR_REVOKED. */
  revocation?: RevocationChecker;
  /** Default: one cache shared by the process. `null`: no caching at all. */
  cache?: VerificationCache | null;
  /**
   * OID the agent context is read under: the issuing server's `agent_context.oid`. Default
   * DEFAULT_AGENT_CONTEXT_OID (1.3.6.1.4.1.262144.1.1). A leaf carrying a Lanyard context under another OID
   * is refused with ERR_AGENT_CONTEXT_OID_MISMATCH naming both, never read as a leaf without context.
   */
  agentContextOid?: string;
}

/** A verified X509-SVID. Frozen: authorizers and handlers read it, nobody edits it. */
export interface VerifyX509SvidResult {
  readonly id: SpiffeId;
  /** The decoded and checked agent context, when the SVID carries one. */
  readonly context?: Readonly<AgentContext>;
  /** The validated path: the leaf first, the trust anchor from the bundle last. */
  readonly chain: readonly ParsedCertificate[];
}

/**
 * Verify an X509-SVID chain (the leaf first, then intermediates in any order) against the bundle of the leaf's
 * trust domain, in this order:
 *  1. the leaf's SPIFFE ID (exactly one URI SAN) picks the trust domain, and with it the bundle: a CA of one trust
 *     domain never vouches for an ID of another; an empty bundle trusts nothing;
 *  2. RFC 5280 path validation to one of that bundle's X.509 authorities (an expired leaf is ERR_SVID_EXPIRED);
 *  3. the X509-SVID leaf rules;
 *  4. the agent-context rules, when the leaf carries the extension (under `agentContextOid`; a Lanyard context
 *     under another OID is refused);
 *  5. revocation, when a checker is given.
 * @throws a LanyardError subclass with a stable code for every rejection.
 */
export function verifyX509Svid(
  chain: readonly ParsedCertificate[] | readonly Uint8Array[],
  bundleSource: X509BundleSource,
  options: VerifyX509SvidOptions = {},
): VerifyX509SvidResult {
  const cache = options.cache === null ? undefined : (options.cache ?? defaultVerificationCache);
  const agentContextOid = resolveAgentContextOid(options.agentContextOid);
  checkPresented(chain);

  const memo = cache?.chains;
  const renewals = cache?.renewals;
  const ders = memo !== undefined || renewals !== undefined ? presentedDers(chain) : undefined;
  const optionsKey = ders !== undefined ? memoOptionsKey(options, agentContextOid) : '';
  // One hint per verification: the memo's lookup, its sighting and its admission all read it.
  const memoHint = memo !== undefined && ders !== undefined ? chainMemoHint(ders, optionsKey) : 0;
  if (memo !== undefined && ders !== undefined) {
    // A non-Date `at` is NaN here, never a hit: the full path refuses it with its own error.
    const atMs =
      options.at === undefined ? Date.now() : options.at instanceof Date ? options.at.getTime() : NaN;
    const known = memo.find(memoHint, ders, optionsKey, bundleSource, atMs);
    if (known !== undefined) {
      // Revocation is never remembered: asked afresh, with the question built when the chain was verified.
      if (options.revocation !== undefined) checkRevocation(options.revocation, known.query, known.result.id);
      return known.result;
    }
  }
  const at = options.at ?? new Date();

  // A leaf presented as DER may be the renewal of one verified before (renewals.ts): its outline is read, and
  // its hint found, before anything is parsed. A leaf whose top level does not even frame is the full path's to
  // refuse.
  const leafDer =
    renewals !== undefined && ders !== undefined && chain[0] instanceof Uint8Array ? ders[0]! : undefined;
  let outline: CertificateOutline | undefined;
  let renewalKey = 0;
  if (leafDer !== undefined) {
    try {
      outline = readCertificateOutline(leafDer);
    } catch {
      outline = undefined;
    }
    if (outline !== undefined) renewalKey = renewalHint(leafDer, outline, ders!, optionsKey);
  }

  let renewed: RenewalEntry | undefined;
  let fast: ParsedCertificate[] | undefined;
  // A leaf verified (and kept) before is taken from the certificate cache: not a renewal, the same certificate.
  // null: looked up and not there, so the full path parses the leaf without asking again.
  let knownLeaf = leafDer !== undefined ? (cache!.certificate(leafDer) ?? null) : undefined;
  if (outline !== undefined && knownLeaf === null && at instanceof Date) {
    renewed = renewals!.find(renewalKey, ders!, optionsKey);
    if (renewed !== undefined) {
      const answer = verifyRenewal(renewed, leafDer!, outline, bundleSource, at);
      if (Array.isArray(answer)) {
        fast = answer;
        renewals!.hits++;
      } else {
        renewals!.misses++;
        // A renewal whose signature failed: the full path takes that certificate, which knows it (renewals.ts).
        if (answer !== undefined) knownLeaf = answer;
      }
    }
  }
  const viaRenewal = renewed !== undefined && fast !== undefined;
  // Everything the leaf's extensions, issuer and subject decide was decided for its predecessor. Read from the
  // entry field by field: no object is made to carry them on the renewal path.
  let id: SpiffeId;
  let bundle: X509Bundle;
  let path: readonly ParsedCertificate[];
  let context: Readonly<AgentContext> | undefined;
  if (renewed !== undefined && fast !== undefined) {
    id = renewed.id;
    bundle = renewed.bundle;
    path = fast;
    context = renewed.proven?.context;
  } else {
    ({ id, bundle, path, context } = verifyInFull(
      chain,
      bundleSource,
      options,
      cache,
      agentContextOid,
      at,
      knownLeaf,
    ));
  }
  const leaf = path[0]!;

  // The question is built only when someone asks it: the caller's checker now, or the memo on later hits.
  // A cross-domain context also rests on other domains' bundles, which the memo does not track.
  const memoable =
    memo !== undefined && ders !== undefined && (context === undefined || context.version === 1);
  // Remembered from the second time it passes (see seenBefore): a renewed leaf's chain is seen once.
  const remember = memoable && memo.seenBefore(memoHint);
  let query: RevocationQuery | undefined;
  if (options.revocation !== undefined || remember) {
    const asked = revocationQueryOf({ id, chain: path, context });
    // A remembered question is asked on every hit, after callers were handed the leaf whose bytes a lazy hash
    // would read: spread, it holds the hash of the leaf as verified.
    query = freezeQuery(remember ? { ...asked } : asked);
    if (options.revocation !== undefined) checkRevocation(options.revocation, query, id);
  }

  // The context is a read-only view (frozen, bytes and dates copied on each read, read-only-context.ts): it
  // serves this caller, every memo hit and every renewed leaf carrying the same context bytes.
  // The renewal's path is a new array of its own; the full path's is copied. Two literals rather than a spread:
  // the spread builds an object per call and the result in a slower shape.
  const chainOut = Object.freeze(viaRenewal ? (path as ParsedCertificate[]) : path.slice());
  const verified: VerifyX509SvidResult = Object.freeze(
    context !== undefined ? { id, context, chain: chainOut } : { id, chain: chainOut },
  );
  if (cache !== undefined) {
    // The CAs are kept for the next leaf under them; the leaf only when it comes again (see rememberLeaf): a
    // renewed leaf is seen once, and keeping it would only carry it into the old generation before it is dropped.
    for (let i = 1; i < path.length; i++) cache.rememberCertificate(path[i]!);
    cache.rememberLeaf(leaf);
    if (remember && query !== undefined)
      memo.remember(memoHint, ders, optionsKey, bundle, path, verified, query);
    else if (memoable) memo.noteSighting(memoHint);
    // A leaf that passed in full is offered to the renewals: kept from the second one with its extensions.
    if (!viaRenewal && outline !== undefined && (context === undefined || context.version === 1)) {
      renewals!.offer(renewalKey, outline, ders!, optionsKey, bundle, path, id, context);
    }
  }
  return verified;
}

/** Every rule on the chain, the leaf parsed whole: steps 1 to 4 of verifyX509Svid. */
function verifyInFull(
  chain: readonly ParsedCertificate[] | readonly Uint8Array[],
  bundleSource: X509BundleSource,
  options: VerifyX509SvidOptions,
  cache: VerificationCache | undefined,
  agentContextOid: string,
  at: Date,
  knownLeaf: ParsedCertificate | null | undefined,
): {
  id: SpiffeId;
  bundle: X509Bundle;
  path: readonly ParsedCertificate[];
  context: Readonly<AgentContext> | undefined;
} {
  const certs = toCertificates(chain, cache, knownLeaf);
  const leaf = certs[0]!;

  const id = leafSpiffeId(leaf);
  if (options.trustDomain !== undefined) {
    const allowed =
      options.trustDomain instanceof TrustDomain
        ? options.trustDomain
        : TrustDomain.parse(options.trustDomain);
    if (!id.memberOf(allowed)) {
      throw new WrongTrustDomainError(
        `SVID ${id.toString()} is not of the accepted trust domain "${allowed.name}"`,
      );
    }
  }
  const bundle = requireX509Bundle(bundleSource, id.trustDomain);
  if (bundle.x509Authorities.length === 0) {
    throw new UnknownAuthorityError(
      `the bundle of trust domain "${id.trustDomain.name}" has no X.509 authorities, so none of its SVIDs is valid`,
    );
  }

  let path: readonly ParsedCertificate[];
  try {
    const pathOptions: PathValidationOptions = { at, maxDepth: options.maxPathDepth, cache };
    path = validateCertPath(certs, bundle.x509Authorities, pathOptions).path;
  } catch (e) {
    if (e instanceof PathValidationError && e.certIndex === 0 && e.code === ErrorCode.CERT_EXPIRED) {
      throw new SvidExpiredError(`X509-SVID ${id.toString()}: ${e.message}`, {
        cause: e,
      });
    }
    throw e;
  }

  checkSvidLeaf(leaf);
  const context = verifiedAgentContext(leaf, id, {
    maxDelegationDepth: options.maxDelegationDepth,
    cache,
    agentContextOid,
    // The verifier is made only when a link carries a parent chain; what it needs is a plain object (a closure
    // per call costs every new leaf, and under tsx a name definition too).
    parentChainVerifier: new ParentChainVerifierSource(bundleSource, options, at),
  });
  return { id, bundle, path, context };
}

/**
 * A link from another trust domain is proven by its parent's SVID, verified as an SVID of that domain with that
 * domain's bundle, at the same instant and under the same rules (its own context included). The recursion is
 * bounded: a parent's chain holds only the links before its own.
 */
class ParentChainVerifierSource {
  constructor(
    private readonly bundleSource: X509BundleSource,
    private readonly options: VerifyX509SvidOptions,
    private readonly at: Date,
  ) {}

  make(): ParentChainVerifier {
    const { bundleSource, options, at } = this;
    return (parentChain, trustDomain) => {
      // Revocation is the caller's question about the whole chain: its query names every link's session.
      const { revocation: _asked, ...rest } = options;
      const parent = verifyX509Svid(parentChain, bundleSource, { ...rest, at, trustDomain });
      return { id: parent.id, leaf: parent.chain[0]!, context: parent.context };
    };
  }
}

/**
 * The last leaf ID read, kept: SpiffeId is immutable and equal strings parse to equal IDs, so a renewed leaf of
 * the same workload is not parsed again. Any other leaf goes through every rule of spiffeIdOfLeaf.
 */
let lastLeafId: SpiffeId | undefined;

function leafSpiffeId(leaf: ParsedCertificate): SpiffeId {
  const uris = leaf.uriSans;
  if (lastLeafId !== undefined && uris.length === 1 && uris[0] === lastLeafId.toString()) return lastLeafId;
  const id = spiffeIdOfLeaf(leaf);
  lastLeafId = id;
  return id;
}

/** Throws RevokedError unless the checker answers exactly `false`; a checker that throws fails the call. */
function checkRevocation(revocation: RevocationChecker, query: RevocationQuery, id: SpiffeId): void {
  const answer = revocation.isRevoked(query);
  if (answer !== false) throw new RevokedError(`X509-SVID ${id.toString()}: ${describeRevocation(answer)}`);
}

function freezeQuery(q: RevocationQuery): RevocationQuery {
  Object.freeze(q.delegationSessionIds);
  return Object.freeze(q);
}

/**
 * The presented bytes, or undefined (no memo) when an element is neither DER nor a parsed certificate. A chain of
 * DER (what the hop helpers pass) is used as it is: nothing is allocated on a memo hit.
 */
function presentedDers(
  chain: readonly ParsedCertificate[] | readonly Uint8Array[],
): readonly Uint8Array[] | undefined {
  let allBytes = true;
  for (let i = 0; i < chain.length; i++) {
    const c: unknown = chain[i];
    if (c instanceof Uint8Array) continue;
    if (!(c instanceof ParsedCertificate)) return undefined;
    allBytes = false;
  }
  if (allBytes) return chain as readonly Uint8Array[];
  return (chain as readonly (ParsedCertificate | Uint8Array)[]).map((c) =>
    c instanceof ParsedCertificate ? c.der : c,
  );
}

/**
 * Everything besides the chain that changes the verdict, so that a different option never meets this entry.
 * The defaults give the empty string: no string is built on the common call.
 */
function memoOptionsKey(options: VerifyX509SvidOptions, agentContextOid: string): string {
  if (
    options.trustDomain === undefined &&
    options.maxPathDepth === undefined &&
    options.maxDelegationDepth === undefined &&
    agentContextOid === DEFAULT_AGENT_CONTEXT_OID
  ) {
    return '';
  }
  const td =
    options.trustDomain === undefined
      ? ''
      : options.trustDomain instanceof TrustDomain
        ? options.trustDomain.name
        : String(options.trustDomain);
  return [td, options.maxPathDepth ?? '', options.maxDelegationDepth ?? '', agentContextOid].join('\n');
}

/**
 * What a RevocationChecker is asked about a verified SVID (the same question verifyX509Svid asks): its serial
 * under its issuer, its session, its root session, and every parent session of its delegation chain.
 */
export function revocationQueryOf(svid: {
  id: SpiffeId;
  chain: readonly ParsedCertificate[];
  context?: Readonly<AgentContext> | undefined;
}): RevocationQuery {
  const leaf = svid.chain[0]!;
  const context = svid.context;
  return {
    serialHex: leaf.serialHex,
    ...(svid.chain[1] !== undefined ? { issuerSha256Hex: svid.chain[1].sha256Hex } : {}),
    // Hashed when a checker reads it (StaticRevocationList and RevocationCache never do), not for every leaf.
    get certSha256Hex(): string {
      return leaf.sha256Hex;
    },
    spiffeId: svid.id.toString(),
    ...(context !== undefined ? { sessionId: context.sessionId, rootSessionId: context.rootSessionId } : {}),
    delegationSessionIds: context?.delegation.map((l) => l.sessionId) ?? [],
  };
}

/** The bounds checked before anything is hashed or parsed. */
function checkPresented(chain: readonly ParsedCertificate[] | readonly Uint8Array[]): void {
  if (!Array.isArray(chain) || chain.length === 0) {
    throw new ChainEmptyError('no certificate presented');
  }
  // Refuse before parsing anything: the bound exists so that a peer cannot make us decode without limit.
  if (chain.length > MAX_PRESENTED_CERTIFICATES) {
    throw new ChainTooLongError(
      `${chain.length} certificates presented, at most ${MAX_PRESENTED_CERTIFICATES} are considered`,
    );
  }
}

/**
 * Parse DER input, reusing certificates decoded for an earlier chain that verified. `knownLeaf`: the leaf as the
 * caller already looked it up in the cache (null: not there); undefined when it did not.
 */
function toCertificates(
  chain: readonly ParsedCertificate[] | readonly Uint8Array[],
  cache: VerificationCache | undefined,
  knownLeaf: ParsedCertificate | null | undefined,
): ParsedCertificate[] {
  const out = new Array<ParsedCertificate>(chain.length);
  for (let i = 0; i < chain.length; i++) {
    if (i === 0 && knownLeaf !== undefined) {
      out[0] = knownLeaf ?? ParsedCertificate.fromDer(chain[0] as Uint8Array);
      continue;
    }
    const c = chain[i]!;
    out[i] = c instanceof ParsedCertificate ? c : (cache?.certificate(c) ?? ParsedCertificate.fromDer(c));
  }
  return out;
}
