/**
 * The path an HTTP helper puts into a policy action when no route pattern is known. A policy that forbids
 * `DELETE /admin/users` must see that action for every request target a router would dispatch to the same
 * handler (`/Admin/users`, `/admin/users/`, `/admin/%75sers`), so the target is reduced to one canonical form,
 * and targets whose meaning depends on who interprets them (dot segments, encoded slashes, backslashes,
 * absolute-form) are refused instead of guessed at.
 */
import { InvalidRequestTargetError, LanyardError } from '../errors';

export interface HttpActionOptions {
  /**
   * Whether the application's router tells `/Admin` from `/admin`. Default false, as express's router; when
   * false the canonical path is lowercased. A trailing slash is always collapsed (express's non-strict routing).
   */
  caseSensitive?: boolean;
}

// RFC 3986 unreserved characters: percent-decoding them never changes what a URI means.
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

function refuse(why: string): LanyardError {
  return new InvalidRequestTargetError(`request target refused: ${why}`);
}

/**
 * The canonical path of `target` (an origin-form request target, e.g. `req.originalUrl`): the query dropped,
 * unreserved characters percent-decoded and other escapes in upper case, a trailing slash collapsed, lowercased
 * unless `caseSensitive`.
 * @throws LanyardError(ERR_INVALID_REQUEST_TARGET) for a target that is not origin-form, has `.`/`..` or empty
 *   segments, an encoded `/` or `\`, a backslash, a fragment, control characters or a broken escape.
 */
export function canonicalRequestPath(target: string, options: HttpActionOptions = {}): string {
  if (!target.startsWith('/')) throw refuse('only origin-form targets (starting with "/") are accepted');
  const q = target.indexOf('?');
  const raw = q === -1 ? target : target.slice(0, q);
  const plain = plainPath(raw);
  if (plain !== undefined) return options.caseSensitive === true || !plain.upper ? raw : raw.toLowerCase();
  if (raw.includes('#')) throw refuse('a fragment is not part of a request target');
  if (raw.includes('\\')) throw refuse('backslash in the path');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f-\uffff]/.test(raw))
    throw refuse('control, space or non-ASCII character in the path');
  // Most paths have no escape at all: they skip the scan.
  const decoded = !raw.includes('%')
    ? raw
    : raw.replace(/%(..)?/g, (m: string, hex: string | undefined) => {
        if (hex === undefined || !/^[0-9A-Fa-f]{2}$/.test(hex)) throw refuse('broken percent-escape');
        const ch = String.fromCharCode(parseInt(hex, 16));
        if (ch === '/' || ch === '\\') throw refuse('encoded "/" or "\\" in the path');
        return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
      });
  let segments = decoded.split('/').slice(1);
  if (segments.length > 1 && segments[segments.length - 1] === '') segments = segments.slice(0, -1);
  for (const s of segments) {
    if (s === '.' || s === '..') throw refuse('"." or ".." segment in the path');
    if (s === '' && segments.length > 1) throw refuse('empty segment ("//") in the path');
  }
  const path = `/${segments.join('/')}`;
  return options.caseSensitive === true ? path : path.toLowerCase();
}

/**
 * `{upper}` when `raw` (a path without its query, starting with "/") is already in canonical form apart from its
 * case: printable ASCII without escapes (`%`), fragment (`#`) or backslash, no trailing slash, no empty, `.` or
 * `..` segment. Undefined sends the path through the full rules, which then refuse or rewrite it. One pass and no
 * allocation, for the paths almost every request has.
 */
function plainPath(raw: string): { upper: boolean } | undefined {
  let upper = false;
  // Characters of the current segment, and how many of them are dots.
  let length = 0;
  let dots = 0;
  for (let i = 1; i <= raw.length; i++) {
    const c = i < raw.length ? raw.charCodeAt(i) : 0x2f;
    if (c === 0x2f) {
      // An empty segment is "//", a trailing slash, or the root (which is canonical).
      if (length === 0) return raw.length === 1 ? NOT_UPPER : undefined;
      if (dots === length && length <= 2) return undefined;
      length = 0;
      dots = 0;
      continue;
    }
    if (c <= 0x20 || c >= 0x7f || c === 0x25 || c === 0x23 || c === 0x5c) return undefined;
    if (c >= 0x41 && c <= 0x5a) upper = true;
    if (c === 0x2e) dots++;
    length++;
  }
  return upper ? UPPER : NOT_UPPER;
}

const UPPER = Object.freeze({ upper: true });
const NOT_UPPER = Object.freeze({ upper: false });

/**
 * The method a policy sees: upper case, and HEAD as GET, since express and fastify answer HEAD with the GET
 * handler (a policy that forbids `GET /x` must not let `HEAD /x` run it).
 */
export function actionMethod(method: string | undefined): string {
  const m = (method ?? 'GET').toUpperCase();
  return m === 'HEAD' ? 'GET' : m;
}

/** `METHOD /canonical/path` for a request without a known route pattern. */
export function canonicalHttpAction(
  method: string | undefined,
  target: string | undefined,
  options: HttpActionOptions = {},
): string {
  return `${actionMethod(method)} ${canonicalRequestPath(target ?? '/', options)}`;
}
