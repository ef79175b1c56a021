import { ParsedCertificate } from '../x509/certificate';
import { CaAuthority, isSelfSigned } from './authority';

/**
 * The X.509 authorities the trust bundle must hold, given the CAs that are still alive (prepared, active, or
 * old but not yet expired): every root that some still-valid SVID, or some SVID about to be issued, chains to.
 *  - the configured upstream roots, all of them (an organisation may publish its next root ahead of time);
 *  - each self-signed Lanyard CA;
 *  - for each CA signed upstream, the root that anchors its chain, found among the configured roots and the
 *    roots of the previous bundle. That keeps SVIDs verifiable after the upstream configuration changes
 *    (another organisation root, or back to self-signed) until the CA that signed them expires.
 * Order: upstream roots first, then CAs by notBefore, so the bundle reads oldest-first like the store's list.
 */
export function rootsThatMatter(
  authorities: readonly CaAuthority[],
  upstreamRoots: readonly ParsedCertificate[],
  previousRoots: readonly ParsedCertificate[],
): ParsedCertificate[] {
  const roots = new Map<string, ParsedCertificate>();
  const add = (c: ParsedCertificate): void => {
    if (!roots.has(c.sha256Hex)) roots.set(c.sha256Hex, c);
  };
  upstreamRoots.forEach(add);
  const candidates = [...upstreamRoots, ...previousRoots];
  const ordered = [...authorities].sort((a, b) => a.cert.notBefore.getTime() - b.cert.notBefore.getTime());
  for (const a of ordered) {
    if (isSelfSigned(a)) {
      add(a.cert);
      continue;
    }
    const top = a.upstreamChain[a.upstreamChain.length - 1] ?? a.cert;
    for (const root of candidates) {
      if (Buffer.from(top.issuerDer).equals(Buffer.from(root.subjectDer)) && top.isSignedBy(root)) add(root);
    }
  }
  return [...roots.values()];
}

/** Same set of certificates (by DER hash), whatever the order. */
export function sameRoots(a: readonly ParsedCertificate[], b: readonly ParsedCertificate[]): boolean {
  const hashes = new Set(a.map((c) => c.sha256Hex));
  return hashes.size === new Set(b.map((c) => c.sha256Hex)).size && b.every((c) => hashes.has(c.sha256Hex));
}
