/**
 * The kernel's credentials of a Unix-socket peer (SO_PEERCRED), through the N-API addon in native/peercred
 * (built by node-gyp at `npm ci`). The values are the ones the kernel recorded when the peer called
 * connect(2), so they cannot be changed by the peer afterwards, unlike anything read from /proc later.
 */
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as path from 'node:path';
import { ErrorCode, LanyardError } from '../../errors';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

interface PeercredAddon {
  peercred(fd: number): PeerCredentials;
}

let addon: PeercredAddon | undefined;

/** Where node-gyp puts the addon, from the package root (src/ in a checkout, dist/ when built). */
function loadAddon(): PeercredAddon {
  if (addon !== undefined) return addon;
  const root = path.resolve(__dirname, '..', '..', '..');
  const file = path.join(root, 'build', 'Release', 'peercred.node');
  if (!fs.existsSync(file)) {
    throw new LanyardError(
      ErrorCode.INTERNAL,
      `the SO_PEERCRED addon is not built (${file}): run npm ci (or npx node-gyp rebuild) in ${root}`,
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  addon = require(file) as PeercredAddon;
  return addon;
}

/** @throws LanyardError(ERR_WORKLOAD_ATTESTATION_FAILED) when the socket has no fd or the kernel refuses. */
export function peerCredentials(socket: net.Socket): PeerCredentials {
  // net.Socket keeps its descriptor on the libuv handle; Node has no public accessor for it.
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new LanyardError(ErrorCode.WORKLOAD_ATTESTATION_FAILED, 'the connection has no file descriptor');
  }
  const lib = loadAddon();
  try {
    return lib.peercred(fd);
  } catch (e) {
    throw new LanyardError(
      ErrorCode.WORKLOAD_ATTESTATION_FAILED,
      `SO_PEERCRED failed: ${(e as Error).message}`,
      { cause: e },
    );
  }
}
