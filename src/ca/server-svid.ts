import type { KeyObject } from 'node:crypto';
import { SERVER_ID_PATH } from '../internal/server-id';
import { generateSigningKeyPair } from '../x509/keys';
import { toX509Svid, type X509Svid } from '../svid/x509-svid';
import { issueX509Svid } from '../x509/profiles';
import { CaAuthority, chainAbove } from './authority';
import { halfLife } from './rotation-schedule';

/** The server's own SPIFFE ID path: `spiffe://<trust domain>/lanyard/server`. */
export const SERVER_SPIFFE_PATH = SERVER_ID_PATH;

/**
 * The server's TLS identity: the one SVID type, plus the CA's bookkeeping for renewing it. Its key lives only
 * in this process: nothing needs it after a restart, when a new one is simply issued, so it never touches the
 * disk.
 */
export type ServerSvid = X509Svid & {
  readonly issuedAt: Date;
  /** Half-way between issuance and expiry: a renewal that fails has the other half to succeed. */
  readonly renewAt: Date;
  /** The CA that signed it; a new active CA triggers a new server SVID. */
  readonly authorityId: string;
};

export function issueServerSvid(
  authority: CaAuthority & { key: KeyObject },
  opts: { trustDomain: string; ttlSeconds: number; dnsNames: readonly string[]; now: Date },
): ServerSvid {
  const { privateKey, publicKey } = generateSigningKeyPair('ec-p256');
  const spiffeId = `spiffe://${opts.trustDomain}${SERVER_SPIFFE_PATH}`;
  const leaf = issueX509Svid({
    spiffeId,
    publicKey,
    issuer: { cert: authority.cert, key: authority.key },
    ttlSeconds: opts.ttlSeconds,
    now: opts.now,
    ...(opts.dnsNames.length > 0 ? { dnsNames: [...opts.dnsNames] } : {}),
  });
  // Leaf first, then the CA and any upstream intermediates: what the TLS listener presents.
  const svid = toX509Svid([leaf.cert, ...chainAbove(authority)], privateKey);
  return Object.freeze({
    ...svid,
    issuedAt: opts.now,
    renewAt: halfLife(opts.now, leaf.cert.notAfter),
    authorityId: authority.id,
  });
}

/** The chain as PEM and the key as PKCS#8 PEM, for tls.createSecureContext: the key goes to the TLS stack only. */
export function serverTlsPem(svid: ServerSvid): { cert: string; key: string } {
  const { certificates, key } = svid.marshal();
  return { cert: certificates, key };
}
