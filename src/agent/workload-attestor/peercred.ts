/**
 * The kernel's credentials of a Unix-socket peer (SO_PEERCRED). The values are the ones the kernel recorded
 * when the peer called connect(2), so they cannot be changed by the peer afterwards, unlike anything read
 * from /proc later.
 */
import type * as net from 'node:net';
import { WorkloadAttestationFailedError } from '../../errors';
import { peerAddon, socketFd, type PeerCredentials } from './native';

export type { PeerCredentials } from './native';

/** @throws LanyardError(ERR_WORKLOAD_ATTESTATION_FAILED) when the socket has no fd or the kernel refuses. */
export function peerCredentials(socket: net.Socket): PeerCredentials {
  const fd = socketFd(socket);
  const lib = peerAddon();
  try {
    return lib.peercred(fd);
  } catch (e) {
    throw new WorkloadAttestationFailedError(`SO_PEERCRED failed: ${(e as Error).message}`, { cause: e });
  }
}
