/**
 * Who holds the client's end of a Workload API connection. SO_PEERCRED names the process that called
 * connect(2), but a descriptor outlives that moment: it can be inherited by a forked child, passed to any
 * process over SCM_RIGHTS, and kept across an exec, after which the pid the kernel recorded runs another
 * program. The agent answers a connection only while the process that connected holds it, alone, and (unless
 * allowed) with close-on-exec set, so that it cannot have carried the connection over from another program.
 *
 * The client's end is found by inode (sock_diag UNIX_DIAG_PEER), its holders in /proc/<pid>/fd. What this
 * cannot see is listed in native/peercred/fd_scan.cc and in docs/operator/agent.md.
 *
 * The whole of /proc is scanned once per connection, after the process is seen running what it will be
 * attested as; later calls and responses check only that the connecting process still holds its descriptor,
 * close-on-exec (one readlink, one fdinfo). Scanning again would not add protection: every copy an earlier
 * program made before the exec already existed at the first scan, and a copy hidden from that scan (in flight
 * in an SCM_RIGHTS message) can stay hidden from any later one until the answer has been sent.
 */
import * as fs from 'node:fs';
import type * as net from 'node:net';
import { LanyardError, WorkloadAttestationFailedError } from '../../errors';
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
 * does, and (unless allowed) holds it close-on-exec. Returns `pid`'s descriptor for it.
 */
export async function requireSoleHolder(inode: number, pid: number, policy: HolderPolicy): Promise<number> {
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
  return own[0]!.fd;
}

/** The holder checks of one connection: a full scan until one passes, then the cheap check. */
export class ConnectionHolders {
  /** The connecting process's descriptor for the connection, once a full scan passed. */
  private verifiedFd: number | undefined;

  constructor(
    private readonly inode: number,
    private readonly pid: number,
    private readonly policy: HolderPolicy,
  ) {}

  /** The full check (see requireSoleHolder). */
  async requireSoleHolder(): Promise<void> {
    const fd = await requireSoleHolder(this.inode, this.pid, this.policy);
    this.verifiedFd = fd;
  }

  /**
   * After a full check passed: the connecting process still holds the descriptor it held then, close-on-exec
   * (unless allowed); otherwise, or before any full check passed, the full check.
   */
  async requireStillHeld(): Promise<void> {
    const fd = this.verifiedFd;
    if (fd !== undefined && this.holds(fd)) return;
    this.verifiedFd = undefined;
    await this.requireSoleHolder();
  }

  private holds(fd: number): boolean {
    try {
      if (fs.readlinkSync(`/proc/${this.pid}/fd/${fd}`) !== `socket:[${this.inode}]`) return false;
      if (this.policy.allowInheritable) return true;
      const flags = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/${this.pid}/fdinfo/${fd}`, 'utf8'));
      return flags !== null && (parseInt(flags[1]!, 8) & peerAddon().O_CLOEXEC) !== 0;
    } catch {
      return false;
    }
  }
}

function failed(message: string, cause?: unknown): LanyardError {
  return new WorkloadAttestationFailedError(message, cause ? { cause } : undefined);
}
