/**
 * The Workload API endpoint: a Unix socket whose every connection is attested from the kernel before gRPC
 * sees it.
 *
 * grpc-js does not expose a call's socket, so the agent accepts connections itself (net.Server), reads
 * SO_PEERCRED on the accepted socket right away (the kernel's record from connect time), takes a pidfd for
 * the peer and the inode of the client's end, and starts the unix attestation (attested-connection.ts), then
 * hands the socket to grpc-js through its connection injector
 * (`Server.createConnectionInjector`, grpc-js >= 1.12). A Unix socket has no remote address, so the agent
 * labels it with a connection id in `remoteAddress`; grpc-js reports that as the call's peer
 * (`call.getPeer()`), which is how a handler finds the attestation of its own connection and of no other.
 */
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { clearStaleSocket, removeSocket } from '../../internal/unix-socket';
import type { Logger } from '../../internal/logging';
import { WorkloadAttestationFailedError } from '../../errors';
import { AttestedConnection, type AttestedPeer, type ConnectionPolicy } from './attested-connection';
import { prepareWorkloadSocketDir } from './socket-dir';

export type { AttestedPeer, ConnectionPolicy } from './attested-connection';

const PEER_PREFIX = 'lanyard-workload-peer:';

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
    /** Default: inheritable client descriptors refused. */
    policy?: ConnectionPolicy;
  }): Promise<WorkloadEndpoint> {
    prepareWorkloadSocketDir(opts.socketPath);
    await clearStaleSocket(opts.socketPath);
    const server = new grpc.Server({
      'grpc.max_receive_message_length': 1024 * 1024,
      // As on the server's listeners (src/server/grpc-server.ts): grpc-js keeps channelz data on every call and
      // connection unless told not to, and nothing in the agent serves the channelz service that would read it.
      'grpc.enable_channelz': 0,
    });
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const netServer = net.createServer();
    const endpoint = new WorkloadEndpoint(opts.socketPath, netServer, server, injector);
    for (const s of opts.services((call) => endpoint.peerOf(call))) {
      server.addService(s.definition, s.implementation);
    }
    const policy = opts.policy ?? { allowInheritable: false };
    netServer.on('connection', (socket) => endpoint.accept(socket, policy, opts.logger));
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
      throw new WorkloadAttestationFailedError("the caller's connection was not attested");
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

  private accept(socket: net.Socket, policy: ConnectionPolicy, logger: Logger): void {
    let conn: AttestedConnection;
    try {
      conn = AttestedConnection.accept(socket, policy, logger);
    } catch (e) {
      logger.warn({ err: (e as Error).message }, 'workload connection refused: no peer to attest');
      socket.destroy();
      return;
    }
    const label = `${PEER_PREFIX}${this.nextId++}`;
    this.peers.set(label, conn);
    this.sockets.add(socket);
    socket.once('close', () => {
      this.peers.delete(label);
      this.sockets.delete(socket);
      conn.close();
    });
    Object.defineProperty(socket, 'remoteAddress', { value: label, configurable: true });
    this.injector.injectConnection(socket);
  }
}
