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

const PEER_PREFIX = 'lanyard-workload-peer:';

export interface AttestedPeer {
  cred: PeerCredentials;
  attestation: Promise<UnixAttestation>;
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
   * who may connect). A stale socket left by a dead agent is replaced; a live one is refused.
   */
  static async listen(opts: {
    socketPath: string;
    services: (peerOf: (call: { getPeer(): string }) => AttestedPeer) => ServiceSpec[];
    logger: Logger;
  }): Promise<WorkloadEndpoint> {
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
    const attestation = attestUnixPeer(cred, { connectedAt: new Date() });
    // Rejections are reported to the calls that await it; never unhandled.
    attestation.catch(() => {});
    this.peers.set(label, { cred, attestation });
    this.sockets.add(socket);
    socket.once('close', () => {
      this.peers.delete(label);
      this.sockets.delete(socket);
    });
    Object.defineProperty(socket, 'remoteAddress', { value: label, configurable: true });
    this.injector.injectConnection(socket);
  }
}
