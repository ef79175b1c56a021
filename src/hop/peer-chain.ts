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
