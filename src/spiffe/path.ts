/**
 * SPIFFE ID paths on their own (SPIFFE-ID §2.2), for code that builds IDs from parts: validate a path or one
 * segment, join segments, format a path from a template. The same rules SpiffeId.parse applies, with the same
 * errors, so a path that passes here makes a valid ID in any trust domain (length permitting).
 */
import { format } from 'node:util';
import { InvalidSpiffeIdError } from '../errors';
import {
  pathSegmentViolation,
  pathViolation,
  quoteInput,
  ruleName,
  SpiffeIdRule,
  type SpiffeIdRuleMessage,
} from './rules';

/**
 * Checks that `path` is "" or "/seg/seg..." with every segment valid.
 * @throws InvalidSpiffeIdError (ERR_INVALID_SPIFFE_ID) naming the first broken rule.
 */
export function validatePath(path: string): void {
  const violation = typeof path === 'string' ? pathViolation(path) : SpiffeIdRule.NOT_A_STRING;
  if (violation !== undefined) throw invalid('path', path, violation);
}

/**
 * Checks one path segment: not empty, not "." or "..", only letters, digits, ".", "-" and "_" (so no "/").
 * @throws InvalidSpiffeIdError (ERR_INVALID_SPIFFE_ID) naming the broken rule.
 */
export function validatePathSegment(segment: string): void {
  const violation = typeof segment === 'string' ? pathSegmentViolation(segment) : SpiffeIdRule.NOT_A_STRING;
  if (violation !== undefined) throw invalid('path segment', segment, violation);
}

/**
 * "/a/b" from ("a", "b"); "" from no segments. Each argument is one segment: a "/" inside one is refused
 * rather than split, so a value from outside cannot add path levels.
 * @throws InvalidSpiffeIdError when a segment is invalid.
 */
export function joinPathSegments(...segments: string[]): string {
  for (const s of segments) validatePathSegment(s);
  return segments.map((s) => `/${s}`).join('');
}

/**
 * A path from a printf-style template (node:util format: %s, %d, %i, %j), then validated, like go-spiffe's
 * FormatPath: `formatPath('/tenant/%s/agent/%d', tenant, n)`.
 * @throws InvalidSpiffeIdError when the result is not a valid path.
 */
export function formatPath(template: string, ...args: unknown[]): string {
  const path = format(template, ...args);
  validatePath(path);
  return path;
}

function invalid(what: string, input: unknown, rule: SpiffeIdRuleMessage): InvalidSpiffeIdError {
  return new InvalidSpiffeIdError(`invalid ${what} ${quoteInput(input)}: ${rule}`, {
    rule: ruleName(rule),
  });
}
