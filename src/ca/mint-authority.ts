import type { KeyObject } from 'node:crypto';
import { ParsedCertificate } from '../x509/certificate';
import { createIntermediateCa, createRootCa } from '../x509/profiles';
import type { UpstreamAuthority } from './upstream-authority';

export interface MintCaOptions {
  trustDomain: string;
  /** Authority id; its start goes into the common name so that operators can tell rotated CAs apart. */
  id: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  ttlSeconds: number;
  now: Date;
  organization: string;
  upstream?: UpstreamAuthority;
}

export interface MintedCa {
  cert: ParsedCertificate;
  upstreamChain: readonly ParsedCertificate[];
}

/**
 * The certificate of a new signing CA: a self-signed root, or an intermediate signed by the upstream CA
 * (its notAfter then capped by the upstream certificate's).
 *
 * pathLenConstraint 0: a Lanyard CA signs SVIDs only, so a stolen leaf key can never be turned into a CA,
 * and verifiers reject any attempt to chain a CA below it.
 */
export function mintCaCertificate(opts: MintCaOptions): MintedCa {
  const common = {
    trustDomain: opts.trustDomain,
    ttlSeconds: opts.ttlSeconds,
    now: opts.now,
    pathLen: 0,
    subject: { organization: opts.organization, commonName: `Lanyard CA ${opts.id.slice(0, 8)}` },
  };
  if (opts.upstream === undefined) {
    return { cert: createRootCa({ ...common, key: opts.privateKey }).cert, upstreamChain: [] };
  }
  const issued = createIntermediateCa({ ...common, publicKey: opts.publicKey, issuer: opts.upstream.issuer });
  return { cert: issued.cert, upstreamChain: opts.upstream.chain };
}
