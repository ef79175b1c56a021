import { SpiffeId } from './spiffe-id';
import { TrustDomain } from './trust-domain';

/**
 * A predicate over SPIFFE IDs. Authorizers are built from matchers, so a matcher says only "is this the
 * peer I expect", never why not: the caller that rejects owns the error.
 */
export type Matcher = (id: SpiffeId) => boolean;

/** Matches every ID. For places where authentication alone is enough; say so where you use it. */
export function matchAny(): Matcher {
  return () => true;
}

/** Matches exactly `expected`. */
export function matchId(expected: SpiffeId): Matcher {
  const want = expected.toString();
  return (id) => id.toString() === want;
}

/** Matches any of `ids`; with no IDs it matches nothing (an empty allow-list allows no one). */
export function matchOneOf(...ids: SpiffeId[]): Matcher {
  const allowed = new Set(ids.map((id) => id.toString()));
  return (id) => allowed.has(id.toString());
}

/** Matches every ID in `trustDomain`, including the trust domain's own ID. */
export function matchMemberOf(trustDomain: TrustDomain): Matcher {
  return (id) => id.memberOf(trustDomain);
}
