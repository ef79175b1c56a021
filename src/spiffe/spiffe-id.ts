import { InvalidSpiffeIdError } from '../errors';
import { joinPathSegments, validatePath } from './path';
import {
  MAX_SPIFFE_ID_BYTES,
  quoteInput,
  ruleName,
  splitSpiffeId,
  SpiffeIdRule,
  type SpiffeIdRuleMessage,
} from './rules';
import { TrustDomain } from './trust-domain';

/**
 * A SPIFFE ID (SPIFFE-ID §2): `spiffe://<trust domain>[/<path>]`.
 * Instances are always valid and already canonical: the string form is exactly what was parsed, so two IDs
 * are equal exactly when their strings are.
 */
export class SpiffeId {
  readonly trustDomain: TrustDomain;
  /** "" for the trust domain's own ID, otherwise "/seg/seg". */
  readonly path: string;
  private readonly str: string;

  private constructor(trustDomain: TrustDomain, path: string) {
    this.trustDomain = trustDomain;
    this.path = path;
    this.str = trustDomain.idString() + path;
    Object.freeze(this);
  }

  /**
   * Parse a SPIFFE ID string, exactly as the standard writes it: no normalisation of case, escapes or dots.
   * @throws InvalidSpiffeIdError (ERR_INVALID_SPIFFE_ID) whose message names the broken rule and whose `rule`
   *   field carries its SpiffeIdRule key.
   */
  static parse(s: string): SpiffeId {
    const parts = splitSpiffeId(s);
    if ('violation' in parts) throw invalidId(s, parts.violation);
    return new SpiffeId(TrustDomain.parse(parts.trustDomain), parts.path);
  }

  /**
   * The ID with `path` ("" or "/seg/seg") in `trustDomain`.
   * @throws InvalidSpiffeIdError when the path breaks a rule or the ID would exceed 2048 bytes.
   */
  static fromPath(trustDomain: TrustDomain | string, path: string): SpiffeId {
    const td = toTrustDomain(trustDomain);
    validatePath(path);
    return withinLength(new SpiffeId(td, path));
  }

  /**
   * The ID made of `segments` in `trustDomain`; no segments gives the trust domain's own ID.
   * Each segment is one path element, so a "/" inside a segment is refused rather than split.
   * @throws InvalidSpiffeIdError when a segment breaks a rule or the ID would exceed 2048 bytes.
   */
  static fromSegments(trustDomain: TrustDomain | string, ...segments: string[]): SpiffeId {
    const td = toTrustDomain(trustDomain);
    return withinLength(new SpiffeId(td, joinPathSegments(...segments)));
  }

  /**
   * The counterpart of toJSON (what JSON.parse gives back for a serialised ID): the string, parsed.
   * Unlike go-spiffe's UnmarshalText there is no zero-value ID, so "" is refused like any invalid ID.
   * @throws InvalidSpiffeIdError when `value` is not a string holding a valid SPIFFE ID.
   */
  static fromJSON(value: unknown): SpiffeId {
    return SpiffeId.parse(value as string);
  }

  /**
   * This ID with `path` ("/seg/seg") added after its own path, e.g. spiffe://td/agents + "/a/b".
   * @throws InvalidSpiffeIdError when the path breaks a rule or the ID would exceed 2048 bytes.
   */
  appendPath(path: string): SpiffeId {
    validatePath(path);
    return withinLength(new SpiffeId(this.trustDomain, this.path + path));
  }

  /**
   * This ID with `segments` added after its own path, one path element each.
   * @throws InvalidSpiffeIdError when a segment breaks a rule or the ID would exceed 2048 bytes.
   */
  appendSegments(...segments: string[]): SpiffeId {
    return withinLength(new SpiffeId(this.trustDomain, this.path + joinPathSegments(...segments)));
  }

  /** The ID with `path` in place of this one's path, in the same trust domain. */
  replacePath(path: string): SpiffeId {
    return SpiffeId.fromPath(this.trustDomain, path);
  }

  /** The ID made of `segments` in place of this one's path, in the same trust domain. */
  replaceSegments(...segments: string[]): SpiffeId {
    return SpiffeId.fromSegments(this.trustDomain, ...segments);
  }

  /** True when the ID belongs to `trustDomain`. */
  memberOf(trustDomain: TrustDomain): boolean {
    return this.trustDomain.equals(trustDomain);
  }

  /**
   * True for the ID of the trust domain itself (`spiffe://example.org`, no path). It is a valid SPIFFE ID,
   * the one a signing authority carries, but never a valid workload X.509-SVID ID.
   */
  isTrustDomainId(): boolean {
    return this.path === '';
  }

  equals(other: SpiffeId): boolean {
    return other instanceof SpiffeId && other.str === this.str;
  }

  toString(): string {
    return this.str;
  }

  toJSON(): string {
    return this.str;
  }
}

function toTrustDomain(td: TrustDomain | string): TrustDomain {
  return td instanceof TrustDomain ? td : TrustDomain.parse(td);
}

function withinLength(id: SpiffeId): SpiffeId {
  // Built from parts that are ASCII once validated, so the string length is the byte length.
  if (id.toString().length > MAX_SPIFFE_ID_BYTES) throw invalidId(id.toString(), SpiffeIdRule.TOO_LONG);
  return id;
}

function invalidId(input: unknown, rule: SpiffeIdRuleMessage): InvalidSpiffeIdError {
  return new InvalidSpiffeIdError(`invalid SPIFFE ID ${quoteInput(input)}: ${rule}`, {
    rule: ruleName(rule),
  });
}
