/**
 * A TLS peer's certificates as the server-side hop helpers verify them, read from the socket once per connection
 * and handed out again for every request on it.
 *
 * Reading is the expensive part: for a detailed peer chain (`getPeerCertificate(true)`) Node copies every
 * certificate and converts it to an object, fingerprints and public key included, about 0.6 ms for a leaf,
 * an intermediate and a root on OpenSSL 3, which is more than a whole handshake's verification with a warm
 * verifier. The leaf alone costs a fraction of that. So a connection is verified by its leaf completed with the
 * intermediates the service knows (those of its own SVID and the `intermediates` option), and the chain the peer
 * presented is read only when that does not verify (a peer under an intermediate this service has not seen, such
 * as one of a federated domain). Which one the connection needed is remembered for its later requests.
 *
 * Renegotiation is switched off when the connection is first seen: it is the one way a peer's certificate could
 * change within a TLS connection (TLS 1.3 has none anyway). The cheaper `getPeerX509Certificate()` is not used:
 * in Node 20 it takes the certificates out of the connection's peer chain, so a later `getPeerCertificate(true)`
 * by the application would find the chain cut short.
 */
import type { TLSSocket } from 'node:tls';
import { type OwnChainSource, socketPeerChain, withKnownIntermediates } from '../internal/peer-chain';
import { KeptVerdict } from './kept-verdict';
import { objectSlot } from './object-slot';
import type { PeerChains } from './peer';

/** How a chain is completed: the service's own chain source and extra DER intermediates. */
export interface ChainCompletion {
  readonly chainSource?: OwnChainSource | undefined;
  readonly intermediates?: readonly Uint8Array[] | undefined;
}

class ConnectionChain {
  private leafDer: Uint8Array[] | undefined;
  private presentedDer: Uint8Array[] | undefined;
  /** The peer's leaf did not verify with the known intermediates once: its own chain comes first since. */
  private needsPresented = false;
  /** The last completed chain and what it was completed with (the source's SVID object, the options). */
  private completed: Uint8Array[] = [];
  private completedFor: { svid: unknown; completion: ChainCompletion; presented: boolean } | undefined;

  constructor(private readonly socket: TLSSocket) {}

  /** The PeerChains handed out last, reused while it holds the same completed chain. */
  private handedOut: PeerChains | undefined;
  /** The verdict on the chain, for the connection's next requests. */
  private readonly kept = new KeptVerdict();

  chains(completion: ChainCompletion): PeerChains {
    const chain = this.complete(completion, this.needsPresented);
    if (this.handedOut?.chain === chain) return this.handedOut;
    this.handedOut = this.needsPresented
      ? { chain, kept: this.kept }
      : {
          chain,
          presented: () => {
            this.needsPresented = true;
            return this.complete(completion, true);
          },
          kept: this.kept,
        };
    return this.handedOut;
  }

  /**
   * The leaf, or the presented chain, with the known intermediates appended. Kept while the source hands out the
   * same SVID object (a rotation brings a new one, and maybe new intermediates), so a request on a kept-alive
   * connection builds nothing and the verifier's memo sees the very same bytes.
   */
  private complete(completion: ChainCompletion, presented: boolean): Uint8Array[] {
    let svid: unknown;
    try {
      svid = completion.chainSource?.getX509Svid();
    } catch {
      // No current SVID: withKnownIntermediates completes with `intermediates` alone, and so does this.
      svid = undefined;
    }
    const last = this.completedFor;
    if (
      last !== undefined &&
      last.svid === svid &&
      last.completion === completion &&
      last.presented === presented
    ) {
      return this.completed;
    }
    const own = presented ? this.presented() : this.leaf();
    this.completed = withKnownIntermediates(own, completion.chainSource, completion.intermediates);
    this.completedFor = { svid, completion, presented };
    return this.completed;
  }

  private leaf(): Uint8Array[] {
    if (this.leafDer === undefined) {
      // Null once the socket is gone: then there is no certificate to verify.
      const raw = (this.socket.getPeerCertificate(false) as { raw?: Buffer } | null)?.raw;
      this.leafDer =
        raw === undefined || raw.length === 0
          ? []
          : [new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)];
    }
    return this.leafDer;
  }

  private presented(): Uint8Array[] {
    this.presentedDer ??= socketPeerChain(this.socket);
    return this.presentedDer;
  }
}

/** Each connection's ConnectionChain, in a private field of its socket (object-slot.ts): read on every request. */
const connections = objectSlot<ConnectionChain>();

/** The chains to verify the peer of `socket` by (see PeerChains); the same object for every request on it. */
export function connectionChains(socket: TLSSocket, completion: ChainCompletion): PeerChains {
  let connection = connections.get(socket);
  if (connection === undefined) {
    socket.disableRenegotiation();
    connection = new ConnectionChain(socket);
    connections.set(socket, connection);
  }
  return connection.chains(completion);
}

/**
 * The chains of a connection that is verified once, when its handshake ends (createHopTlsServer): the peer's
 * leaf completed with the known intermediates, and the presented chain read only should that not verify.
 * Nothing is kept for later requests, since there are none: no ConnectionChain, no verdict, no registry entry.
 * Renegotiation is switched off here too, before the leaf is read.
 */
export function handshakeChains(socket: TLSSocket, completion: ChainCompletion): PeerChains {
  socket.disableRenegotiation();
  return new HandshakeChains(socket, completion);
}

class HandshakeChains implements PeerChains {
  readonly chain: Uint8Array[];

  constructor(
    private readonly socket: TLSSocket,
    private readonly completion: ChainCompletion,
  ) {
    // Null once the socket is gone: then there is no certificate to verify.
    const raw = (socket.getPeerCertificate(false) as { raw?: Buffer } | null)?.raw;
    this.chain =
      raw === undefined || raw.length === 0
        ? []
        : withKnownIntermediates(
            [new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)],
            completion.chainSource,
            completion.intermediates,
          );
  }

  /** A method, not a closure: checkHopPeer calls it as `chains.presented()`, and only on a failed leaf. */
  presented(): Uint8Array[] {
    return withKnownIntermediates(
      socketPeerChain(this.socket),
      this.completion.chainSource,
      this.completion.intermediates,
    );
  }
}
