/**
 * Rules for single fields of the agent context. The encoder and the decoder both apply them, so
 * Lanyard never mints an extension it would refuse to read. Every failure names the field.
 */
import { ErrorCode, errorFromCode } from '../../errors';
import { AGENT_CONTEXT_LIMITS, type PrincipalProvenance } from './types';

type AgentContextErrorCode =
  | typeof ErrorCode.MALFORMED_AGENT_CONTEXT
  | typeof ErrorCode.AGENT_CONTEXT_TOO_LARGE
  | typeof ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION;

export function fail(code: AgentContextErrorCode, field: string, problem: string): never {
  throw errorFromCode(code, `agent context ${field}: ${problem}`);
}

export function malformed(field: string, problem: string): never {
  return fail(ErrorCode.MALFORMED_AGENT_CONTEXT, field, problem);
}

export function tooLarge(field: string, problem: string): never {
  return fail(ErrorCode.AGENT_CONTEXT_TOO_LARGE, field, problem);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function requireRecord(value: unknown, field: string): Record<string, unknown> {
  if (!isRecord(value)) malformed(field, 'expected an object');
  return value;
}

export function requireArray(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) malformed(field, 'expected an array');
  return value;
}

// Control characters and bidirectional formatting characters are refused everywhere: these strings end up
// in logs, audit records and `svid inspect` output, where they could forge lines or reorder what is shown.
const FORBIDDEN_CHARS = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
// A lone surrogate has no UTF-8 encoding: it would be silently replaced, and the decoded value would differ.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A UTF8String field: well-formed text, no control characters, min..max UTF-8 bytes. */
export function checkText(value: unknown, field: string, min: number, max: number): string {
  if (typeof value !== 'string') malformed(field, 'expected a string');
  if (LONE_SURROGATE.test(value)) malformed(field, 'contains an unpaired UTF-16 surrogate');
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > max) tooLarge(field, `${bytes} bytes, at most ${max} allowed`);
  if (bytes < min) {
    malformed(field, min === 1 ? 'must not be empty' : `${bytes} bytes, at least ${min} required`);
  }
  if (FORBIDDEN_CHARS.test(value)) {
    malformed(field, 'contains a control or bidirectional formatting character');
  }
  return value;
}

const SCOPE_CHARS = /^[\x21-\x7e]+$/;

/** A scope list: at most maxScopes entries, each 1..maxScopeLength printable ASCII without space, no duplicates. */
export function checkScopes(value: unknown, field: string): string[] {
  const scopes = requireArray(value, field);
  if (scopes.length > AGENT_CONTEXT_LIMITS.maxScopes) {
    tooLarge(field, `${scopes.length} scopes, at most ${AGENT_CONTEXT_LIMITS.maxScopes} allowed`);
  }
  const seen = new Set<string>();
  scopes.forEach((scope, i) => {
    const at = `${field}[${i}]`;
    if (typeof scope !== 'string') malformed(at, 'expected a string');
    if (scope.length === 0) malformed(at, 'must not be empty');
    // Length before charset so an oversized scope reports the limit; the regex only runs on short input.
    if (scope.length > AGENT_CONTEXT_LIMITS.maxScopeLength) {
      tooLarge(at, `${scope.length} characters, at most ${AGENT_CONTEXT_LIMITS.maxScopeLength} allowed`);
    }
    if (!SCOPE_CHARS.test(scope)) malformed(at, 'scopes are printable ASCII without spaces (0x21..0x7E)');
    if (seen.has(scope)) malformed(at, `duplicate scope ${JSON.stringify(scope)}`);
    seen.add(scope);
  });
  return scopes as string[];
}

/** An OCTET STRING field of min..max bytes (ERR_AGENT_CONTEXT_TOO_LARGE above max). */
export function checkBytes(value: unknown, field: string, min: number, max: number): Uint8Array {
  if (!(value instanceof Uint8Array)) malformed(field, 'expected bytes (Uint8Array)');
  if (value.length > max) tooLarge(field, `${value.length} bytes, at most ${max} allowed`);
  if (value.length < min) malformed(field, `${value.length} bytes, at least ${min} required`);
  return value;
}

/** A SHA-256 digest: exactly 32 bytes. */
export function checkSha256(value: unknown, field: string): Uint8Array {
  if (!(value instanceof Uint8Array)) malformed(field, 'expected bytes (Uint8Array)');
  if (value.length !== 32) malformed(field, `${value.length} bytes, a SHA-256 digest is 32`);
  return value;
}

/** Latest time GeneralizedTime's four year digits can express. */
const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59);

/**
 * A GeneralizedTime field. DER forbids a fractional part of zero and we never need sub-second precision, so
 * times carry whole seconds only; rejecting milliseconds (rather than rounding) keeps encode/decode exact.
 * Nothing in Lanyard predates 1970, and earlier years hit two-digit-year quirks in date libraries.
 */
export function checkTime(value: unknown, field: string): Date {
  if (!(value instanceof Date)) malformed(field, 'expected a Date');
  const ms = value.getTime();
  if (!Number.isFinite(ms)) malformed(field, 'invalid Date');
  if (ms < 0 || ms > MAX_TIME_MS) malformed(field, 'must lie between 1970-01-01 and 9999-12-31 (UTC)');
  if (ms % 1000 !== 0) malformed(field, 'must be a whole number of seconds (no milliseconds)');
  return value;
}

const SPIFFE_ID = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[A-Za-z0-9._-]+)*)$/;

/**
 * SPIFFE-ID syntax (SPIFFE-ID standard §2): scheme, lowercase trust domain of at most 255 bytes, path
 * segments without `.`/`..`. Trust-domain membership and policy are the verifier's business, not the codec's.
 */
export function checkSpiffeId(value: unknown, field: string): string {
  const id = checkText(value, field, 1, AGENT_CONTEXT_LIMITS.maxIdLength);
  const match = SPIFFE_ID.exec(id);
  if (!match) malformed(field, `not a SPIFFE ID: ${JSON.stringify(id.slice(0, 80))}`);
  if ((match[1] ?? '').length > 255) malformed(field, 'trust domain longer than 255 bytes');
  const segments = (match[2] ?? '').split('/').slice(1);
  if (segments.some((s) => s === '.' || s === '..')) {
    malformed(field, 'SPIFFE ID path has a "." or ".." segment');
  }
  return id;
}

const ASSERTED_BY = 'asserted-by:';

/** 'verified' | 'workload' | 'asserted-by:<SPIFFE ID>' */
export function checkPrincipalProvenance(value: unknown, field: string): PrincipalProvenance {
  const text = checkText(value, field, 1, ASSERTED_BY.length + AGENT_CONTEXT_LIMITS.maxIdLength);
  if (text === 'verified' || text === 'workload') return text;
  if (text.startsWith(ASSERTED_BY)) {
    checkSpiffeId(text.slice(ASSERTED_BY.length), field);
    return text as PrincipalProvenance;
  }
  return malformed(
    field,
    `must be "verified", "workload" or "asserted-by:<SPIFFE ID>", got ${JSON.stringify(text.slice(0, 80))}`,
  );
}
