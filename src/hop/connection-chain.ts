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
 * What a TLS server that verifies each connection once, when its handshake ends (createHopTlsServer), keeps of
 * the peer leaves it has seen: the leaf completed with the known intermediates, and the verdict on that chain
 * (kept-verdict.ts), so that a peer connecting again with the same SVID is answered without the verifier. Each
 * new connection is otherwise a full path through verifyX509Svid, whose memo hashes and compares the whole
 * completed chain, completes the chain anew and reads the service's own SVID three times: about as much CPU as
 * Node's own read of the leaf, which is the one part of the check no helper can skip.
 *
 * A leaf is found by the SHA-256 fingerprint Node computed when it read the leaf, then compared byte for byte.
 * Its entry holds while the service's own SVID is the same object (a rotation may bring new intermediates and
 * another trust domain); the kept verdict re-checks the clock, the bundle object and revocation on every
 * handshake, exactly as for a kept-alive HTTP connection. Anything that does not hold takes the full path.
 * Nothing is kept per connection (there are no later requests), no registry entry is made.
 */
export class HandshakeChains {
  private readonly known = new Map<string, KnownLeaf>();

  constructor(private readonly completion: ChainCompletion) {}

  /**
   * The chains to verify the peer of `socket` by, its handshake just ended. Renegotiation is switched off
   * before the leaf is read.
   */
  chains(socket: TLSSocket): PeerChains {
    socket.disableRenegotiation();
    // Null once the socket is gone: then there is no certificate to verify.
    const cert = socket.getPeerCertificate(false) as { raw?: Buffer; fingerprint256?: string } | null;
    const raw = cert?.raw;
    if (raw === undefined || raw.length === 0) return { chain: [] };
    let svid: unknown;
    try {
      svid = this.completion.chainSource?.getX509Svid();
    } catch {
      // No current SVID: withKnownIntermediates completes with `intermediates` alone, and so does this.
      svid = undefined;
    }
    const key = cert!.fingerprint256 ?? '';
    let known = this.known.get(key);
    if (known === undefined || known.svid !== svid || !raw.equals(known.leaf)) {
      known = {
        // Node made this Buffer for this read alone: kept as it is, nobody else writes to it.
        leaf: raw,
        svid,
        chain: withKnownIntermediates(
          [new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)],
          this.completion.chainSource,
          this.completion.intermediates,
        ),
        kept: new KeptVerdict(),
      };
      if (!this.known.has(key) && this.known.size >= MAX_KNOWN_LEAVES) {
        // The oldest entry first (a Map iterates in insertion order): a bound, not a recency order.
        this.known.delete(this.known.keys().next().value!);
      }
      this.known.set(key, known);
    }
    return new HandshakePeer(socket, this.completion, known);
  }
}

/** Peers of a server are its callers' workloads: this many distinct leaves at once, then the oldest go. */
const MAX_KNOWN_LEAVES = 256;

interface KnownLeaf {
  readonly leaf: Buffer;
  /** The service's own SVID object the chain was completed with. */
  readonly svid: unknown;
  readonly chain: Uint8Array[];
  readonly kept: KeptVerdict;
}

class HandshakePeer implements PeerChains {
  readonly chain: Uint8Array[];
  readonly kept: KeptVerdict;

  constructor(
    private readonly socket: TLSSocket,
    private readonly completion: ChainCompletion,
    known: KnownLeaf,
  ) {
    this.chain = known.chain;
    this.kept = known.kept;
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
