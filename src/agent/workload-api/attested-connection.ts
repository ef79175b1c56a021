/**
 * One Workload API connection and the process behind it, from accept to close.
 *
 * SO_PEERCRED is fixed at connect(2), but what runs under that pid is not: a process can connect, then exec a
 * binary that an entry names (exec keeps the pid and the start time), and let another process it forked, or
 * handed the descriptor to, ask for that binary's SVIDs. So the agent:
 * - holds the connecting process by a pidfd (SO_PEERPIDFD or pidfd_open) and refuses once it has exited;
 * - reads the process's identity at accept and refuses every later call or response for which a new read
 *   differs (the executable's device and inode, its size, mtime and ctime, the exe link, the start time, the
 *   uid/gid/groups lines), re-attesting fully (selectors, hash) at each call and re-reading the identity
 *   right before each response it sends;
 * - refuses unless the connecting process alone holds the client's end of the connection, with close-on-exec
 *   set (an inheritable descriptor may have been opened by another program before an exec): all of /proc is
 *   scanned at the first call, between two identity reads, and the connecting process's own descriptor is
 *   checked again at every call and response (why once is enough: connection-holders.ts). Connections that
 *   make no Workload API call (health probes) cost no scan.
 * What remains possible for a process of the same uid is stated in docs/design/threat-model.md.
 */
import type * as net from 'node:net';
import { LanyardError, WorkloadAttestationFailedError } from '../../errors';
import type { Logger } from '../../internal/logging';
import {
  ConnectionHolders,
  clientEndInode,
  type HolderPolicy,
} from '../workload-attestor/connection-holders';
import { peerCredentials, type PeerCredentials } from '../workload-attestor/peercred';
import { PeerProcess } from '../workload-attestor/peer-process';
import {
  attestUnixPeer,
  identityChange,
  readProcessIdentity,
  type ProcessIdentity,
  type UnixAttestation,
} from '../workload-attestor/unix';

export type ConnectionPolicy = HolderPolicy;

export interface AttestedPeer {
  cred: PeerCredentials;
  /**
   * Attests the caller again, for the call at hand. Refuses (PERMISSION_DENIED) when the process is not the
   * one that connected, runs another executable than at accept, or does not hold the connection alone.
   */
  attest(): Promise<UnixAttestation>;
  /** The same checks without re-hashing, right before a response goes out. */
  confirm(): Promise<void>;
}

export class AttestedConnection implements AttestedPeer {
  private readonly atAccept: Promise<UnixAttestation>;

  private constructor(
    readonly cred: PeerCredentials,
    private readonly process: PeerProcess,
    /** Who holds the client's end, or why that cannot be known: every call is then refused. */
    private readonly holders: ConnectionHolders | LanyardError,
    private readonly connectedAt: Date,
    private readonly logger: Logger,
  ) {
    this.atAccept = attestUnixPeer(cred, { connectedAt });
    // Rejections are reported to the calls that await it; never unhandled.
    this.atAccept.catch(() => {});
  }

  /**
   * Takes the kernel's record of the peer and a hold on its process right away, before anything can change.
   * @throws LanyardError(ERR_WORKLOAD_ATTESTATION_FAILED) when there is no peer to attest (the socket is to
   * be closed).
   */
  static accept(socket: net.Socket, policy: ConnectionPolicy, logger: Logger): AttestedConnection {
    const connectedAt = new Date();
    const cred = peerCredentials(socket);
    const proc = PeerProcess.open(socket, cred.pid);
    let holders: ConnectionHolders | LanyardError;
    try {
      holders = new ConnectionHolders(clientEndInode(socket), cred.pid, policy);
    } catch (e) {
      holders = e as LanyardError;
    }
    return new AttestedConnection(cred, proc, holders, connectedAt, logger);
  }

  async attest(): Promise<UnixAttestation> {
    const first = await this.atAccept;
    this.requireAlive();
    const now = await attestUnixPeer(this.cred, { connectedAt: this.connectedAt });
    this.requireSame(first.identity, now.identity);
    if (now.sha256 !== first.sha256) {
      throw this.refused(`the executable's SHA-256 changed since the connection was opened`);
    }
    await this.requireHeld();
    this.requireSame(first.identity, readProcessIdentity(this.cred.pid));
    this.requireAlive();
    if (now.pathWithheld !== undefined) {
      this.logger.debug(
        { pid: this.cred.pid, reason: now.pathWithheld },
        'unix:path withheld for a workload',
      );
    }
    return now;
  }

  async confirm(): Promise<void> {
    const first = await this.atAccept;
    this.requireAlive();
    this.requireSame(first.identity, readProcessIdentity(this.cred.pid));
    await this.requireHeld();
    this.requireSame(first.identity, readProcessIdentity(this.cred.pid));
    this.requireAlive();
  }

  close(): void {
    this.process.close();
  }

  private requireAlive(): void {
    if (this.process.exited()) {
      throw this.refused(`pid ${this.cred.pid}, which opened this connection, has exited`);
    }
  }

  private requireSame(was: ProcessIdentity, now: ProcessIdentity): void {
    const changed = identityChange(was, now);
    if (changed !== undefined) {
      throw this.refused(
        `pid ${this.cred.pid} is no longer what it was when it opened this connection (${changed}): reconnect`,
      );
    }
  }

  private async requireHeld(): Promise<void> {
    if (this.holders instanceof LanyardError) throw this.holders;
    await this.holders.requireStillHeld();
  }

  private refused(message: string): LanyardError {
    return new WorkloadAttestationFailedError(message);
  }
}
