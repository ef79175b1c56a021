import { createHash } from 'node:crypto';
import { ParsedCertificate } from '../x509/certificate';
import type { AgentContext } from '../x509/agent-context/types';
import { Lru } from '../internal/lru';

/** Counters for one kind of cached fact. */
export interface CacheCounters {
  hits: number;
  misses: number;
  size: number;
  evictions: number;
}

export interface VerificationCacheStats {
  /** "certificate X is signed by the key of certificate Y", keyed by (X hash, Y hash). */
  signatures: CacheCounters;
  /** "delegation link L carries a valid signature by its parent's key", keyed by the link hash. */
  links: CacheCounters;
  /** Decoded certificates of chains that verified, keyed by the SHA-256 of their DER. */
  certificates: CacheCounters;
  /** Agent contexts that passed every delegation rule, keyed by the SHA-256 of the leaf that carries them. */
  contexts: CacheCounters;
}

export interface VerificationCacheOptions {
  /** Bound for each of the maps. Default 1024. */
  maxEntries?: number;
}

/**
 * What a busy verifier remembers between calls so that a chain whose CA certificates it has already seen
 * costs about one signature check (the leaf's).
 *
 * Only facts that are pure functions of immutable bytes are stored: a signature either verifies over a given
 * DER under a given key or it does not, forever; a DER always decodes to the same certificate. Everything that depends on time, on the current bundle, or on
 * revocation (validity, CA flags against the path, name constraints, revocation lists) is re-evaluated on
 * every call, so a cache hit can never turn a rejection into an acceptance: an expired or revoked chain is
 * rejected exactly as it would be without the cache. The leaf's signature is never cached either, so every
 * verification proves the leaf afresh. Failures are never stored; callers insert only facts from a chain
 * that passed as a whole, so a peer cannot fill the cache with its own junk certificates.
 */
export class VerificationCache {
  private readonly signatures: Lru<true>;
  private readonly links: Lru<true>;
  private readonly certificates: Lru<ParsedCertificate>;
  private readonly contexts: Lru<AgentContext>;
  private readonly counters = {
    contexts: { hits: 0, misses: 0 },
    signatures: { hits: 0, misses: 0 },
    links: { hits: 0, misses: 0 },
    certificates: { hits: 0, misses: 0 },
  };

  constructor(options: VerificationCacheOptions = {}) {
    const max = options.maxEntries ?? 1024;
    this.signatures = new Lru(max);
    this.links = new Lru(max);
    this.certificates = new Lru(max);
    this.contexts = new Lru(max);
  }

  /** True when `child` was earlier proven to be signed by `issuer`'s key. */
  hasSignature(child: ParsedCertificate, issuer: ParsedCertificate): boolean {
    return this.lookup(this.signatures, this.counters.signatures, edgeKey(child, issuer)) !== undefined;
  }

  rememberSignature(child: ParsedCertificate, issuer: ParsedCertificate): void {
    this.signatures.set(edgeKey(child, issuer), true);
  }

  /** True when the delegation link with this SHA-256 (hex) was earlier proven to carry a valid signature. */
  hasLinkSignature(linkSha256Hex: string): boolean {
    return this.lookup(this.links, this.counters.links, linkSha256Hex) !== undefined;
  }

  rememberLinkSignature(linkSha256Hex: string): void {
    this.links.set(linkSha256Hex, true);
  }

  /**
   * A certificate decoded earlier from identical DER, if any. Decoding is deterministic and costs far more than a
   * signature check (node:crypto's X509Certificate alone is ~0.4 ms), so a peer that reconnects with the same
   * SVID should not pay it again.
   */
  certificate(der: Uint8Array): ParsedCertificate | undefined {
    return this.lookup(this.certificates, this.counters.certificates, sha256Hex(der));
  }

  /** Remember certificates of a chain that verified; callers never add certificates from a rejected chain. */
  rememberCertificate(cert: ParsedCertificate): void {
    this.certificates.set(cert.sha256Hex, cert);
  }

  /**
   * The agent context of this leaf (by its SHA-256, hex) as it was when every delegation rule passed. The rules
   * read only the leaf's own bytes (links, signatures, expiries), never the clock, so the answer cannot change;
   * decoding and re-hashing the links costs several signature checks, which is why it is worth keeping.
   */
  context(leafSha256Hex: string): AgentContext | undefined {
    return this.lookup(this.contexts, this.counters.contexts, leafSha256Hex);
  }

  rememberContext(leafSha256Hex: string, context: AgentContext): void {
    this.contexts.set(leafSha256Hex, context);
  }

  stats(): VerificationCacheStats {
    return {
      signatures: this.snapshot(this.signatures, this.counters.signatures),
      links: this.snapshot(this.links, this.counters.links),
      certificates: this.snapshot(this.certificates, this.counters.certificates),
      contexts: this.snapshot(this.contexts, this.counters.contexts),
    };
  }

  clear(): void {
    this.signatures.clear();
    this.links.clear();
    this.certificates.clear();
    this.contexts.clear();
  }

  private lookup<V>(lru: Lru<V>, counter: { hits: number; misses: number }, key: string): V | undefined {
    const value = lru.get(key);
    if (value === undefined) counter.misses++;
    else counter.hits++;
    return value;
  }

  private snapshot<V>(lru: Lru<V>, counter: { hits: number; misses: number }): CacheCounters {
    return { hits: counter.hits, misses: counter.misses, size: lru.size, evictions: lru.evictions };
  }
}

function sha256Hex(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

function edgeKey(child: ParsedCertificate, issuer: ParsedCertificate): string {
  return `${child.sha256Hex}:${issuer.sha256Hex}`;
}

/** Shared by verifyX509Svid calls that do not bring their own cache: one process, one set of known CAs. */
export const defaultVerificationCache = new VerificationCache();
