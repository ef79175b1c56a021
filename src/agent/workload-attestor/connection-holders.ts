/**
 * Who holds the client's end of a Workload API connection. SO_PEERCRED names the process that called
 * connect(2), but a descriptor outlives that moment: it can be inherited by a forked child, passed to any
 * process over SCM_RIGHTS, and kept across an exec, after which the pid the kernel recorded runs another
 * program. The agent answers a connection only while the process that connected holds it, alone, and (unless
 * allowed) with close-on-exec set, so that it cannot have carried the connection over from another program.
 *
 * The client's end is found by inode (sock_diag UNIX_DIAG_PEER), its holders in /proc/<pid>/fd. What this
 * cannot see is listed in native/peercred/fd_scan.cc and in the README.
 */
import type * as net from 'node:net';
import { ErrorCode, LanyardError } from '../../errors';
import { peerAddon, socketFd, type SocketHolder } from './native';

export interface HolderPolicy {
  /**
   * Accept a connection whose descriptor in the connecting process is not close-on-exec. Such a descriptor
   * survives exec(2), so the process may have opened it while it ran another program. Clients that leave
   * their sockets inheritable (netty, hence java-spiffe) need this.
   */
  allowInheritable: boolean;
}

/**
 * The inode of the client's end of `socket`, read once at accept.
 * @throws LanyardError(ERR_WORKLOAD_ATTESTATION_FAILED) when the kernel cannot say (no unix_diag).
 */
export function clientEndInode(socket: net.Socket): number {
  let inode: number;
  try {
    inode = peerAddon().peerSocketInode(socketFd(socket));
  } catch (e) {
    throw failed(
      `the client's end of the connection cannot be found (sock_diag for Unix sockets, kernel module ` +
        `unix_diag, is needed to tell which processes hold it): ${(e as Error).message}`,
      e,
    );
  }
  if (inode === 0) throw failed('the client closed its end of the connection');
  return inode;
}

/**
 * Refuses (ERR_WORKLOAD_ATTESTATION_FAILED) unless `pid` holds the client's end `inode` and no other process
 * does, and (unless allowed) holds it close-on-exec.
 */
export async function requireSoleHolder(inode: number, pid: number, policy: HolderPolicy): Promise<void> {
  let holders: SocketHolder[];
  try {
    ({ holders } = await peerAddon().socketHolders(inode));
  } catch (e) {
    throw failed(`the holders of the connection cannot be listed: ${(e as Error).message}`, e);
  }
  const own = holders.filter((h) => h.pid === pid);
  const others = [...new Set(holders.filter((h) => h.pid !== pid).map((h) => h.pid))];
  const problems: string[] = [];
  if (own.length === 0) {
    problems.push(
      `pid ${pid}, which opened this connection, no longer holds it (closed at an exec, closed, or handed on)`,
    );
  } else if (!policy.allowInheritable && own.some((h) => h.cloexec !== true)) {
    problems.push(
      `pid ${pid} holds this connection without close-on-exec, so it may have opened it as another program ` +
        `before an exec; open the Workload API socket with close-on-exec (SOCK_CLOEXEC)`,
    );
  }
  if (others.length > 0) {
    problems.push(
      `this connection is also held by pid ${others.join(', ')} (a forked child or a passed descriptor): ` +
        `only the process that opened it may use it`,
    );
  }
  if (problems.length > 0) throw failed(problems.join('; '));
}

function failed(message: string, cause?: unknown): LanyardError {
  return new LanyardError(ErrorCode.WORKLOAD_ATTESTATION_FAILED, message, cause ? { cause } : undefined);
}
