import { createPrivateKey, createPublicKey, KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, isLanyardError } from '../errors';
import { validateCertPath } from '../verify/path-validation';
import { ParsedCertificate } from '../x509/certificate';
import type { Issuer } from '../x509/issuer';
import { describeKey, generateSigningKeyPair } from '../x509/keys';
import { decodePem } from '../x509/pem';
import { issueX509Svid } from '../x509/profiles';
import { CA_MANAGER_DEFAULTS } from './ca-manager';
import { mintCaCertificate } from './mint-authority';
import { SELF_TEST_SPIFFE_PATH } from './self-test';
import { fileAccess } from '../internal/secure-file';

/**
 * An organisation's CA that Lanyard's CAs are signed by, instead of being self-signed roots (SPIRE's
 * "UpstreamAuthority", disk flavour). The organisation hands over an intermediate certificate and its key;
 * at every rotation Lanyard makes a fresh key and has that intermediate sign a CA certificate for it. So
 * rotation works exactly as with self-signed roots, workloads receive the chain
 * `leaf, Lanyard CA, org intermediate(s)`, and the bundle holds the organisation's root(s), which do not
 * change when Lanyard rotates.
 */
export interface UpstreamAuthority {
  /** The organisation intermediate and its key: signs each Lanyard CA. */
  readonly issuer: Issuer;
  /** `issuer.cert`, then any certificates above it, up to and not including a root. */
  readonly chain: readonly ParsedCertificate[];
  /** The organisation's roots: the trust domain's bundle. */
  readonly roots: readonly ParsedCertificate[];
}

export interface UpstreamAuthorityFiles {
  /** PEM: the intermediate whose key is `keyFile` first, then any intermediates above it (no root). */
  certFile: string;
  /** PEM, unencrypted PKCS#8 (or PKCS#1/SEC1); must not be accessible by group or others. */
  keyFile: string;
  /** PEM: the organisation's root certificate(s). */
  bundleFile: string;
}

/**
 * Reads and checks the upstream files: the key matches the certificate, the certificate may sign a CA
 * (basicConstraints cA, no pathLenConstraint 0), the chain validates to one of the roots at `now`, and so does
 * a throwaway CA certificate of the shape Lanyard will issue for itself under it. The last check covers every
 * certificate of the chain, not only the first: a pathLenConstraint, name constraint or keyUsage further up
 * that leaves no room for Lanyard's CA is refused here, naming the file, rather than at the CA self-test.
 * @throws ConfigError naming the file and what is wrong with it (never the key's content).
 */
export function loadUpstreamAuthority(
  files: UpstreamAuthorityFiles,
  options: {
    /** The trust domain Lanyard's CA will name (its URI SAN), which URI name constraints upstream must permit. */
    trustDomain: string;
    now?: Date;
    /**
     * Where each file was configured (e.g. `ca.upstream.key_file`): each error then starts with the field
     * of the file at fault, so the person fixing it knows which setting to change.
     */
    fields?: Readonly<Record<keyof UpstreamAuthorityFiles, string>>;
  },
): UpstreamAuthority {
  const now = options.now ?? new Date();
  const fail = (which: keyof UpstreamAuthorityFiles, message: string): ConfigError =>
    new ConfigError(options.fields ? `${options.fields[which]}: ${message}` : message);
  const chain = readCertificates(files.certFile, 'certificate', (m) => fail('certFile', m));
  const roots = readCertificates(files.bundleFile, 'bundle', (m) => fail('bundleFile', m));
  const cert = chain[0]!;
  const key = readKey(files.keyFile, (m) => fail('keyFile', m));

  if (!cert.publicKey.equals(createPublicKey(key))) {
    throw fail('keyFile', `${files.keyFile} is not the key of the first certificate in ${files.certFile}`);
  }
  if (!cert.isCa) throw fail('certFile', `${files.certFile}: the first certificate is not a CA`);
  if (cert.keyUsage !== undefined && !cert.keyUsage.keyCertSign) {
    throw fail('certFile', `${files.certFile}: the first certificate's keyUsage lacks keyCertSign`);
  }
  if (cert.basicConstraints?.pathLen === 0) {
    // Lanyard signs SVIDs with a CA of its own below this one, so one more CA level must be allowed.
    throw fail(
      'certFile',
      `${files.certFile}: the upstream CA has pathLenConstraint 0, so it cannot sign Lanyard's CA; it needs at least 1`,
    );
  }
  for (const root of roots) {
    if (!root.isCa || !root.selfIssued) {
      throw fail('bundleFile', `${files.bundleFile}: every certificate must be a self-issued CA (a root)`);
    }
  }
  try {
    validateCertPath(chain, roots, { at: now });
  } catch (e) {
    if (!isLanyardError(e)) throw e;
    throw fail(
      'certFile',
      `${files.certFile} does not chain to a root in ${files.bundleFile}: ${e.code}: ${e.message}`,
    );
  }
  const upstream: UpstreamAuthority = Object.freeze({
    issuer: Object.freeze({ cert, key }),
    chain: Object.freeze([...chain]),
    roots: Object.freeze([...roots]),
  });
  try {
    checkRoomForLanyardCa(upstream, options.trustDomain, now);
  } catch (e) {
    if (!isLanyardError(e)) throw e;
    throw fail(
      'certFile',
      `${files.certFile} cannot sign Lanyard's CA: an SVID of a CA it signs would not validate to a root in ${files.bundleFile}: ${e.code}: ${e.message}`,
    );
  }
  return upstream;
}

/**
 * Mints, with the same profile and trust domain as CaManager, a CA certificate under `upstream` for a fresh key,
 * has it sign a throwaway SVID, and validates `[SVID, that CA, ...chain]` to the roots with the path validator
 * workloads use; nothing is kept. The SVID matters: RFC 5280 does not count the leaf against pathLenConstraint,
 * so only with it below does Lanyard's CA count as the intermediate it will be.
 */
function checkRoomForLanyardCa(upstream: UpstreamAuthority, trustDomain: string, now: Date): void {
  const ca = generateSigningKeyPair('ec-p256');
  const minted = mintCaCertificate({
    trustDomain,
    id: 'upstream-check',
    privateKey: ca.privateKey,
    publicKey: ca.publicKey,
    ttlSeconds: 60,
    now,
    organization: CA_MANAGER_DEFAULTS.organization,
    upstream,
  });
  const leaf = issueX509Svid({
    spiffeId: `spiffe://${trustDomain}${SELF_TEST_SPIFFE_PATH}`,
    publicKey: generateSigningKeyPair('ec-p256').publicKey,
    issuer: { cert: minted.cert, key: ca.privateKey },
    ttlSeconds: 60,
    now,
  });
  validateCertPath([leaf.cert, minted.cert, ...minted.upstreamChain], upstream.roots, { at: now });
}

type Fail = (message: string) => ConfigError;

function readCertificates(file: string, what: string, fail: Fail): ParsedCertificate[] {
  const text = readText(file, fail);
  let ders: Uint8Array[];
  try {
    const blocks = decodePem(text);
    if (blocks.some((b) => b.label.includes('PRIVATE KEY'))) {
      throw fail(`${file}: the upstream ${what} file must not contain a private key`);
    }
    ders = blocks.filter((b) => b.label === 'CERTIFICATE').map((b) => b.der);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw fail(`${file}: unreadable PEM`);
  }
  if (ders.length === 0) throw fail(`${file}: no CERTIFICATE PEM block`);
  return ders.map((der, i) => {
    try {
      return ParsedCertificate.fromDer(der);
    } catch (e) {
      throw fail(
        `${file}: certificate ${i} is not valid X.509: ${isLanyardError(e) ? e.message : 'parse error'}`,
      );
    }
  });
}

function readKey(file: string, fail: Fail): KeyObject {
  let access: ReturnType<typeof fileAccess>;
  try {
    access = fileAccess(file);
  } catch {
    throw fail(`cannot read ${file}`);
  }
  if (access.openToOthers) {
    throw fail(`${file} is accessible by group or others (mode ${access.mode.toString(8)}); chmod 600 it`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: readText(file, fail), format: 'pem' });
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    // No cause and no parser message: they describe the key's bytes.
    throw fail(`${file} is not an unencrypted PEM private key`);
  }
  try {
    describeKey(key);
  } catch (e) {
    throw fail(`${file}: ${(e as Error).message}`);
  }
  return key;
}

function readText(file: string, fail: Fail): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw fail(`cannot read ${file}${code ? ` (${code})` : ''}`);
  }
}
