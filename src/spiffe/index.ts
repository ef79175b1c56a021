/** SPIFFE IDs and trust domains (SPIFFE-ID standard) and the matchers that authorizers compose. */
export { TrustDomain } from './trust-domain';
export { SpiffeId } from './spiffe-id';
export { formatPath, joinPathSegments, validatePath, validatePathSegment } from './path';
export type { Matcher } from './match';
export { matchAny, matchId, matchMemberOf, matchOneOf } from './match';
export { MAX_SPIFFE_ID_BYTES, MAX_TRUST_DOMAIN_BYTES, SPIFFE_SCHEME_PREFIX, SpiffeIdRule } from './rules';
export type { SpiffeIdRuleMessage, SpiffeIdRuleName } from './rules';
