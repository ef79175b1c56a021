import type { KeyObject } from 'node:crypto';
import { SERVER_ID_PATH } from '../internal/server-id';
import { generateSigningKeyPair } from '../x509/keys';
import { encodePem } from '../x509/pem';
import { issueX509Svid } from '../x509/profiles';
import { CaAuthority, chainAbove } from './authority';
import { halfLife } from './rotation-schedule';

/** The server's own SPIFFE ID path: `spiffe://<trust domain>/lanyard/server`. */
export const SERVER_SPIFFE_PATH = SERVER_ID_PATH;

/**
 * The server's TLS identity. Its key lives only in this process: nothing needs it after a restart, when a
 * new one is simply issued, so it never touches the disk.
 */
export interface ServerSvid {
  readonly spiffeId: string;
  /** Leaf first, then the CA and any upstream intermediates: what the TLS listener presents. */
  readonly chain: readonly Uint8Array[];
  /** `chain` as PEM, for tls.createSecureContext / grpc ServerCredentials. */
  readonly chainPem: string;
  /** In-process handle; export it as PKCS#8 PEM only to hand it to the TLS stack. */
  readonly privateKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly issuedAt: Date;
  /** Half-way between issuance and expiry: a renewal that fails has the other half to succeed. */
  readonly renewAt: Date;
  /** The CA that signed it; a new active CA triggers a new server SVID. */
  readonly authorityId: string;
}

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
  const chain = Object.freeze([leaf.der, ...chainAbove(authority)]);
  return Object.freeze({
    spiffeId,
    chain,
    chainPem: chain.map((der) => encodePem('CERTIFICATE', der)).join(''),
    privateKey,
    notBefore: leaf.cert.notBefore,
    notAfter: leaf.cert.notAfter,
    issuedAt: opts.now,
    renewAt: halfLife(opts.now, leaf.cert.notAfter),
    authorityId: authority.id,
  });
}
