/**
 * The Workload API endpoint: a Unix socket whose every connection is attested from the kernel before gRPC
 * sees it.
 *
 * grpc-js does not expose a call's socket, so the agent accepts connections itself (net.Server), reads
 * SO_PEERCRED on the accepted socket right away (the kernel's record from connect time) and starts the unix
 * attestation, then hands the socket to grpc-js through its connection injector
 * (`Server.createConnectionInjector`, grpc-js >= 1.12). A Unix socket has no remote address, so the agent
 * labels it with a connection id in `remoteAddress`; grpc-js reports that as the call's peer
 * (`call.getPeer()`), which is how a handler finds the attestation of its own connection and of no other.
 */
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { clearStaleSocket, removeSocket } from '../../server/admin-socket';
import type { Logger } from '../../server/logging';
import { ErrorCode, LanyardError } from '../../errors';
import { peerCredentials, type PeerCredentials } from '../workload-attestor/peercred';
import { attestUnixPeer, type UnixAttestation } from '../workload-attestor/unix';
import { prepareWorkloadSocketDir } from './socket-dir';

const PEER_PREFIX = 'lanyard-workload-peer:';

export interface AttestedPeer {
  cred: PeerCredentials;
  /**
   * Attests the caller again, for the call at hand: the process behind the connection may have exec'd
   * another binary since it connected. Refuses (PERMISSION_DENIED) when it no longer runs the executable,
   * or is no longer the process (start time), that was attested when the connection was accepted.
   */
  attest(): Promise<UnixAttestation>;
}

export interface ServiceSpec {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

export class WorkloadEndpoint {
  private readonly peers = new Map<string, AttestedPeer>();
  private nextId = 1;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    readonly socketPath: string,
    private readonly net: net.Server,
    private readonly grpc: grpc.Server,
    private readonly injector: ReturnType<grpc.Server['createConnectionInjector']>,
  ) {}

  /**
   * Listens on `socketPath` (mode 0777: which workload gets what is decided per call by attestation, not by
   * who may connect), in a directory workloads can traverse (see socket-dir.ts). A stale socket left by a
   * dead agent is replaced; a live one is refused.
   */
  static async listen(opts: {
    socketPath: string;
    services: (peerOf: (call: { getPeer(): string }) => AttestedPeer) => ServiceSpec[];
    logger: Logger;
  }): Promise<WorkloadEndpoint> {
    prepareWorkloadSocketDir(opts.socketPath);
    await clearStaleSocket(opts.socketPath);
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 1024 * 1024 });
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const netServer = net.createServer();
    const endpoint = new WorkloadEndpoint(opts.socketPath, netServer, server, injector);
    for (const s of opts.services((call) => endpoint.peerOf(call))) {
      server.addService(s.definition, s.implementation);
    }
    netServer.on('connection', (socket) => endpoint.accept(socket, opts.logger));
    await new Promise<void>((resolve, reject) => {
      netServer.once('error', reject);
      netServer.listen(opts.socketPath, () => {
        netServer.off('error', reject);
        resolve();
      });
    });
    fs.chmodSync(opts.socketPath, 0o777);
    return endpoint;
  }

  /** The attestation of the connection a call arrived on. */
  peerOf(call: { getPeer(): string }): AttestedPeer {
    const peer = this.peers.get(call.getPeer());
    if (peer === undefined) {
      throw new LanyardError(
        ErrorCode.WORKLOAD_ATTESTATION_FAILED,
        "the caller's connection was not attested",
      );
    }
    return peer;
  }

  /** Stops accepting, ends open calls and connections (streams never end on their own), removes the socket. */
  async close(): Promise<void> {
    // net.Server.close calls back only once every connection is gone: end them first, then wait.
    const closed = new Promise<void>((resolve) => this.net.close(() => resolve()));
    this.injector.drain(0);
    this.injector.destroy();
    this.grpc.forceShutdown();
    for (const s of this.sockets) s.destroy();
    await closed;
    removeSocket(this.socketPath);
  }

  private accept(socket: net.Socket, logger: Logger): void {
    let cred: PeerCredentials;
    try {
      cred = peerCredentials(socket);
    } catch (e) {
      logger.warn({ err: (e as Error).message }, 'workload connection refused: no peer credentials');
      socket.destroy();
      return;
    }
    const label = `${PEER_PREFIX}${this.nextId++}`;
    const connectedAt = new Date();
    const atAccept = attestUnixPeer(cred, { connectedAt });
    // Rejections are reported to the calls that await it; never unhandled.
    atAccept.catch(() => {});
    this.peers.set(label, { cred, attest: () => reattest(cred, connectedAt, atAccept, logger) });
    this.sockets.add(socket);
    socket.once('close', () => {
      this.peers.delete(label);
      this.sockets.delete(socket);
    });
    Object.defineProperty(socket, 'remoteAddress', { value: label, configurable: true });
    this.injector.injectConnection(socket);
  }
}

/**
 * SO_PEERCRED is fixed at connect, but what runs under that pid is not: a process can connect, then exec
 * another binary and keep the connection. Each call reads /proc again and must find the same process
 * (start time) running the same file (device and inode) as at accept.
 */
async function reattest(
  cred: PeerCredentials,
  connectedAt: Date,
  atAccept: Promise<UnixAttestation>,
  logger: Logger,
): Promise<UnixAttestation> {
  const first = await atAccept;
  const now = await attestUnixPeer(cred, { connectedAt });
  if (now.startTime !== first.startTime) {
    throw new LanyardError(
      ErrorCode.WORKLOAD_ATTESTATION_FAILED,
      `pid ${cred.pid} is no longer the process that opened this connection: reconnect`,
    );
  }
  if (now.exe.dev !== first.exe.dev || now.exe.ino !== first.exe.ino) {
    throw new LanyardError(
      ErrorCode.WORKLOAD_ATTESTATION_FAILED,
      `pid ${cred.pid} runs another executable than when it connected (exec after connect): reconnect`,
    );
  }
  if (now.pathWithheld !== undefined) {
    logger.debug({ pid: cred.pid, reason: now.pathWithheld }, 'unix:path withheld for a workload');
  }
  return now;
}
