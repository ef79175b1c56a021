/**
 * The syntax rules of the SPIFFE-ID standard (spiffe/spiffe standards/SPIFFE-ID.md, §2), as pure checks.
 *
 * Every check returns the rule a string breaks, or undefined. They never throw, so TrustDomain and SpiffeId
 * can each raise their own error class for the same rule. The parser is hand-written on purpose: a WHATWG
 * or RFC 3986 URL parser normalises (case-folds the scheme, decodes percent-escapes, resolves dot segments),
 * and normalising an identity before comparing it is how two different strings end up "equal".
 */

/** Each rule a SPIFFE ID or trust domain can break, worded as the error message reports it. */
export const SpiffeIdRule = {
  NOT_A_STRING: 'must be a string',
  EMPTY: 'cannot be empty',
  TOO_LONG: 'SPIFFE ID cannot be longer than 2048 bytes',
  SCHEME: 'scheme must be "spiffe" in lowercase, followed by "://"',
  QUERY: 'a query component is not allowed',
  FRAGMENT: 'a fragment component is not allowed',
  TRUST_DOMAIN_MISSING: 'trust domain is missing',
  TRUST_DOMAIN_CHARS:
    'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
  TRUST_DOMAIN_USERINFO: 'trust domain cannot carry userinfo ("@")',
  TRUST_DOMAIN_PORT: 'trust domain cannot contain ":" (no port is allowed)',
  TRUST_DOMAIN_PERCENT_ENCODED: 'trust domain cannot be percent-encoded ("%")',
  TRUST_DOMAIN_TOO_LONG: 'trust domain cannot be longer than 255 bytes',
  TRUST_DOMAIN_WITH_PATH:
    'a trust domain cannot have a path (parse the string as a SPIFFE ID and take its trust domain)',
  PATH_LEADING_SLASH: 'path must have a leading slash',
  PATH_EMPTY_SEGMENT: 'path cannot contain empty segments',
  PATH_DOT_SEGMENT: 'path cannot contain dot segments',
  PATH_TRAILING_SLASH: 'path cannot have a trailing slash',
  PATH_SEGMENT_CHARS:
    'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
} as const;
export type SpiffeIdRuleMessage = (typeof SpiffeIdRule)[keyof typeof SpiffeIdRule];
/** The stable key of a rule (`TRUST_DOMAIN_CHARS`): what InvalidSpiffeIdError.rule carries. */
export type SpiffeIdRuleName = keyof typeof SpiffeIdRule;

const RULE_NAMES = new Map<string, SpiffeIdRuleName>(
  Object.entries(SpiffeIdRule).map(([name, message]) => [message, name as SpiffeIdRuleName]),
);

/** The key of a rule, from the message the checks below return. */
export function ruleName(message: SpiffeIdRuleMessage): SpiffeIdRuleName {
  return RULE_NAMES.get(message)!;
}

export const SPIFFE_SCHEME_PREFIX = 'spiffe://';
/** §2.3: implementations must support IDs up to 2048 bytes; we accept nothing longer. */
export const MAX_SPIFFE_ID_BYTES = 2048;
/** §2.3: the URI host, and so the trust domain name, is at most 255 bytes. */
export const MAX_TRUST_DOMAIN_BYTES = 255;

const CH_DOT = 0x2e;
const CH_DASH = 0x2d;
const CH_UNDERSCORE = 0x5f;

function isLowerAlnum(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);
}

function isTrustDomainChar(c: number): boolean {
  return isLowerAlnum(c) || c === CH_DOT || c === CH_DASH || c === CH_UNDERSCORE;
}

function isPathSegmentChar(c: number): boolean {
  return isTrustDomainChar(c) || (c >= 0x41 && c <= 0x5a);
}

/** The rule a bare trust domain name breaks, or undefined when it is valid. */
export function trustDomainNameViolation(name: string): SpiffeIdRuleMessage | undefined {
  if (name === '') return SpiffeIdRule.TRUST_DOMAIN_MISSING;
  // The structural mistakes (userinfo, port, percent-encoding) get their own message before the generic
  // character rule, because "user:pw@Host" is better explained by the "@" than by the first bad letter.
  if (name.includes('@')) return SpiffeIdRule.TRUST_DOMAIN_USERINFO;
  if (name.includes(':')) return SpiffeIdRule.TRUST_DOMAIN_PORT;
  if (name.includes('%')) return SpiffeIdRule.TRUST_DOMAIN_PERCENT_ENCODED;
  for (let i = 0; i < name.length; i++) {
    if (!isTrustDomainChar(name.charCodeAt(i))) return SpiffeIdRule.TRUST_DOMAIN_CHARS;
  }
  // Only ASCII gets this far, so characters and bytes are the same count.
  if (name.length > MAX_TRUST_DOMAIN_BYTES) return SpiffeIdRule.TRUST_DOMAIN_TOO_LONG;
  return undefined;
}

/** The rule a single path segment (no slashes) breaks, or undefined when it is valid. */
export function pathSegmentViolation(segment: string): SpiffeIdRuleMessage | undefined {
  if (segment === '') return SpiffeIdRule.PATH_EMPTY_SEGMENT;
  if (segment === '.' || segment === '..') return SpiffeIdRule.PATH_DOT_SEGMENT;
  for (let i = 0; i < segment.length; i++) {
    if (!isPathSegmentChar(segment.charCodeAt(i))) return SpiffeIdRule.PATH_SEGMENT_CHARS;
  }
  return undefined;
}

/**
 * The rule a path ("" or "/seg/seg") breaks, or undefined when it is valid.
 * Violations are reported in reading order, so the message names the first thing wrong.
 */
export function pathViolation(path: string): SpiffeIdRuleMessage | undefined {
  if (path === '') return undefined;
  if (path.charCodeAt(0) !== 0x2f) return SpiffeIdRule.PATH_LEADING_SLASH;
  let start = 1;
  for (let i = 1; i <= path.length; i++) {
    if (i < path.length && path.charCodeAt(i) !== 0x2f) {
      if (!isPathSegmentChar(path.charCodeAt(i))) return SpiffeIdRule.PATH_SEGMENT_CHARS;
      continue;
    }
    const segment = path.slice(start, i);
    if (segment === '') {
      return i === path.length ? SpiffeIdRule.PATH_TRAILING_SLASH : SpiffeIdRule.PATH_EMPTY_SEGMENT;
    }
    if (segment === '.' || segment === '..') return SpiffeIdRule.PATH_DOT_SEGMENT;
    start = i + 1;
  }
  return undefined;
}

/** A syntactically valid SPIFFE ID split into its two components. */
export interface SpiffeIdParts {
  trustDomain: string;
  path: string;
}

/** Split and validate a SPIFFE ID string: the parts, or the first rule it breaks. */
export function splitSpiffeId(s: unknown): SpiffeIdParts | { violation: SpiffeIdRuleMessage } {
  if (typeof s !== 'string') return { violation: SpiffeIdRule.NOT_A_STRING };
  if (s === '') return { violation: SpiffeIdRule.EMPTY };
  // Checked before anything else so an oversized input costs nothing more than its length.
  if (s.length > MAX_SPIFFE_ID_BYTES || Buffer.byteLength(s, 'utf8') > MAX_SPIFFE_ID_BYTES) {
    return { violation: SpiffeIdRule.TOO_LONG };
  }
  // Exactly lowercase "spiffe://": RFC 3986 calls schemes case-insensitive, but accepting "SPIFFE://" would
  // give one identity two spellings, and go-spiffe refuses it too.
  if (!s.startsWith(SPIFFE_SCHEME_PREFIX)) return { violation: SpiffeIdRule.SCHEME };
  const rest = s.slice(SPIFFE_SCHEME_PREFIX.length);

  // The first "?" or "#" ends the hierarchical part (RFC 3986 §3), wherever it sits.
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c === 0x3f) return { violation: SpiffeIdRule.QUERY };
    if (c === 0x23) return { violation: SpiffeIdRule.FRAGMENT };
  }

  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  const tdViolation = trustDomainNameViolation(trustDomain);
  if (tdViolation !== undefined) return { violation: tdViolation };
  const pathRule = pathViolation(path);
  if (pathRule !== undefined) return { violation: pathRule };
  return { trustDomain, path };
}

/** The offending input, quoted and cut short, so a 1 MB string or control characters stay out of logs. */
export function quoteInput(s: unknown): string {
  if (typeof s !== 'string') return `<${s === null ? 'null' : typeof s}>`;
  const max = 100;
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}
