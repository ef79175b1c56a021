import { sha256 } from '../internal/digest';
import { ErrorCode, errorFromCode, InvalidArgumentError, SvidVerificationError } from '../errors';
import { SpiffeId, TrustDomain } from '../spiffe';
import { ParsedCertificate } from '../x509/certificate';
import { decodeAgentContext, delegationLinkSha256 } from '../x509/agent-context/codec';
import { verifyDelegationLinkSignature } from '../x509/agent-context/delegation-signature';
import * as agentContextOids from '../x509/agent-context/oid';
import * as agentContextTypes from '../x509/agent-context/types';
import type { AgentContext, DelegationLink } from '../x509/agent-context/types';
import { type ProvenContext, VerificationCache } from './cache';
import { checkParentChain, type ParentChainVerifier } from './parent-chain';
import { readOnlyContext } from './read-only-context';

// Read once at load: under tsx (which `npm run bench` and the tests run) an imported binding is a getter call
// on every use, and these run for every new leaf (see certificate-der.ts). Compiled output (dist/) is the same.
const { agentContextExtension, resolveAgentContextOid } = agentContextOids;
const { AGENT_CONTEXT_VERSION } = agentContextTypes;

export const DEFAULT_MAX_DELEGATION_DEPTH = 8;

export interface ContextRuleOptions {
  /** Most parent hops (delegation links) accepted. Default 8. */
  maxDelegationDepth?: number;
  /** Remembers delegation links whose signature was proven, keyed by the link's hash. */
  cache?: VerificationCache;
  /** OID the context is read under (the issuing server's agent_context.oid). Default DEFAULT_AGENT_CONTEXT_OID. */
  agentContextOid?: string;
  /**
   * Verifies a link's parentChain against its own trust domain's bundle (verifyX509Svid passes one over its bundle
   * source). Without it, a link from another trust domain is never proven and is refused.
   */
  verifyParentChain?: ParentChainVerifier;
}

/** What verifyX509Svid passes: verifyParentChain made only when a link carries a parent chain. */
export interface VerifiedContextOptions extends ContextRuleOptions {
  /**
   * Makes verifyParentChain on first need (a verifier per call would cost every new leaf, which mostly never
   * meets a parent chain); ignored when verifyParentChain is given.
   */
  parentChainVerifier?: { make(): ParentChainVerifier };
}

/** The hop a binding delegates to: the next link's parent, or finally the leaf itself. */
interface Hop {
  /** The link's index, or 'leaf'; names the hop in a refusal (hopName). */
  position: number | 'leaf';
  spiffeId: string;
  scopes: readonly string[];
  notAfter: Date;
  spkiDer: Uint8Array;
}

/**
 * The agent context of an already path-validated SVID leaf, decoded strictly and checked against the delegation
 * rules; undefined when the leaf carries no context. Any broken rule rejects the whole SVID: a context is never
 * returned half-checked.
 *
 * Along the chain (links root first, then the leaf): every link's signature by the parent's key verifies over its
 * binding; each binding names its own link's certificate and the previous link's hash (so links cannot be
 * reordered, dropped or swapped between chains); scopes only narrow and expiry only shrinks from a parent to its
 * binding and from a binding to the next hop; the next hop is the child the binding names (and holds the key it
 * names); root session and principal never change; depth is bounded. Before any of that, everything the
 * context attributes to a trust domain must belong to the leaf's own (see checkAttribution).
 *
 * @throws AgentContextError from the decoder for malformed or oversized DER
 * @throws AgentContextOidMismatchError (ERR_AGENT_CONTEXT_OID_MISMATCH) when the leaf carries its context under
 *   another OID than `agentContextOid`
 * @throws SvidVerificationError with ERR_CONTEXT_FOREIGN_DOMAIN, ERR_DELEGATION_TOO_DEEP,
 *   ERR_DELEGATION_SIGNATURE_INVALID, ERR_DELEGATION_LINK_INVALID, ERR_ROOT_CHANGED, ERR_SCOPE_ESCALATION or
 *   ERR_LIFETIME_ESCALATION
 */
export function verifyAgentContext(
  leaf: ParsedCertificate,
  leafId: SpiffeId,
  options: ContextRuleOptions = {},
): AgentContext | undefined {
  const proven = verifiedAgentContext(leaf, leafId, options);
  // The public function hands out a context of the caller's own to edit.
  return proven === undefined ? undefined : copyContext(proven);
}

/**
 * verifyAgentContext for verifyX509Svid: the same checks, but the context comes back as a read-only view
 * (read-only-context.ts) that may be shared with other callers, so a context seen before costs no copy.
 *
 * The cache is keyed by the extension's exact bytes (with the OID and the leaf's trust domain), not by the
 * leaf: a renewed leaf carries the same context bytes, and every rule that reads only those bytes (decoding,
 * attribution, link signatures, binding references, root and principal, narrowing along the links) gave its
 * answer for good. What depends on the leaf itself is checked on every call: the depth bound (the caller's),
 * and that the last link delegates to this leaf (its SPIFFE ID and key) with no wider scopes and no later expiry.
 */
export function verifiedAgentContext(
  leaf: ParsedCertificate,
  leafId: SpiffeId,
  options: VerifiedContextOptions = {},
): Readonly<AgentContext> | undefined {
  const oid = resolveAgentContextOid(options.agentContextOid);
  const ext = agentContextExtension(leaf, oid);
  if (ext === undefined) return undefined;
  const leafHop: Hop = {
    position: 'leaf',
    spiffeId: leafId.toString(),
    scopes: [],
    notAfter: leaf.notAfter,
    spkiDer: leaf.spkiDer,
  };
  const trustDomain = leafId.trustDomain.name;
  const known = options.cache?.context(ext.value, oid, trustDomain);
  // A cross-domain context (version 2) was proven with other domains' bundles, which may have changed since:
  // it is checked afresh every time (its link signatures stay cached).
  if (known !== undefined && known.context.version === AGENT_CONTEXT_VERSION) {
    checkDepth(known.context.delegation.length, options);
    leafHop.scopes = known.context.scopes;
    checkLeafHop(known.context, leafHop, known);
    return known.context;
  }
  const context = decodeAgentContext(ext.value);
  checkAttribution(context, leafId.trustDomain);
  const hashes = checkDelegationChain(context, { ...leafHop, scopes: context.scopes }, options);
  let verifyParent = options.verifyParentChain;
  context.delegation.forEach((link, i) => {
    if (link.parentChain === undefined) return;
    verifyParent ??= options.parentChainVerifier?.make();
    checkParentChain(context, i, hashes, verifyParent);
  });
  const view = readOnlyContext(context);
  if (context.version === AGENT_CONTEXT_VERSION) {
    // The leaf's key passed checkLeafHop above: a renewal holding the same key is not hashed again.
    const leafKey = context.delegation.length > 0 ? leaf.spkiDer : undefined;
    options.cache?.rememberContext(ext.value, oid, trustDomain, view, leafKey);
  }
  return view;
}

/**
 * Field-by-field copy (new arrays, byte arrays and dates): several times cheaper than structuredClone. Caches
 * keep one and hand out others, so what they keep stays as it was proven whatever a caller edits.
 */
export function copyContext(c: AgentContext): AgentContext {
  const bytes = (b: Uint8Array): Uint8Array => b.slice();
  const date = (d: Date): Date => new Date(d.getTime());
  return {
    ...c,
    principal: { ...c.principal },
    scopes: [...c.scopes],
    provenance: {
      ...c.provenance,
      evidenceSha256: bytes(c.provenance.evidenceSha256),
      issuedAt: date(c.provenance.issuedAt),
    },
    delegation: c.delegation.map((l) => ({
      ...l,
      scopes: [...l.scopes],
      notAfter: date(l.notAfter),
      certSha256: bytes(l.certSha256),
      publicKey: bytes(l.publicKey),
      signature: bytes(l.signature),
      binding: {
        ...l.binding,
        parentCertSha256: bytes(l.binding.parentCertSha256),
        childKeySha256: bytes(l.binding.childKeySha256),
        scopes: [...l.binding.scopes],
        notAfter: date(l.binding.notAfter),
        redeemBy: date(l.binding.redeemBy),
        nonce: bytes(l.binding.nonce),
        prevLinkSha256: bytes(l.binding.prevLinkSha256),
      },
      ...(l.parentChain !== undefined ? { parentChain: l.parentChain.map(bytes) } : {}),
    })),
  };
}

function checkDepth(depth: number, options: ContextRuleOptions): void {
  const maxDepth = options.maxDelegationDepth ?? DEFAULT_MAX_DELEGATION_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 0) {
    throw new InvalidArgumentError('maxDelegationDepth must be an integer >= 0');
  }
  if (depth > maxDepth) {
    throw reject(
      ErrorCode.DELEGATION_TOO_DEEP,
      `the delegation chain has ${depth} hops, at most ${maxDepth} are accepted`,
    );
  }
}

/**
 * The leaf's CA vouches only for its own trust domain (SPIFFE Trust Domain and Bundle: a bundle is authoritative
 * for one domain), so whatever the context attributes to a trust domain must be the leaf's: every hop's SPIFFE
 * ID and the child each binding names, the issuing server, who asserted the principal, a principal issuer that
 * is a SPIFFE ID (a `workload` principal's server, an `asserted-by` principal's asserter), and the SPIFFE ID a
 * `workload` principal names. Otherwise a federated partner's CA could mint its own workload an SVID claiming
 * our planner as a parent hop, or our agent as the principal, and a verifier holding both bundles would accept
 * it. Root and hop sessions follow: they are the sessions of links (or of the leaf) checked here. A `verified`
 * principal's issuer is an OIDC issuer, not a trust domain: the claim that it was verified is the leaf
 * domain's (requirePrincipal({ trustDomain }) or Cedar's `principal.trustDomain` choose whose to accept).
 *
 * The one exception is what another domain itself vouches for: a link carrying its parent's SVID (parentChain),
 * checked afterwards against that domain's bundle (parent-chain.ts). That SVID, signed by the parent's CA, holds
 * the principal, the root session and every earlier link, so the links up to the last one carrying a chain,
 * the children they name up to it, and the principal's attribution are covered by it; everything after it
 * must again be the leaf's. The issuing server is always the leaf's.
 */
function checkAttribution(ctx: AgentContext, td: TrustDomain): void {
  const foreign = (what: string, id: string): SvidVerificationError =>
    reject(
      ErrorCode.CONTEXT_FOREIGN_DOMAIN,
      `${what} ${JSON.stringify(id)} is not of the SVID's trust domain "${td.name}", and neither that ` +
        "domain's CA nor a parent SVID of the link's own domain vouches for it",
    );
  const mustBeOurs = (what: string, id: string): void => {
    if (!inTrustDomain(id, td)) throw foreign(what, id);
  };
  let lastProven = -1;
  ctx.delegation.forEach((l, i) => {
    if (l.parentChain !== undefined) lastProven = i;
  });
  mustBeOurs('the issuing server', ctx.provenance.issuer);
  if (lastProven < 0) {
    const p = ctx.principal;
    if (p.provenance.startsWith(ASSERTED_BY)) {
      mustBeOurs('the agent that asserted the principal', p.provenance.slice(ASSERTED_BY.length));
    }
    // Free text unless it claims to be a SPIFFE ID (any case: a near-miss must not slip past as "not an ID").
    if (/^spiffe:/i.test(p.issuer)) mustBeOurs('the principal issuer', p.issuer);
    if (p.provenance === 'workload' && /^spiffe:/i.test(p.id)) mustBeOurs('the workload principal', p.id);
  }
  ctx.delegation.forEach((link, i) => {
    if (i > lastProven) mustBeOurs(`delegation link ${i}`, link.spiffeId);
    if (i >= lastProven) mustBeOurs(`delegation link ${i} delegates to`, link.binding.childId);
  });
}

const ASSERTED_BY = 'asserted-by:';

/** False for anything that is not a SPIFFE ID of `td`, including strings that do not parse. */
function inTrustDomain(id: string, td: TrustDomain): boolean {
  try {
    return SpiffeId.parse(id).memberOf(td);
  } catch {
    return false;
  }
}

/** Returns the SHA-256 of every link, root first. */
function checkDelegationChain(ctx: AgentContext, leaf: Hop, options: ContextRuleOptions): Uint8Array[] {
  const links = ctx.delegation;
  // Depth first: it bounds every other piece of work below.
  checkDepth(links.length, options);
  const expectedRoot = links[0]?.sessionId ?? ctx.sessionId;
  if (ctx.rootSessionId !== expectedRoot) {
    throw reject(
      ErrorCode.ROOT_CHANGED,
      links.length > 0
        ? `root session "${ctx.rootSessionId}" is not the first hop's session "${expectedRoot}"`
        : `root session "${ctx.rootSessionId}" differs from the session "${ctx.sessionId}" of an undelegated SVID`,
    );
  }

  const hashes = links.map((l) => delegationLinkSha256(l));
  const proven: string[] = [];
  links.forEach((link, i) => {
    const at = `delegation link ${i} (${link.spiffeId})`;
    const b = link.binding;
    const hashHex = hex(hashes[i]!);

    if (options.cache?.hasLinkSignature(hashHex) !== true) {
      if (!signatureVerifies(link)) {
        throw reject(
          ErrorCode.DELEGATION_SIGNATURE_INVALID,
          `${at}: the parent's signature over the binding does not verify`,
        );
      }
      proven.push(hashHex);
    }
    if (!bytesEqual(b.parentCertSha256, link.certSha256)) {
      throw reject(ErrorCode.DELEGATION_LINK_INVALID, `${at}: the binding names another parent certificate`);
    }
    const prev = i === 0 ? new Uint8Array(0) : hashes[i - 1]!;
    if (!bytesEqual(b.prevLinkSha256, prev)) {
      throw reject(
        ErrorCode.DELEGATION_LINK_INVALID,
        i === 0
          ? `${at}: the first link refers to a previous link (a link was removed in front of it)`
          : `${at}: the binding does not refer to link ${i - 1} (links were reordered, removed or replaced)`,
      );
    }
    if (b.rootSessionId !== ctx.rootSessionId) {
      throw reject(
        ErrorCode.ROOT_CHANGED,
        `${at}: root session "${b.rootSessionId}" differs from the SVID's "${ctx.rootSessionId}"`,
      );
    }
    // All three fields: an authorizer may decide on provenance alone (requirePrincipal({provenance})).
    if (
      b.principalId !== ctx.principal.id ||
      b.principalIssuer !== ctx.principal.issuer ||
      b.principalProvenance !== ctx.principal.provenance
    ) {
      throw reject(
        ErrorCode.ROOT_CHANGED,
        `${at}: principal "${b.principalId}" (issuer "${b.principalIssuer}", provenance ` +
          `"${b.principalProvenance}") differs from the SVID's "${ctx.principal.id}" (issuer ` +
          `"${ctx.principal.issuer}", provenance "${ctx.principal.provenance}")`,
      );
    }
    const widened = widening(b.scopes, b.notAfter, link.scopes, link.notAfter);
    if (widened !== undefined) throw widened(`${at}: the binding`, `the parent's own`);

    if (i + 1 < links.length) {
      const next = links[i + 1]!;
      checkNextHop(link, i, {
        position: i + 1,
        spiffeId: next.spiffeId,
        scopes: next.scopes,
        notAfter: next.notAfter,
        spkiDer: next.publicKey,
      });
    }
  });
  // The leaf last, as the hop after the last link: the one part that changes when the leaf is renewed.
  checkLeafHop(ctx, leaf);

  // Only a chain that passed as a whole contributes to the cache.
  for (const h of proven) options.cache?.rememberLinkSignature(h);
  return hashes;
}

/**
 * For a renewal of a leaf whose context passed every rule (src/verify/renewals.ts), what the context rules read
 * of the leaf itself, as on a hit of the context cache: that the last link delegates to its key, with no later
 * expiry than the leaf's. Its SPIFFE ID and the context bytes equal the proven leaf's, and the depth bound is the
 * same option. Throws as verifiedAgentContext does.
 */
export function checkRenewedLeafHop(proven: ProvenContext, leafId: string, leaf: ParsedCertificate): void {
  const context = proven.context;
  checkLeafHop(
    context,
    {
      position: 'leaf',
      spiffeId: leafId,
      scopes: context.scopes,
      notAfter: leaf.notAfter,
      spkiDer: leaf.spkiDer,
    },
    proven,
  );
}

/**
 * The leaf is the hop the last link delegates to; without links there is nothing to check against it. With a
 * proven context, a leaf key equal to the one already found to match is not hashed again; a key that matches
 * becomes the one remembered.
 */
function checkLeafHop(ctx: Readonly<AgentContext>, leaf: Hop, proven?: ProvenContext): void {
  const n = ctx.delegation.length;
  if (n === 0) return;
  const known = proven?.leafKey;
  const keyProven = known !== undefined && bytesEqual(known, leaf.spkiDer);
  checkNextHop(ctx.delegation[n - 1]!, n - 1, leaf, keyProven);
  if (proven !== undefined && !keyProven) proven.leafKey = new Uint8Array(leaf.spkiDer);
}

/**
 * `next` is the child link i's binding names: its SPIFFE ID, its key, no wider scopes, no later expiry.
 * `keyProven`: next.spkiDer is bytes already found to hash to this binding's childKeySha256.
 */
function checkNextHop(link: Readonly<DelegationLink>, i: number, next: Hop, keyProven = false): void {
  // Messages are built only for a refusal: this runs for every new leaf.
  const b = link.binding;
  if (next.spiffeId !== b.childId) {
    throw reject(
      ErrorCode.DELEGATION_LINK_INVALID,
      `${linkName(i, link)}: delegates to "${b.childId}", but the next hop is ${hopName(next)}`,
    );
  }
  // Required since binding version 3: every hop after the first holds a key its parent signed for, so none is
  // vouched for by the CA alone.
  if (!keyProven && !bytesEqual(b.childKeySha256, sha256(next.spkiDer))) {
    throw reject(
      ErrorCode.DELEGATION_LINK_INVALID,
      `${linkName(i, link)}: delegates to another key than the one ${hopName(next)} holds`,
    );
  }
  const widened = widening(next.scopes, next.notAfter, b.scopes, b.notAfter);
  if (widened !== undefined) throw widened(hopName(next), `${linkName(i, link)}'s binding`);
}

function linkName(i: number, link: Readonly<DelegationLink>): string {
  return `delegation link ${i} (${link.spiffeId})`;
}

function hopName(hop: Hop): string {
  return hop.position === 'leaf'
    ? `the leaf ${hop.spiffeId}`
    : `delegation link ${hop.position} (${hop.spiffeId})`;
}

/**
 * Undefined when `child` narrows `parent` (its scopes a subset, its expiry no later); otherwise the refusal,
 * made from the names of both once they are known to be needed.
 */
function widening(
  childScopes: readonly string[],
  childNotAfter: Date,
  parentScopes: readonly string[],
  parentNotAfter: Date,
): ((child: string, parent: string) => SvidVerificationError) | undefined {
  // No array is made while every scope narrows: this runs for every hop of every new leaf.
  let narrows = true;
  for (let i = 0; i < childScopes.length && narrows; i++) narrows = parentScopes.includes(childScopes[i]!);
  if (!narrows) {
    const extra = childScopes.filter((s) => !parentScopes.includes(s));
    return (child, parent) =>
      reject(
        ErrorCode.SCOPE_ESCALATION,
        `${child} has scopes ${extra.map((s) => `"${s}"`).join(', ')} beyond ${parent} scopes`,
      );
  }
  if (childNotAfter.getTime() > parentNotAfter.getTime()) {
    return (child, parent) =>
      reject(
        ErrorCode.LIFETIME_ESCALATION,
        `${child} expires at ${childNotAfter.toISOString()}, after ${parent} expiry ${parentNotAfter.toISOString()}`,
      );
  }
  return undefined;
}

/** A key the signature module cannot use counts as a failed signature: the link proves nothing. */
function signatureVerifies(link: DelegationLink): boolean {
  try {
    return verifyDelegationLinkSignature(link) === true;
  } catch {
    return false;
  }
}

function reject(code: SvidVerificationError['code'], message: string): SvidVerificationError {
  return errorFromCode(code, `agent context: ${message}`);
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Keys and hashes (tens of bytes; a leaf's key on every new leaf): a loop, no Buffer view made per comparison. */
function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
