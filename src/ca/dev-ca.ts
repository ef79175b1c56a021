import { createPrivateKey, createPublicKey, KeyObject } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { X509Bundle } from '../bundle';
import { AlreadyExistsError, InvalidArgumentError, NotACaError } from '../errors';
import { TrustDomain } from '../spiffe';
import { toX509Svid, type X509Svid } from '../svid/x509-svid';
import { ParsedCertificate } from '../x509/certificate';
import { describeKey, generateSigningKeyPair, KeyAlgorithm } from '../x509/keys';
import { trustDomainName } from '../x509/names';
import { decodePemBlocks, encodePem } from '../x509/pem';
import { createRootCa, Issuer, issueX509Svid } from '../x509/profiles';
import {
  fileAccess,
  ioStep,
  makeDir,
  publishFile,
  stageFile,
  writeFileAtomic,
} from '../internal/secure-file';

/**
 * The development CA behind `lanyard ca init` and `lanyard svid mint`: a self-signed root whose key sits in
 * a directory on disk. For tests and local use; the server's CA (src/ca, issue 3) manages rotation itself.
 */

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca_key.pem';
export const SVID_FILE = 'svid.pem';
export const SVID_KEY_FILE = 'svid_key.pem';
export const BUNDLE_FILE = 'bundle.pem';

export const DEV_CA_DEFAULT_TTL_SECONDS = 365 * 24 * 60 * 60;
/** DESIGN.md: workload SVIDs default to one hour. */
export const DEV_SVID_DEFAULT_TTL_SECONDS = 60 * 60;

export interface DevCa extends Issuer {
  dir: string;
  trustDomain: string;
  /** True when the key file is readable or writable by group or others (only possible with allowInsecureKeyFile). */
  keyFileInsecure: boolean;
}

export interface InitDevCaOptions {
  trustDomain: string;
  dir: string;
  /** Default one year. */
  ttlSeconds?: number;
  /** Default ec-p256. */
  keyAlgorithm?: KeyAlgorithm;
  /** Replace an existing CA in `dir`. Without it, an existing ca.pem or ca_key.pem is never touched. */
  force?: boolean;
  now?: Date;
}

export interface LoadDevCaOptions {
  /** Load even when the key file is open to group or others, reporting it in `keyFileInsecure`. */
  allowInsecureKeyFile?: boolean;
}

export interface MintSvidOptions {
  spiffeId: string;
  /** Default one hour; never past the CA's own expiry. */
  ttlSeconds?: number;
  agentContextDer?: Uint8Array;
  /** OID the context is written under; default DEFAULT_AGENT_CONTEXT_OID. */
  agentContextOid?: string;
  /** The workload key's type; default ec-p256. */
  keyAlgorithm?: KeyAlgorithm;
  dnsNames?: string[];
  now?: Date;
}

export interface SvidFiles {
  svid: string;
  key: string;
  bundle: string;
}

export function initDevCa(opts: InitDevCaOptions): DevCa {
  const certPath = join(opts.dir, CA_CERT_FILE);
  const keyPath = join(opts.dir, CA_KEY_FILE);
  const force = opts.force === true;
  if (!force && (existsSync(certPath) || existsSync(keyPath))) {
    throw new AlreadyExistsError(`a CA already exists in ${opts.dir} (force to replace it)`);
  }
  const { privateKey } = generateSigningKeyPair(opts.keyAlgorithm ?? 'ec-p256');
  const root = createRootCa({
    trustDomain: opts.trustDomain,
    key: privateKey,
    ttlSeconds: opts.ttlSeconds ?? DEV_CA_DEFAULT_TTL_SECONDS,
    ...(opts.now ? { now: opts.now } : {}),
  });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

  makeDir(opts.dir, 0o700);
  const staged: string[] = [];
  try {
    staged.push(stageFile(keyPath, keyPem, 0o600));
    staged.push(stageFile(certPath, encodePem('CERTIFICATE', root.der), 0o644));
    publishFile(staged[0]!, keyPath, force);
    try {
      publishFile(staged[1]!, certPath, force);
    } catch (e) {
      // Without force nothing was there before: take the key back out rather than leave half a CA.
      if (!force) rmSync(keyPath, { force: true });
      throw e;
    }
  } finally {
    for (const file of staged) rmSync(file, { force: true });
  }
  return {
    dir: opts.dir,
    trustDomain: trustDomainName(opts.trustDomain),
    cert: root.cert,
    key: privateKey,
    keyFileInsecure: false,
  };
}

export function loadDevCa(dir: string, opts: LoadDevCaOptions = {}): DevCa {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  const certPem = ioStep(`cannot read ${certPath}`, () => readFileSync(certPath, 'utf8'));
  const ders = decodePemBlocks(certPem, 'CERTIFICATE');
  if (ders.length !== 1) {
    throw new InvalidArgumentError(`${certPath} must hold exactly one certificate`);
  }
  const cert = ParsedCertificate.fromDer(ders[0]!);
  if (!cert.isCa || !cert.selfIssued || !cert.isSignedBy(cert)) {
    throw new NotACaError(`${certPath} is not a self-signed CA certificate`);
  }
  if (cert.uriSans.length !== 1) {
    throw new InvalidArgumentError(`${certPath} does not name exactly one trust domain`);
  }
  const trustDomain = trustDomainName(cert.uriSans[0]!);

  // Like OpenSSH with private keys: a CA key that others can read is refused unless the caller opts in.
  const { mode, openToOthers: keyFileInsecure } = fileAccess(keyPath);
  if (keyFileInsecure && opts.allowInsecureKeyFile !== true) {
    throw new InvalidArgumentError(
      `${keyPath} is accessible by group or others (mode ${mode.toString(8)}); chmod 600 it`,
    );
  }
  const keyText = ioStep(`cannot read ${keyPath}`, () => readFileSync(keyPath, 'utf8'));
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyText, format: 'pem' });
  } catch {
    // No cause attached: the parser's error is about the key's bytes, which stay out of errors and logs.
    throw new InvalidArgumentError(`${keyPath} is not an unencrypted PEM private key`);
  }
  describeKey(key);
  if (!cert.publicKey.equals(createPublicKey(key))) {
    throw new InvalidArgumentError(`${keyPath} does not belong to ${certPath}`);
  }
  return { dir, trustDomain, cert, key, keyFileInsecure };
}

/**
 * Generates the workload key here, as a workload would, and has the dev CA sign it: an X509Svid held to the
 * X509-SVID profile like any other, its context read under `agentContextOid`.
 */
export function mintSvid(ca: DevCa, opts: MintSvidOptions): X509Svid {
  const { privateKey, publicKey } = generateSigningKeyPair(opts.keyAlgorithm ?? 'ec-p256');
  const leaf = issueX509Svid({
    spiffeId: opts.spiffeId,
    publicKey,
    issuer: { cert: ca.cert, key: ca.key },
    ttlSeconds: opts.ttlSeconds ?? DEV_SVID_DEFAULT_TTL_SECONDS,
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.dnsNames ? { dnsNames: opts.dnsNames } : {}),
    ...(opts.agentContextDer ? { agentContextDer: opts.agentContextDer } : {}),
    ...(opts.agentContextOid !== undefined ? { agentContextOid: opts.agentContextOid } : {}),
  });
  return toX509Svid(
    [leaf.cert],
    privateKey,
    opts.agentContextOid !== undefined ? { agentContextOid: opts.agentContextOid } : {},
  );
}

/** The dev CA's trust bundle: its root alone. */
export function devCaBundle(ca: DevCa): X509Bundle {
  return X509Bundle.fromDer(TrustDomain.parse(ca.trustDomain), [ca.cert.der]);
}

/**
 * Writes svid.pem (the chain), svid_key.pem (0600) and bundle.pem into `dir`, each atomically, replacing
 * earlier ones: re-minting into the same directory is the normal rotation. The key goes before the
 * certificate so that a reader that reloads on a new svid.pem finds the matching key already in place.
 * A directory created here (parents included) is 0700 whatever the umask; an existing one is kept as it is.
 */
export function writeSvidFiles(dir: string, svid: X509Svid, bundle: X509Bundle): SvidFiles {
  makeDir(dir, 0o700);
  const files: SvidFiles = {
    svid: join(dir, SVID_FILE),
    key: join(dir, SVID_KEY_FILE),
    bundle: join(dir, BUNDLE_FILE),
  };
  const { certificates, key } = svid.marshal();
  writeFileAtomic(files.bundle, bundle.toPem(), 0o644);
  writeFileAtomic(files.key, key, 0o600);
  writeFileAtomic(files.svid, certificates, 0o644);
  return files;
}
