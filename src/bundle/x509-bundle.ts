import { KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import { BundleError, InvalidBundleError, IoError, isLanyardError } from '../errors';
import { TrustDomain } from '../spiffe';
import { ParsedCertificate } from '../x509/certificate';
import { decodeCompletePem, encodePem } from '../x509/pem';
import type { X509BundleSource } from './source';

export interface X509BundleOptions {
  /** CA certificates trusted for X509-SVIDs of the trust domain. Duplicates (same DER) are kept once. */
  x509Authorities?: Iterable<ParsedCertificate>;
  /** JWT-SVID signing keys by key ID; public keys only. */
  jwtAuthorities?: Iterable<readonly [string, KeyObject]>;
  /** `spiffe_sequence` of the SPIFFE bundle this came from. */
  sequence?: number;
  /** `spiffe_refresh_hint`, in seconds. */
  refreshHint?: number;
}

/**
 * The trust anchors of one trust domain: X.509 authorities for X509-SVIDs and JWT authorities for
 * JWT-SVIDs, with the SPIFFE bundle's sequence number and refresh hint.
 *
 * Immutable: a rotation builds a new bundle and swaps it in (see BundleSet.replace), so a verifier that
 * holds a bundle never sees it change halfway through a chain. No authorities at all is a valid state and
 * means no SVID of the trust domain verifies (SPIFFE Trust Domain and Bundle §4.1.3).
 */
export class X509Bundle implements X509BundleSource {
  readonly trustDomain: TrustDomain;
  readonly x509Authorities: readonly ParsedCertificate[];
  readonly jwtAuthorities: ReadonlyMap<string, KeyObject>;
  readonly sequence?: number;
  readonly refreshHint?: number;
  private readonly authorityHashes: ReadonlySet<string>;

  /** @throws BundleError (ERR_INVALID_BUNDLE) on a non-public JWT key, an empty kid, or a bad counter. */
  constructor(trustDomain: TrustDomain, options: X509BundleOptions = {}) {
    if (!(trustDomain instanceof TrustDomain)) {
      throw invalid('the trust domain must be a TrustDomain (use TrustDomain.parse)');
    }
    this.trustDomain = trustDomain;

    const authorities: ParsedCertificate[] = [];
    const hashes = new Set<string>();
    for (const cert of options.x509Authorities ?? []) {
      if (!(cert instanceof ParsedCertificate))
        throw invalid('X.509 authorities must be ParsedCertificate objects');
      if (hashes.has(cert.sha256Hex)) continue;
      hashes.add(cert.sha256Hex);
      authorities.push(cert);
    }
    this.x509Authorities = Object.freeze(authorities);
    this.authorityHashes = hashes;

    const jwt = new Map<string, KeyObject>();
    for (const [kid, key] of options.jwtAuthorities ?? []) {
      if (typeof kid !== 'string' || kid === '') throw invalid('a JWT authority needs a non-empty key ID');
      // A private key here would be published by toSpiffeBundle; refuse it rather than derive silently.
      if (!(key instanceof KeyObject) || key.type !== 'public') {
        throw invalid(`JWT authority "${kid}" must be a public KeyObject`);
      }
      if (jwt.has(kid)) throw invalid(`JWT authority key ID "${kid}" appears twice`);
      jwt.set(kid, key);
    }
    this.jwtAuthorities = jwt;

    if (options.sequence !== undefined) this.sequence = checkCounter('sequence', options.sequence);
    if (options.refreshHint !== undefined)
      this.refreshHint = checkCounter('refresh hint', options.refreshHint);
    Object.freeze(this);
  }

  /**
   * A bundle of every CERTIFICATE block in `pem`. Text outside blocks is ignored, and so are blocks of other
   * types, except a private key, which is refused: a trust bundle that carries one is a leak waiting to be
   * copied around.
   *
   * Empty (or blank) text, or PEM without a CERTIFICATE block, gives a bundle that trusts nothing, exactly as
   * `fromDer` of no certificates does, and as go-spiffe's x509bundle Parse and ParseRaw do for empty input; no
   * SVID verifies against it. Text that is not empty and holds no PEM block at all is refused: it is not a PEM
   * bundle (go-spiffe: "no PEM blocks found").
   * @throws BundleError (ERR_INVALID_BUNDLE) naming what is wrong.
   */
  static fromPem(trustDomain: TrustDomain, pem: string): X509Bundle {
    if (typeof pem !== 'string') throw invalid('PEM bundle must be text');
    let blocks;
    try {
      blocks = decodeCompletePem(pem);
    } catch (e) {
      throw invalid(`unreadable PEM: ${messageOf(e)}`, e);
    }
    if (blocks.length === 0 && pem.trim() !== '') throw invalid('no PEM block found: not a PEM bundle');
    const privateBlock = blocks.find((b) => b.label.includes('PRIVATE KEY'));
    if (privateBlock) throw invalid(`a trust bundle must not contain a "${privateBlock.label}" block`);
    const ders = blocks.filter((b) => b.label === 'CERTIFICATE').map((b) => b.der);
    return X509Bundle.fromDer(trustDomain, ders);
  }

  /**
   * `fromPem` of the file at `path` (go-spiffe's x509bundle.Load); a SPIFFE bundle (JWKS) file is read with
   * loadSpiffeBundle instead.
   * @throws BundleError: ERR_IO when the file cannot be read, ERR_INVALID_BUNDLE as fromPem.
   */
  static load(trustDomain: TrustDomain, path: string): X509Bundle {
    return X509Bundle.fromPem(trustDomain, readBundleText(path, 'X.509 bundle'));
  }

  /**
   * A bundle of the given DER certificates; an empty list gives a bundle that trusts nothing.
   * @throws BundleError (ERR_INVALID_BUNDLE) naming the first certificate that does not parse.
   */
  static fromDer(trustDomain: TrustDomain, ders: Iterable<Uint8Array>): X509Bundle {
    const certs: ParsedCertificate[] = [];
    let index = 0;
    for (const der of ders) {
      try {
        certs.push(ParsedCertificate.fromDer(der));
      } catch (e) {
        if (!isLanyardError(e)) throw e;
        throw invalid(`certificate ${index} is not a valid X.509 certificate: ${e.message}`, e);
      }
      index++;
    }
    return new X509Bundle(trustDomain, { x509Authorities: certs });
  }

  /** The X.509 authorities as concatenated PEM CERTIFICATE blocks ("" when there are none). */
  toPem(): string {
    return this.x509Authorities.map((c) => encodePem('CERTIFICATE', c.der)).join('');
  }

  /** True when `cert` (compared by its DER) is one of the X.509 authorities. */
  hasAuthority(cert: ParsedCertificate): boolean {
    return this.authorityHashes.has(cert.sha256Hex);
  }

  /** A bundle is also a source: itself for its own trust domain, nothing for any other. */
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle | undefined {
    return this.trustDomain.equals(td) ? this : undefined;
  }
}

/** The text of a bundle file; the path is named in the error, the contents never. */
export function readBundleText(path: string, what: string): string {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new IoError(`cannot read the ${what} file ${path}: ${messageOf(e)}`, {
      cause: e,
    });
  }
}

/** Sequence numbers and refresh hints are JSON integers; past 2^53 a JS number no longer holds them exactly. */
function checkCounter(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${name} must be a non-negative integer no larger than 2^53-1, got ${String(value)}`);
  }
  return value;
}

function invalid(message: string, cause?: unknown): BundleError {
  return new InvalidBundleError(message, cause === undefined ? undefined : { cause });
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
