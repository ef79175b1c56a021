/**
 * Where the SPIFFE Workload API is: a socket path given by the caller, else the SPIFFE_ENDPOINT_SOCKET
 * environment variable (SPIFFE Workload Endpoint §4), which go-spiffe, spiffe-helper and SPIRE's tools read.
 * The variable holds a URI, parsed as go-spiffe parses it for Unix sockets: `unix:///path` or `unix:/path`.
 */
import * as path from 'node:path';
import { ConfigError } from '../errors';

export const SPIFFE_ENDPOINT_SOCKET = 'SPIFFE_ENDPOINT_SOCKET';

/**
 * The absolute socket path of a Workload API address: `unix:///abs/path` or `unix:/abs/path`. Refused, each
 * with its reason: another scheme (tcp included: Lanyard's agent serves only a Unix socket, where the kernel
 * names the caller), no scheme, a host or user info (`unix://host/p`), a relative path (`unix:rel`), an empty
 * path, a query or a fragment.
 * @throws ConfigError (ERR_INVALID_CONFIG) naming `source` and the rule.
 */
export function parseWorkloadEndpoint(address: string, source = 'the Workload API address'): string {
  const fail = (why: string): ConfigError =>
    new ConfigError(`${source} ${JSON.stringify(address)}: ${why} (expected unix:///absolute/path)`);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(address);
  if (scheme === null) throw fail('no URI scheme');
  if (scheme[1]!.toLowerCase() !== 'unix') {
    throw fail(`the scheme "${scheme[1]}" is not supported, only unix`);
  }
  let rest = address.slice(scheme[0].length);
  if (rest.includes('?')) throw fail('a query is not allowed');
  if (rest.includes('#')) throw fail('a fragment is not allowed');
  if (rest.startsWith('//')) {
    const end = rest.indexOf('/', 2);
    const authority = end < 0 ? rest.slice(2) : rest.slice(2, end);
    if (authority.includes('@')) throw fail('user info is not allowed');
    if (authority !== '') throw fail(`a host ("${authority}") is not allowed; a relative path is not either`);
    rest = end < 0 ? '' : rest.slice(end);
  }
  if (rest === '' || rest === '/') throw fail('the socket path is empty');
  if (!rest.startsWith('/')) throw fail('the socket path must be absolute');
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    throw fail('the path has a malformed percent-escape');
  }
  if (decoded.includes('\0')) throw fail('the path holds a NUL byte');
  return decoded;
}

/** The `unix:///path` address of a socket path, escaped so that parseWorkloadEndpoint gives the path back. */
export function workloadEndpointUri(socketPath: string): string {
  const abs = path.resolve(socketPath);
  return `unix://${encodeURI(abs).replace(/\?/g, '%3F').replace(/#/g, '%23')}`;
}

/**
 * The Workload API socket to use: `given` (a path, or a `unix:` address as above) when set, else
 * SPIFFE_ENDPOINT_SOCKET from `env`.
 * @throws ConfigError when neither is set, or the one used is not a valid address.
 */
export function resolveWorkloadEndpoint(
  given: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (given !== undefined && given !== '') {
    return /^unix:/i.test(given) ? parseWorkloadEndpoint(given) : path.resolve(given);
  }
  const fromEnv = env[SPIFFE_ENDPOINT_SOCKET];
  if (fromEnv === undefined || fromEnv === '') {
    throw new ConfigError(
      `no Workload API socket: give one (--socket / socketPath) or set ${SPIFFE_ENDPOINT_SOCKET}=unix:///path/to/agent.sock`,
    );
  }
  return parseWorkloadEndpoint(fromEnv, SPIFFE_ENDPOINT_SOCKET);
}
