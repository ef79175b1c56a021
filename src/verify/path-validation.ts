import {
  ChainEmptyError,
  ChainTooLongError,
  InvalidArgumentError,
  PathValidationError,
  SignatureInvalidError,
  UnknownAuthorityError,
} from '../errors';
import { ParsedCertificate } from '../x509/certificate';
import { VerificationCache } from './cache';
import { checkPath, describe } from './path-rules';

export interface PathValidationOptions {
  /** Verification time. Default: now. */
  at?: Date;
  /**
   * Most certificates in a path, leaf and trust anchor included. Default 8, at least 2. Self-issued
   * intermediates (a CA's key rollover: same subject, new key) do not count, as they do not count against
   * pathLenConstraint (RFC 5280 §6.1.4 (l)); MAX_PRESENTED_CERTIFICATES and MAX_SIGNATURE_CHECKS still bound
   * the work.
   */
  maxDepth?: number;
  /** Remembers CA signatures already proven, so repeat chains cost about one leaf signature check. */
  cache?: VerificationCache;
}

export interface ValidatedPath {
  /** Leaf first, the trust anchor (a certificate from `roots`) last. */
  readonly path: readonly ParsedCertificate[];
}

export const DEFAULT_MAX_PATH_DEPTH = 8;
/** More presented certificates than this is not a chain but an attempt to make us work. */
export const MAX_PRESENTED_CERTIFICATES = 32;
/** Bound on signature checks (cache misses) per validation, as Go's x509 does, against crafted fan-out. */
export const MAX_SIGNATURE_CHECKS = 64;

/**
 * RFC 5280 §6 path validation for one leaf: build a path from `leafAndIntermediates[0]` through any of the
 * other presented certificates (in any order; unused ones are ignored) to one of `roots`, then apply every rule
 * of checkPath. Issuers are found by subject/issuer DER match, the authority/subject key identifiers break ties,
 * and alternatives are tried depth-first within a bounded search until one path passes.
 *
 * A certificate in `roots` is a trust anchor: no signature on it is checked, but its validity and CA rules are.
 * When no path passes, the error is the most specific one seen: a rule broken by a complete path beats a bad
 * signature, which beats a path over the depth bound, which beats ERR_UNKNOWN_AUTHORITY.
 */
export function validateCertPath(
  leafAndIntermediates: readonly ParsedCertificate[],
  roots: readonly ParsedCertificate[],
  options: PathValidationOptions = {},
): ValidatedPath {
  const at = options.at ?? new Date();
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) {
    throw new InvalidArgumentError('options.at must be a valid Date');
  }
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_PATH_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 2) {
    throw new InvalidArgumentError('options.maxDepth must be an integer >= 2');
  }
  const leaf = leafAndIntermediates[0];
  if (leaf === undefined) throw new ChainEmptyError('no certificate presented');
  if (leafAndIntermediates.length > MAX_PRESENTED_CERTIFICATES) {
    throw new ChainTooLongError(
      `${leafAndIntermediates.length} certificates presented, at most ${MAX_PRESENTED_CERTIFICATES} are considered`,
    );
  }
  if (roots.length === 0) {
    throw new UnknownAuthorityError('no trust anchors: every certificate is untrusted');
  }

  const anchors = trustAnchors(roots);
  // The leaf is compared by its bytes: a new leaf's SHA-256 is never needed to verify it.
  const intermediates = presentedIntermediates(leafAndIntermediates, anchors);
  const search = new PathSearch(anchors.unique, intermediates, at, maxDepth, options.cache);
  const path = search.run(leaf);
  if (path !== undefined) {
    search.rememberSignatures(path);
    return Object.freeze({ path: Object.freeze(path) });
  }
  throw search.failure(leaf);
}

/** An issuer to try: from the trust anchors or the presented intermediates, and how well it matches. */
interface Candidate {
  readonly cert: ParsedCertificate;
  readonly anchor: boolean;
  readonly score: number;
}

/** Failure kinds in increasing order of how much they tell the caller. */
const Rank = { noIssuer: 0, tooLong: 1, badSignature: 2, pathRule: 3 } as const;

class PathSearch {
  private signatureChecks = 0;
  private best: { rank: number; error: PathValidationError } | undefined;

  constructor(
    private readonly roots: readonly ParsedCertificate[],
    private readonly intermediates: readonly ParsedCertificate[],
    private readonly at: Date,
    private readonly maxDepth: number,
    private readonly cache: VerificationCache | undefined,
  ) {}

  run(leaf: ParsedCertificate): ParsedCertificate[] | undefined {
    return this.extend([leaf]);
  }

  /** Depth-first: the first issuer candidate that leads to a passing path wins. */
  private extend(path: ParsedCertificate[]): ParsedCertificate[] | undefined {
    const child = path[path.length - 1]!;
    const candidates: Candidate[] = [];
    this.collectIssuers(child, path, this.roots, true, candidates);
    this.collectIssuers(child, path, this.intermediates, false, candidates);

    // The leaf and every intermediate that is not self-issued count toward maxDepth.
    let counted = 1;
    for (let i = 1; i < path.length; i++) if (!path[i]!.selfIssued) counted++;
    for (const { cert: issuer, anchor } of candidates) {
      // Even the anchor must fit: path + issuer, and for an intermediate, one more certificate above it.
      const needed = counted + (anchor ? 1 : issuer.selfIssued ? 1 : 2);
      if (needed > this.maxDepth) {
        this.record(
          Rank.tooLong,
          new ChainTooLongError(
            `no path to a trust anchor within ${this.maxDepth} certificates (options.maxDepth)`,
          ),
        );
        continue;
      }
      const signed = this.verifySignature(child, issuer, path.length - 1);
      if (signed === 'budget') return undefined;
      if (!signed) {
        this.record(
          Rank.badSignature,
          new SignatureInvalidError(
            `${describe(child)} names ${describe(issuer)} as issuer but its signature does not verify with that key`,
          ),
        );
        continue;
      }
      const next = [...path, issuer];
      if (anchor) {
        try {
          checkPath(next, this.at);
          return next;
        } catch (e) {
          if (!(e instanceof PathValidationError)) throw e;
          this.record(Rank.pathRule, e);
          continue;
        }
      }
      const found = this.extend(next);
      if (found !== undefined) return found;
      if (this.signatureChecks >= MAX_SIGNATURE_CHECKS) return undefined;
    }
    return undefined;
  }

  /**
   * Appends the certificates of `pool` whose subject is `child`'s issuer and that are not in `path` yet, best
   * first: a matching AKI/SKI before an unknown one before a mismatch (still tried: key identifiers are hints,
   * the signature decides), then valid at `at` before not.
   */
  private collectIssuers(
    child: ParsedCertificate,
    path: readonly ParsedCertificate[],
    pool: readonly ParsedCertificate[],
    anchor: boolean,
    out: Candidate[],
  ): void {
    const from = out.length;
    for (const cert of pool) {
      if (!bytesEqual(cert.subjectDer, child.issuerDer) || inPath(path, cert)) continue;
      out.push({ cert, anchor, score: this.issuerScore(child, cert) });
    }
    if (out.length - from > 1) {
      const sorted = out.splice(from).sort((a, b) => a.score - b.score);
      out.push(...sorted);
    }
  }

  private issuerScore(child: ParsedCertificate, issuer: ParsedCertificate): number {
    let s = 0;
    if (child.authorityKeyId !== undefined && issuer.subjectKeyId !== undefined) {
      s += bytesEqual(child.authorityKeyId, issuer.subjectKeyId) ? 0 : 4;
    } else {
      s += 2;
    }
    const at = this.at.getTime();
    if (at < issuer.notBefore.getTime() || at > issuer.notAfter.getTime()) s += 1;
    return s;
  }

  /**
   * Signature of `child` (at `childIndex` in the path, 0 = leaf) under `issuer`'s key. Only CA-to-CA edges are
   * looked up in the cache: leaves change with every peer, and the leaf signature is the one check a repeat
   * verification must always pay.
   */
  private verifySignature(
    child: ParsedCertificate,
    issuer: ParsedCertificate,
    childIndex: number,
  ): boolean | 'budget' {
    if (childIndex > 0 && this.cache?.hasSignature(child, issuer) === true) return true;
    if (this.signatureChecks >= MAX_SIGNATURE_CHECKS) {
      this.record(
        Rank.noIssuer,
        new UnknownAuthorityError(
          `gave up after ${MAX_SIGNATURE_CHECKS} signature checks without finding a valid path`,
        ),
      );
      return 'budget';
    }
    this.signatureChecks++;
    return child.isSignedBy(issuer);
  }

  /** After success only: remember the path's CA-to-CA signatures (never the leaf's, never a failure). */
  rememberSignatures(path: readonly ParsedCertificate[]): void {
    if (this.cache === undefined) return;
    for (let i = 1; i < path.length - 1; i++) this.cache.rememberSignature(path[i]!, path[i + 1]!);
  }

  private record(rank: number, error: PathValidationError): void {
    if (this.best === undefined || rank > this.best.rank) this.best = { rank, error };
  }

  failure(leaf: ParsedCertificate): PathValidationError {
    return (
      this.best?.error ??
      new UnknownAuthorityError(
        `${describe(leaf)} does not chain to any trust anchor (issuer not found among the presented certificates and roots)`,
      )
    );
  }
}

/** The trust anchors, deduplicated once per frozen array (an X509Bundle's authorities never change). */
interface TrustAnchors {
  readonly unique: readonly ParsedCertificate[];
  readonly hashes: ReadonlySet<string>;
}

const anchorsOf = new WeakMap<readonly ParsedCertificate[], TrustAnchors>();

function trustAnchors(roots: readonly ParsedCertificate[]): TrustAnchors {
  let anchors = anchorsOf.get(roots);
  if (anchors === undefined) {
    const unique = uniqueByHash(roots);
    anchors = { unique, hashes: new Set(unique.map((r) => r.sha256Hex)) };
    if (Object.isFrozen(roots)) anchorsOf.set(roots, anchors);
  }
  return anchors;
}

function inPath(path: readonly ParsedCertificate[], cert: ParsedCertificate): boolean {
  for (const c of path) if (sameCertificate(c, cert)) return true;
  return false;
}

/** The same certificate: the same object, or the same DER (what equal SHA-256 hashes stand for). */
function sameCertificate(a: ParsedCertificate, b: ParsedCertificate): boolean {
  return a === b || (a.der.length === b.der.length && bytesEqual(a.der, b.der));
}

/**
 * The presented certificates after the leaf that may serve as intermediates: each once (by hash), neither a
 * trust anchor nor the leaf itself. One intermediate, the common case, needs no set.
 */
function presentedIntermediates(
  presented: readonly ParsedCertificate[],
  anchors: TrustAnchors,
): ParsedCertificate[] {
  const leaf = presented[0]!;
  const out: ParsedCertificate[] = [];
  let seen: Set<string> | undefined;
  for (let i = 1; i < presented.length; i++) {
    const c = presented[i]!;
    const hash = c.sha256Hex;
    if (presented.length > 2) {
      seen ??= new Set();
      if (seen.has(hash)) continue;
      seen.add(hash);
    }
    if (!anchors.hashes.has(hash) && !sameCertificate(c, leaf)) out.push(c);
  }
  return out;
}

function uniqueByHash(certs: readonly ParsedCertificate[]): ParsedCertificate[] {
  const seen = new Set<string>();
  return certs.filter((c) => (seen.has(c.sha256Hex) ? false : (seen.add(c.sha256Hex), true)));
}

/**
 * Names and key identifiers (tens of bytes, compared for every candidate issuer of every new leaf) in a loop:
 * no Buffer view is made per comparison. Whole certificates through Buffer.compare, which takes a Uint8Array.
 */
function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  if (n > 128) return Buffer.compare(a, b) === 0;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
