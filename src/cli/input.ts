import { readFileSync } from 'node:fs';
import { isLanyardError } from '../errors';
import { parseDurationSeconds } from '../internal/duration';
import { SpiffeId, TrustDomain } from '../spiffe';
import { DEFAULT_AGENT_CONTEXT_OID, resolveAgentContextOid } from '../x509/agent-context/oid';
import { usageError } from './cli-error';
import { ServerEndpoints } from '../client/server-endpoints';

/** Read a file the user named on the command line; a missing or unreadable file is a usage error (exit 2). */
export function readInputFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code ?? 'unreadable';
    throw usageError(`cannot read ${what} ${path}: ${reason}`);
  }
}

export function parsePositiveInt(value: string, flag: string): number {
  if (!/^\d+$/.test(value) || Number(value) <= 0 || !Number.isSafeInteger(Number(value))) {
    throw usageError(`${flag} must be a positive integer, got "${value}"`);
  }
  return Number(value);
}

/** A count where 0 means something (a depth, a bound); a sign, a fraction or anything else exits 2. */
export function parseNonNegativeInt(value: string, flag: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw usageError(`${flag} must be a non-negative integer, got "${value}"`);
  }
  return Number(value);
}

/** A duration flag such as 90s, 15m, 1h, 7d; a bare number or anything else is a usage error (exit 2). */
export function parseDuration(value: string, flag: string): number {
  return asUsageError(() => parseDurationSeconds(value, flag), flag, false);
}

// Date and time are required, seconds and fractions optional, and the zone must be named: a time without
// one would mean the local zone of whoever runs the command, which a script cannot see.
const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * A strict ISO 8601 time such as 2026-11-30T04:30:00Z or 2026-11-30T05:30+01:00. `new Date()` alone rolls
 * impossible dates over (2026-02-30 becomes March 2), so the fields must survive a round trip unchanged.
 */
export function parseIsoTime(value: string, flag: string): Date {
  const refuse = (why: string) =>
    usageError(`${flag} must be an ISO 8601 time like 2026-11-30T04:30:00Z, got "${value}"${why}`);
  const m = ISO_8601.exec(value);
  if (m === null) throw refuse('');
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6] ?? '0'].map(
    Number,
  ) as [number, number, number, number, number, number];
  const wall = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  wall.setUTCFullYear(year); // Date.UTC maps years 0-99 to 1900-1999
  if (
    wall.getUTCFullYear() !== year ||
    wall.getUTCMonth() !== month - 1 ||
    wall.getUTCDate() !== day ||
    wall.getUTCHours() !== hour ||
    wall.getUTCMinutes() !== minute ||
    wall.getUTCSeconds() !== second
  ) {
    throw refuse(': no such date or time');
  }
  const zone = m[8]!;
  let offsetMinutes = 0;
  if (zone !== 'Z') {
    const [oh, om] = zone.slice(1).split(':').map(Number) as [number, number];
    if (oh > 23 || om > 59) throw refuse(': no such zone offset');
    offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (oh * 60 + om);
  }
  const millis = m[7] !== undefined ? Math.floor(Number(m[7]) * 1000) : 0;
  return new Date(wall.getTime() + millis - offsetMinutes * 60_000);
}

/** A --trust-domain value; a malformed name is a usage error (exit 2), not a rejection. */
export function parseTrustDomainFlag(value: string, flag: string): TrustDomain {
  return asUsageError(() => TrustDomain.parse(value), flag);
}

/** A SPIFFE ID flag value; a malformed ID is a usage error (exit 2), not a rejection. */
export function parseSpiffeIdFlag(value: string, flag: string): SpiffeId {
  return asUsageError(() => SpiffeId.parse(value), flag);
}

function asUsageError<T>(parse: () => T, flag: string, prefix = true): T {
  try {
    return parse();
  } catch (e) {
    if (isLanyardError(e)) throw usageError(prefix ? `${flag}: ${e.message}` : e.message);
    throw e;
  }
}

/** The --agent-context-oid option of every command that reads or writes an SVID's agent context. */
export const AGENT_CONTEXT_OID_OPTION = [
  '--agent-context-oid <oid>',
  "OID of the agent-context extension: the server's agent_context.oid (default: $LANYARD_AGENT_CONTEXT_OID, else 1.3.6.1.4.1.262144.1.1)",
] as const;

/**
 * --agent-context-oid, else LANYARD_AGENT_CONTEXT_OID, else the default. A malformed OID (not dotted decimal,
 * an arc of 2^28 or more) is a usage error (exit 2).
 */
export function agentContextOidFlag(value: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (value !== undefined)
    return asUsageError(() => resolveAgentContextOid(value, 'the OID'), '--agent-context-oid');
  const fromEnv = env.LANYARD_AGENT_CONTEXT_OID;
  if (fromEnv !== undefined && fromEnv !== '') {
    return asUsageError(() => resolveAgentContextOid(fromEnv, 'the OID'), 'LANYARD_AGENT_CONTEXT_OID');
  }
  return DEFAULT_AGENT_CONTEXT_OID;
}

/** Commander's collector for a repeatable option. */
export const collectRepeated = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  value,
];

/** `--server`, repeatable: several servers of one database, tried in order, the next when one is down. */
export const SERVER_OPTION = [
  '--server <address>',
  "a server's TLS listener: host:port, or a name resolving to several servers (dns:[//dns-server/]host:port); repeat for several servers of one database, failed over in order",
  collectRepeated,
] as const;

/** The --server values, each checked (a usage error, exit 2, for a malformed one); at least one. */
export function serverAddressesFlag(values: readonly string[] | undefined): ServerEndpoints {
  if (values === undefined || values.length === 0) throw usageError('--server is required');
  return asUsageError(() => new ServerEndpoints(values), '--server');
}
