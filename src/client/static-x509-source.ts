/**
 * An X509Source whose SVID and bundles are handed to it: from files (file-based deployments, where something
 * else writes the SVID), from memory (tests, a redeemed handoff SVID). `set()` replaces them and emits
 * `update`, so the hop helpers rotate exactly as they do with a server-backed source.
 */
import { BundleSet, X509Bundle, type X509BundleSource } from '../bundle';
import { LanyardError, SourceNotReadyError } from '../errors';
import { TrustDomain } from '../spiffe';
import { loadX509Svid, type OwnSvidOptions, type X509Svid } from '../svid/x509-svid';
import type { X509Source } from './x509-source';
import { X509SourceEmitter } from './x509-source-events';
import { currentSvid } from './current-svid';

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
    return currentSvid(this.closed ? undefined : this.svid, 'the source is closed');
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
  return new SourceNotReadyError(message);
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
