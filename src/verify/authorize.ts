import { AuthorizationError } from '../errors';
import { type Matcher, matchAny, matchId, matchMemberOf, matchOneOf, SpiffeId, TrustDomain } from '../spiffe';
import { PrincipalProvenance } from '../x509/agent-context/types';
import type { VerifyX509SvidResult } from './verify-x509-svid';

/**
 * Decides whether a verified peer may proceed: returns normally to allow, throws AuthorizationError
 * (ERR_UNAUTHORIZED) naming the reason to refuse. Authorizers run after verification, so they only see SVIDs
 * that are already authentic; they compose with allOf.
 *
 * Arguments are parsed when the authorizer is built, not when it runs: a typo in a configured ID fails at
 * start-up instead of refusing every peer.
 */
export type Authorizer = (svid: VerifyX509SvidResult) => void;

/** Allows every verified SVID. For places where authentication alone is enough; say so where you use it. */
export function authorizeAny(): Authorizer {
  return authorizeMatcher(matchAny(), 'any SPIFFE ID');
}

/** Allows exactly `id`. */
export function authorizeId(id: SpiffeId | string): Authorizer {
  const expected = toId(id);
  return authorizeMatcher(matchId(expected), `SPIFFE ID ${expected.toString()}`);
}

/** Allows any of `ids`; with none, allows nobody. */
export function authorizeOneOf(...ids: (SpiffeId | string)[]): Authorizer {
  const parsed = ids.map(toId);
  return authorizeMatcher(
    matchOneOf(...parsed),
    `one of ${parsed.map((i) => i.toString()).join(', ') || '(none)'}`,
  );
}

/** Allows every SPIFFE ID of trust domain `td`. */
export function authorizeMemberOf(td: TrustDomain | string): Authorizer {
  const domain = td instanceof TrustDomain ? td : TrustDomain.parse(td);
  return authorizeMatcher(matchMemberOf(domain), `a member of trust domain ${domain.name}`);
}

/** Allows what `matcher` matches; `expected` describes it in the refusal message. */
export function authorizeMatcher(matcher: Matcher, expected = 'an ID accepted by the matcher'): Authorizer {
  return (svid) => {
    if (!matcher(svid.id)) throw new AuthorizationError(`peer ${svid.id.toString()} is not ${expected}`);
  };
}

/** Requires an agent context holding every one of `scopes`. */
export function requireScopes(...scopes: string[]): Authorizer {
  if (scopes.length === 0) throw new TypeError('requireScopes needs at least one scope');
  return (svid) => {
    const ctx = svid.context;
    if (ctx === undefined) {
      throw new AuthorizationError(
        `peer ${svid.id.toString()} carries no agent context, scopes are required`,
      );
    }
    const held = new Set(ctx.scopes);
    const missing = scopes.filter((s) => !held.has(s));
    if (missing.length > 0) {
      throw new AuthorizationError(
        `peer ${svid.id.toString()} lacks scope(s) ${missing.map((s) => `"${s}"`).join(', ')}`,
      );
    }
  };
}

export interface PrincipalRequirement {
  /** The originating principal's id must equal this. */
  id?: string;
  /** The principal's issuer (OIDC issuer URL or asserting SPIFFE ID) must equal this. */
  issuer?: string;
  /** How the principal was established must equal this (e.g. "verified" to refuse asserted principals). */
  provenance?: PrincipalProvenance;
  /**
   * The trust domain whose server established the principal must be this one. That is always the peer's own
   * (verifyX509Svid refuses a context that attributes anything to another domain), so this is how a verifier
   * holding federated bundles accepts a `verified` principal only on its own domain's word.
   */
  trustDomain?: TrustDomain | string;
}

/** Requires an agent context whose originating principal matches every field given. */
export function requirePrincipal(req: PrincipalRequirement): Authorizer {
  const fields = (['id', 'issuer', 'provenance'] as const).filter((k) => req[k] !== undefined);
  const td =
    req.trustDomain === undefined
      ? undefined
      : req.trustDomain instanceof TrustDomain
        ? req.trustDomain
        : TrustDomain.parse(req.trustDomain);
  if (fields.length === 0 && td === undefined)
    throw new TypeError('requirePrincipal needs at least one of id, issuer, provenance, trustDomain');
  return (svid) => {
    const principal = svid.context?.principal;
    if (principal === undefined) {
      throw new AuthorizationError(
        `peer ${svid.id.toString()} carries no agent context, a principal is required`,
      );
    }
    if (td !== undefined && !svid.id.memberOf(td)) {
      throw new AuthorizationError(
        `peer ${svid.id.toString()} acts for a principal established by trust domain ` +
          `"${svid.id.trustDomain.name}", "${td.name}" is required`,
      );
    }
    for (const k of fields) {
      if (principal[k] !== req[k]) {
        throw new AuthorizationError(
          `peer ${svid.id.toString()} acts for a principal whose ${k} is "${principal[k]}", "${req[k]}" is required`,
        );
      }
    }
  };
}

/** Allows at most `n` delegation hops between the originating session and the peer (0: no delegation). */
export function maxDelegationDepth(n: number): Authorizer {
  if (!Number.isInteger(n) || n < 0) throw new TypeError('maxDelegationDepth needs an integer >= 0');
  return (svid) => {
    const depth = svid.context?.delegation.length ?? 0;
    if (depth > n) {
      throw new AuthorizationError(
        `peer ${svid.id.toString()} is ${depth} delegation hops deep, at most ${n} allowed`,
      );
    }
  };
}

/** Allows only when every one of `authorizers` allows; the first refusal is the one reported. */
export function allOf(...authorizers: Authorizer[]): Authorizer {
  // An empty conjunction would allow everyone, which is never what a caller who wrote allOf() meant.
  if (authorizers.length === 0) throw new TypeError('allOf needs at least one authorizer');
  return (svid) => {
    for (const a of authorizers) a(svid);
  };
}

function toId(id: SpiffeId | string): SpiffeId {
  return id instanceof SpiffeId ? id : SpiffeId.parse(id);
}
