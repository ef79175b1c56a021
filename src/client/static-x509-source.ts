/**
 * An X509Source whose SVID and bundles are handed to it: from files (file-based deployments, where something
 * else writes the SVID), from memory (tests, a redeemed handoff SVID). `set()` replaces them and emits
 * `update`, so the hop helpers rotate exactly as they do with a server-backed source.
 */
import { createPublicKey, KeyObject } from 'node:crypto';
import { BundleSet, X509Bundle, type X509BundleSource } from '../bundle';
import { ErrorCode, LanyardError, MalformedInputError } from '../errors';
import { TrustDomain } from '../spiffe';
import { checkSvidLeaf, checkSvidSigningCertificates, spiffeIdOfLeaf } from '../verify/svid-rules';
import { readAgentContext, resolveAgentContextOid } from '../x509/agent-context/oid';
import { ParsedCertificate } from '../x509/certificate';
import type { X509Source, X509Svid } from './x509-source';
import { X509SourceEmitter } from './x509-source-events';
import { marshalX509Svid, marshalX509SvidRaw } from './x509-svid-marshal';
import {
  certificatesFromConcatenatedDer,
  certificatesFromPem,
  type PemInput,
  privateKeyFromDer,
  privateKeyFromPem,
  readSvidFile,
} from './x509-svid-encoding';

/** How the workload reads its own SVIDs. */
export interface OwnSvidOptions {
  /** OID of the agent-context extension: the issuing server's `agent_context.oid`. Default 1.3.6.1.4.1.262144.1.1. */
  agentContextOid?: string;
}

/**
 * An X509Svid from a DER chain (leaf first) and its key, held to the X509-SVID profile as go-spiffe's
 * x509svid.Parse does: the leaf by the verifier's leaf rules (one URI SAN with a SPIFFE ID, not a CA,
 * keyUsage digitalSignature without keyCertSign or cRLSign, extKeyUsage when present with serverAuth and
 * clientAuth), every other certificate a CA with keyCertSign, and the key the leaf's. A wrongly issued SVID
 * fails here, where it is loaded, rather than at every peer. Validity and the path to a bundle are not
 * checked: this is the workload's own certificate, issued to it, and its peers verify it; the agent context
 * is decoded, not verified, for the same reason.
 * @throws SvidVerificationError (ERR_SVID_INVALID) for a leaf rule, PathValidationError (ERR_NOT_A_CA,
 *   ERR_KEY_USAGE_INVALID) for a signing certificate, MalformedInputError (ERR_CHAIN_EMPTY,
 *   ERR_UNSUPPORTED_KEY) for an empty chain or a key that is not the leaf's; AgentContextOidMismatchError
 *   when the server wrote the context under another OID than `agentContextOid`.
 */
export function toX509Svid(
  chain: readonly (Uint8Array | ParsedCertificate)[],
  privateKey: KeyObject,
  options: OwnSvidOptions = {},
): X509Svid {
  const contextOid = resolveAgentContextOid(options.agentContextOid);
  if (chain.length === 0) throw new MalformedInputError(ErrorCode.CHAIN_EMPTY, 'an SVID needs a certificate');
  const certs = chain.map((c) => (c instanceof ParsedCertificate ? c : ParsedCertificate.fromDer(c)));
  const leaf = certs[0]!;
  const id = spiffeIdOfLeaf(leaf);
  checkSvidLeaf(leaf);
  checkSvidSigningCertificates(certs.slice(1));
  if (!(privateKey instanceof KeyObject) || privateKey.type !== 'private') {
    throw new MalformedInputError(ErrorCode.UNSUPPORTED_KEY, 'the SVID key must be a private key');
  }
  const pub = Buffer.from(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  if (!pub.equals(Buffer.from(leaf.spkiDer))) {
    throw new MalformedInputError(ErrorCode.UNSUPPORTED_KEY, `the key does not belong to ${id.toString()}`);
  }
  const context = readAgentContext(leaf, contextOid);
  const frozenChain = Object.freeze(certs);
  return Object.freeze({
    id,
    chain: frozenChain,
    privateKey,
    ...(context !== undefined ? { context } : {}),
    notAfter: leaf.notAfter,
    marshal: () => marshalX509Svid(frozenChain, privateKey),
    marshalRaw: () => marshalX509SvidRaw(frozenChain, privateKey),
  });
}

/**
 * An X509Svid from PEM (go-spiffe's x509svid.Parse): every CERTIFICATE block of `certificates` (leaf first;
 * other blocks skipped, so one file may hold both) and the first private key block of `key` (PKCS#8 as
 * go-spiffe writes it, or SEC1 / PKCS#1), held to the rules of toX509Svid.
 * @throws MalformedInputError (ERR_MALFORMED_PEM, ERR_CHAIN_EMPTY, ERR_UNSUPPORTED_KEY), and the profile
 *   errors of toX509Svid.
 */
export function parseX509Svid(certificates: PemInput, key: PemInput, options: OwnSvidOptions = {}): X509Svid {
  const chain = certificatesFromPem(certificates);
  if (chain.length === 0) {
    throw new MalformedInputError(ErrorCode.CHAIN_EMPTY, 'no CERTIFICATE PEM block found: an SVID needs one');
  }
  return toX509Svid(chain, privateKeyFromPem(key), options);
}

/**
 * An X509Svid from DER (go-spiffe's x509svid.ParseRaw): the certificates back to back, leaf first, and a
 * PKCS#8 key. The same rules as parseX509Svid.
 */
export function parseX509SvidRaw(
  certificates: Uint8Array,
  key: Uint8Array,
  options: OwnSvidOptions = {},
): X509Svid {
  return toX509Svid(certificatesFromConcatenatedDer(certificates), privateKeyFromDer(key), options);
}

/**
 * parseX509Svid of two PEM files (go-spiffe's x509svid.Load); they may be the same file.
 * @throws LanyardError (ERR_IO) naming an unreadable file, and the errors of parseX509Svid.
 */
export function loadX509Svid(certFile: string, keyFile: string, options: OwnSvidOptions = {}): X509Svid {
  return parseX509Svid(readSvidFile(certFile, 'certificate'), readSvidFile(keyFile, 'key'), options);
}

export interface StaticX509SourceFiles extends OwnSvidOptions {
  /** PEM: the SVID leaf first, then intermediates (loadX509Svid). */
  certFile: string;
  /** PEM private key (PKCS#8, SEC1 or PKCS#1); may be the same file as certFile. */
  keyFile: string;
  /** PEM roots of `trustDomain` (default: the SVID's own trust domain). */
  bundleFile: string;
  trustDomain?: string;
}

export class StaticX509Source extends X509SourceEmitter implements X509Source {
  private svid: X509Svid | undefined;
  private bundles: X509BundleSource;
  private closed = false;

  constructor(svid: X509Svid, bundles: X509Bundle | readonly X509Bundle[] | X509BundleSource) {
    super();
    this.svid = svid;
    this.bundles = toBundleSource(bundles);
  }

  /** Reads the SVID, key and bundle PEM files once; call `reloadFiles` (e.g. from a file watcher) to rotate. */
  static fromFiles(files: StaticX509SourceFiles): StaticX509Source {
    const { svid, bundle } = readFiles(files);
    return new StaticX509Source(svid, bundle);
  }

  reloadFiles(files: StaticX509SourceFiles): void {
    const { svid, bundle } = readFiles(files);
    this.set(svid, bundle);
  }

  /** Replaces the SVID (and the bundles, when given) and emits `update`. */
  set(svid: X509Svid, bundles?: X509Bundle | readonly X509Bundle[] | X509BundleSource): void {
    if (this.closed) throw notReady('the source is closed');
    this.svid = svid;
    if (bundles !== undefined) this.bundles = toBundleSource(bundles);
    this.emit('update');
  }

  getX509Svid(): X509Svid {
    if (this.closed || this.svid === undefined) throw notReady('the source is closed');
    if (this.svid.notAfter.getTime() <= Date.now()) {
      throw notReady(`the SVID of ${this.svid.id.toString()} expired at ${this.svid.notAfter.toISOString()}`);
    }
    return this.svid;
  }

  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle | undefined {
    if (this.closed) return undefined;
    return this.bundles.getX509BundleForTrustDomain(td);
  }

  close(): Promise<void> {
    this.closed = true;
    this.svid = undefined;
    this.removeAllListeners();
    return Promise.resolve();
  }
}

export function notReady(message: string): LanyardError {
  return new LanyardError(ErrorCode.SOURCE_NOT_READY, message);
}

function toBundleSource(b: X509Bundle | readonly X509Bundle[] | X509BundleSource): X509BundleSource {
  if (b instanceof X509Bundle) return b;
  if (Array.isArray(b)) return new BundleSet(b as X509Bundle[]);
  return b as X509BundleSource;
}

function readFiles(files: StaticX509SourceFiles): { svid: X509Svid; bundle: X509Bundle } {
  const svid = loadX509Svid(files.certFile, files.keyFile, files);
  const td = files.trustDomain !== undefined ? TrustDomain.parse(files.trustDomain) : svid.id.trustDomain;
  return { svid, bundle: X509Bundle.load(td, files.bundleFile) };
}
