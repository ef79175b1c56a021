import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls';

/**
 * The certificates a TLS peer presented, leaf first, as DER: Node's detailed peer certificate links each
 * certificate to its issuer (a self-signed one links to itself). Empty when the peer sent none.
 */
export function peerChainOf(cert: PeerCertificate | DetailedPeerCertificate | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  let c: PeerCertificate | undefined = cert;
  while (c !== undefined && c.raw !== undefined && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    out.push(new Uint8Array(c.raw));
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
  let own: readonly Uint8Array[] = [];
  try {
    own =
      source
        ?.getX509Svid()
        .chain.slice(1)
        .map((c) => c.der) ?? [];
  } catch {
    // Without a current SVID of its own the service still verifies peers that present their chain.
  }
  const out = [...chain];
  for (const der of [...own, ...extra]) {
    if (!out.some((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength).equals(der))) out.push(der);
  }
  return out;
}
