/**
 * Structured JSON logs (pino). Two guards keep secrets out of them, because a log line is copied to places
 * with far weaker access control than the data dir:
 *  1. by field name: any field of a log call whose name says token, secret, password, private key,
 *     credential, authorization, evidence or key (at any depth) is replaced by "[REDACTED]" — ids such as
 *     `tokenId` stay; child-logger bindings get the same for the common names (BINDING_SECRET_NAMES);
 *  2. by shape: anything that looks like a Lanyard join token is masked in the finished line, wherever it
 *     appears (message text, error messages, nested values).
 * Neither replaces care at the call site: never pass a secret to the logger in the first place.
 */
import pino from 'pino';
import { JOIN_TOKEN_PATTERN, JOIN_TOKEN_PREFIX } from './join-token-secret';

export type Logger = pino.Logger;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The part of a pino logger the verifier-side helpers use; any pino Logger fits. */
export interface HopLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export const REDACTED = '[REDACTED]';
const MAX_DEPTH = 8;
const BINDING_SECRET_NAMES = [
  'token',
  'joinToken',
  'secret',
  'password',
  'key',
  'privateKey',
  'evidence',
  'authorization',
];
const BINDING_REDACT_PATHS = BINDING_SECRET_NAMES.flatMap((n) => [n, `*.${n}`]);

export interface LoggerOptions {
  level: LogLevel;
  /** Where lines go; stdout when absent. Tests pass a stream they can read. */
  destination?: pino.DestinationStream;
  /** Fields on every line, e.g. { component: 'server' }. */
  base?: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => redactObject(object) as Record<string, unknown>,
      },
      // formatters.log does not see child-logger bindings; pino's path-based redaction does.
      redact: { paths: BINDING_REDACT_PATHS, censor: REDACTED },
      hooks: { streamWrite: scrubJoinTokens },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** True for field names that carry secrets. Names ending in id/Id are handles, not secrets. */
export function isSensitiveKey(name: string): boolean {
  if (/(?:^|[_-])id$|[a-z0-9]Id$/.test(name)) return false;
  const lower = name.toLowerCase();
  if (/token|secret|passw|private|credential|authorization|cookie|evidence/.test(lower)) return true;
  return lower === 'key' || /[_-]key$/.test(lower) || /[a-z0-9]Key$/.test(name);
}

/** A copy of `value` with sensitive fields replaced. */
export function redactObject(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Truncated]';
  seen.add(value);
  // pino's own serializer prints Errors (type, message, stack, cause); their text is covered by guard 2.
  if (value instanceof Error) return value;
  if (Array.isArray(value)) return value.map((v) => redactObject(v, depth + 1, seen));
  if (value instanceof Date || Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = isSensitiveKey(k) ? REDACTED : redactObject(v, depth + 1, seen);
  }
  return out;
}

/** Masks every join token in a finished log line; the prefix stays so a reader knows what was there. */
export function scrubJoinTokens(line: string): string {
  return line.replace(JOIN_TOKEN_PATTERN, `${JOIN_TOKEN_PREFIX}${REDACTED}`);
}
