import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls';

/**
 * The certificates a TLS peer presented, leaf first, as DER: Node's detailed peer certificate links each
 * certificate to its issuer (a self-signed one links to itself). Empty when the peer sent none.
 *
 * Each DER is a view of the `raw` Buffer Node made for this certificate object, not a copy: every
 * getPeerCertificate call converts the certificates afresh into Buffers of their own, and the object is the
 * caller's alone (a client's checkServerIdentity gets the one Node read for it).
 */
export function peerChainOf(cert: PeerCertificate | DetailedPeerCertificate | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  let c: PeerCertificate | undefined = cert;
  while (c !== undefined && c.raw !== undefined && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    out.push(new Uint8Array(c.raw.buffer, c.raw.byteOffset, c.raw.byteLength));
    c = (c as DetailedPeerCertificate).issuerCertificate;
  }
  return out;
}

/** The chain the peer of `socket` presented; empty without one. */
export function socketPeerChain(socket: TLSSocket): Uint8Array[] {
  return peerChainOf(socket.getPeerCertificate(true));
}

/** What completing a chain needs of the service's own X509Source. */
export interface OwnChainSource {
  getX509Svid(): { chain: readonly { der: Uint8Array }[] };
}

/**
 * The intermediates of each own SVID object, as DER. A service completes a peer's chain with them on every
 * handshake; an SVID object never changes (a rotation brings a new one), so they are taken out of it once.
 */
const ownIntermediates = new WeakMap<object, readonly Uint8Array[]>();

function intermediatesOf(svid: { chain: readonly { der: Uint8Array }[] }): readonly Uint8Array[] {
  let own = ownIntermediates.get(svid);
  if (own === undefined) {
    own = Object.freeze(svid.chain.slice(1).map((c) => c.der));
    ownIntermediates.set(svid, own);
  }
  return own;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

function appendMissing(out: Uint8Array[], ders: readonly Uint8Array[]): void {
  for (const der of ders) {
    let present = false;
    for (const c of out) {
      if (sameBytes(c, der)) {
        present = true;
        break;
      }
    }
    if (!present) out.push(der);
  }
}

/**
 * `chain` with the intermediates this service knows appended: those of its own SVID (same trust domain, same
 * CA) and `extra`. A resumed TLS session keeps only the peer's leaf, so without them a peer whose SVID an
 * intermediate signed would be refused as ERR_UNKNOWN_AUTHORITY on every resumption. Appending is safe: the
 * verifier still builds the path to a bundle root and ignores certificates it does not use.
 */
export function withKnownIntermediates(
  chain: readonly Uint8Array[],
  source: OwnChainSource | undefined,
  extra: readonly Uint8Array[] = [],
): Uint8Array[] {
  if (chain.length === 0) return [];
  const out = chain.slice();
  if (source !== undefined) {
    let svid: { chain: readonly { der: Uint8Array }[] } | undefined;
    try {
      svid = source.getX509Svid();
    } catch {
      // Without a current SVID of its own the service still verifies peers that present their chain.
      svid = undefined;
    }
    if (svid !== undefined) appendMissing(out, intermediatesOf(svid));
  }
  appendMissing(out, extra);
  return out;
}
