/**
 * An X509Source whose SVID and bundles are handed to it: from files (file-based deployments, where something
 * else writes the SVID), from memory (tests, a redeemed handoff SVID). `set()` replaces them and emits
 * `update`, so the hop helpers rotate exactly as they do with a server-backed source.
 */
import * as fs from 'node:fs';
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { BundleSet, X509Bundle, type X509BundleSource } from '../bundle';
import { ErrorCode, LanyardError, MalformedInputError } from '../errors';
import { TrustDomain } from '../spiffe';
import { spiffeIdOfLeaf } from '../verify/svid-rules';
import { readAgentContext, resolveAgentContextOid } from '../x509/agent-context/oid';
import { ParsedCertificate } from '../x509/certificate';
import { decodePemBlocks } from '../x509/pem';
import type { X509Source, X509Svid } from './x509-source';
import { X509SourceEmitter } from './x509-source-events';

/** How the workload reads its own SVIDs. */
export interface OwnSvidOptions {
  /** OID of the agent-context extension: the issuing server's `agent_context.oid`. Default 1.3.6.1.4.1.262144.1.1. */
  agentContextOid?: string;
}

/**
 * An X509Svid from a DER chain (leaf first) and its key. The agent context is decoded, not verified: this is
 * the workload's own certificate, issued to it; peers verify it.
 * @throws MalformedInputError when the leaf has no SPIFFE ID or the key does not match the leaf;
 *   AgentContextOidMismatchError when the server wrote the context under another OID than `agentContextOid`.
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
  if (privateKey.type !== 'private') {
    throw new MalformedInputError(ErrorCode.UNSUPPORTED_KEY, 'the SVID key must be a private key');
  }
  const pub = Buffer.from(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  if (!pub.equals(Buffer.from(leaf.spkiDer))) {
    throw new MalformedInputError(ErrorCode.UNSUPPORTED_KEY, `the key does not belong to ${id.toString()}`);
  }
  const context = readAgentContext(leaf, contextOid);
  return Object.freeze({
    id,
    chain: Object.freeze(certs),
    privateKey,
    ...(context !== undefined ? { context } : {}),
    notAfter: leaf.notAfter,
  });
}

export interface StaticX509SourceFiles extends OwnSvidOptions {
  /** PEM: the SVID leaf first, then intermediates. */
  certFile: string;
  /** PEM private key (PKCS#8 or SEC1). */
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
  const certs = decodePemBlocks(fs.readFileSync(files.certFile, 'utf8'), 'CERTIFICATE');
  const key = createPrivateKey(fs.readFileSync(files.keyFile));
  const svid = toX509Svid(certs, key, files);
  const td = files.trustDomain !== undefined ? TrustDomain.parse(files.trustDomain) : svid.id.trustDomain;
  const bundle = X509Bundle.fromPem(td, fs.readFileSync(files.bundleFile, 'utf8'));
  return { svid, bundle };
}
