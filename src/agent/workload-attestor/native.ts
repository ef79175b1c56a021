/**
 * The N-API addon in native/peercred (built by node-gyp at `npm ci`): what the kernel knows about the peer of
 * a Unix-socket connection and Node does not expose.
 */
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as path from 'node:path';
import { InternalError, WorkloadAttestationFailedError } from '../../errors';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

export interface SocketHolder {
  pid: number;
  fd: number;
  /** Whether that descriptor is close-on-exec; absent when its fdinfo could not be read. */
  cloexec?: boolean;
}

export interface PeerAddon {
  /** SO_PEERCRED: pid, uid, gid as the kernel recorded them at connect(2). */
  peercred(fd: number): PeerCredentials;
  /** SO_PEERPIDFD (Linux >= 6.5): a pidfd for the process that connected; -1 when the kernel predates it. */
  peerPidfd(fd: number): number;
  /** pidfd_open(2) (Linux >= 5.3) for whoever has `pid` now; -1 when the kernel predates it. */
  pidfdOpen(pid: number): number;
  /** Whether the process of a pidfd has exited. */
  pidfdExited(pidfd: number): boolean;
  /** The inode of the peer's end of a connected Unix socket (sock_diag UNIX_DIAG_PEER); 0 once it closed. */
  peerSocketInode(fd: number): number;
  /** O_CLOEXEC as /proc/<pid>/fdinfo reports it (it differs between architectures). */
  readonly O_CLOEXEC: number;
  /** Every /proc/<pid>/fd entry that is socket:[inode], scanned off the event loop. */
  socketHolders(inode: number): Promise<{ holders: SocketHolder[]; unreadable: number }>;
}

let addon: PeerAddon | undefined;

/** Where node-gyp puts the addon, from the package root (src/ in a checkout, dist/ when built). */
export function peerAddon(): PeerAddon {
  if (addon !== undefined) return addon;
  const root = path.resolve(__dirname, '..', '..', '..');
  const file = path.join(root, 'build', 'Release', 'peercred.node');
  if (!fs.existsSync(file)) {
    throw new InternalError(
      `the SO_PEERCRED addon is not built (${file}): run npm ci (or npx node-gyp rebuild) in ${root}`,
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  addon = require(file) as PeerAddon;
  return addon;
}

/** @throws LanyardError(ERR_WORKLOAD_ATTESTATION_FAILED) when the socket has no descriptor (already closed). */
export function socketFd(socket: net.Socket): number {
  // net.Socket keeps its descriptor on the libuv handle; Node has no public accessor for it.
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new WorkloadAttestationFailedError('the connection has no file descriptor');
  }
  return fd;
}
