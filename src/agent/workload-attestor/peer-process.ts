/**
 * The process that connected, held by a pidfd for as long as the connection lasts, so that a pid reused by
 * another process is told apart from the one that connected: SO_PEERPIDFD (Linux >= 6.5) takes the pidfd at
 * connect(2) itself; pidfd_open(2) (Linux >= 5.3) takes it at accept, when the pid may in principle already
 * have changed hands (the start-time check in unix.ts covers that gap). Older kernels get no pidfd and rely
 * on the start time alone.
 */
import * as fs from 'node:fs';
import type * as net from 'node:net';
import { WorkloadAttestationFailedError } from '../../errors';
import { peerAddon, socketFd } from './native';

export type PidfdSource = 'SO_PEERPIDFD' | 'pidfd_open' | 'none';

export class PeerProcess {
  private closed = false;

  private constructor(
    readonly pid: number,
    private readonly pidfd: number,
    readonly source: PidfdSource,
  ) {}

  /** @throws LanyardError(ERR_WORKLOAD_ATTESTATION_FAILED) when the process is already gone. */
  static open(socket: net.Socket, pid: number): PeerProcess {
    const lib = peerAddon();
    try {
      const fromSocket = lib.peerPidfd(socketFd(socket));
      if (fromSocket >= 0) return new PeerProcess(pid, fromSocket, 'SO_PEERPIDFD');
      const opened = lib.pidfdOpen(pid);
      return new PeerProcess(pid, opened, opened >= 0 ? 'pidfd_open' : 'none');
    } catch (e) {
      throw new WorkloadAttestationFailedError(
        `pid ${pid} cannot be held (it is gone?): ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  /**
   * Whether the process that connected has exited (its pid may then be another process's). Without a pidfd
   * this cannot be known here: false.
   */
  exited(): boolean {
    if (this.closed) return true;
    if (this.pidfd < 0) return false;
    return peerAddon().pidfdExited(this.pidfd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.pidfd >= 0) fs.closeSync(this.pidfd);
  }
}
