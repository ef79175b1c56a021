import { InvalidTrustDomainError } from '../errors';
import {
  quoteInput,
  ruleName,
  SPIFFE_SCHEME_PREFIX,
  splitSpiffeId,
  SpiffeIdRule,
  type SpiffeIdRuleMessage,
  trustDomainNameViolation,
} from './rules';

/**
 * The name of a SPIFFE trust domain (SPIFFE-ID §2.1), e.g. `example.org`.
 * Instances are always valid: the only way to make one is `TrustDomain.parse`.
 */
export class TrustDomain {
  /** The bare name, e.g. `example.org`. */
  readonly name: string;

  private constructor(name: string) {
    this.name = name;
    Object.freeze(this);
  }

  /**
   * Parse a bare name (`example.org`) or the trust domain's own SPIFFE ID (`spiffe://example.org`).
   *
   * Unlike go-spiffe, a SPIFFE ID with a path (`spiffe://example.org/workload`) is refused here: a config
   * value meant to name one workload must not silently widen to the whole trust domain. Callers that do want
   * the trust domain of a workload ID write `SpiffeId.parse(s).trustDomain`.
   *
   * @throws InvalidTrustDomainError (ERR_INVALID_TRUST_DOMAIN, a subclass of InvalidSpiffeIdError) naming the
   *   broken rule in its message and its `rule` field.
   */
  static parse(s: string): TrustDomain {
    if (typeof s !== 'string') throw invalid(s, SpiffeIdRule.NOT_A_STRING);
    // Same test as go-spiffe: anything with ":/" was meant as a URI, so it gets the URI rules (scheme
    // first) and a message about the scheme rather than about a stray ":".
    if (s.includes(':/')) {
      const parts = splitSpiffeId(s);
      if ('violation' in parts) throw invalid(s, parts.violation);
      if (parts.path !== '') throw invalid(s, SpiffeIdRule.TRUST_DOMAIN_WITH_PATH);
      return new TrustDomain(parts.trustDomain);
    }
    const violation = trustDomainNameViolation(s);
    if (violation !== undefined) throw invalid(s, violation);
    return new TrustDomain(s);
  }

  /**
   * The counterpart of toJSON (what JSON.parse gives back for a serialised trust domain): the name (or the
   * trust domain's own SPIFFE ID), parsed as `parse` does. "" is refused: there is no zero-value trust domain.
   * @throws InvalidTrustDomainError when `value` is not a string naming a valid trust domain.
   */
  static fromJSON(value: unknown): TrustDomain {
    return TrustDomain.parse(value as string);
  }

  /** The trust domain's SPIFFE ID as a string, e.g. `spiffe://example.org`. */
  idString(): string {
    return SPIFFE_SCHEME_PREFIX + this.name;
  }

  /** Names are case-sensitive and already canonical (lowercase only), so plain equality is exact. */
  equals(other: TrustDomain): boolean {
    return other instanceof TrustDomain && other.name === this.name;
  }

  toString(): string {
    return this.name;
  }

  toJSON(): string {
    return this.name;
  }
}

function invalid(input: unknown, rule: SpiffeIdRuleMessage): InvalidTrustDomainError {
  return new InvalidTrustDomainError(`invalid trust domain ${quoteInput(input)}: ${rule}`, {
    rule: ruleName(rule),
  });
}
