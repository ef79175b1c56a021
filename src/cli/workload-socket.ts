import { ConfigError } from '../errors';
import { resolveWorkloadEndpoint } from '../client/workload-endpoint';
import { usageError } from './cli-error';

/**
 * The Workload API socket of a client command: --socket (a path or unix:///path), else SPIFFE_ENDPOINT_SOCKET.
 * Neither set, or an address that is not a unix: URI with an absolute path, is a usage error (exit 2).
 */
export function workloadSocketFlag(socket: string | undefined): string {
  try {
    return resolveWorkloadEndpoint(socket);
  } catch (e) {
    if (e instanceof ConfigError) throw usageError(e.message);
    throw e;
  }
}

export const WORKLOAD_SOCKET_HELP =
  'Workload API socket: a path or unix:///path (default: $SPIFFE_ENDPOINT_SOCKET)';
