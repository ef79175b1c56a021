import { ParsedCertificate } from '../x509/certificate';
import type { AgentContext } from '../x509/agent-context/types';
import { Lru } from '../internal/lru';
import { VerifiedChainMemo } from './chain-memo';
import { RenewedLeaves } from './renewals';
import { Sightings } from './sightings';
import type { VerifyX509SvidResult } from './verify-x509-svid';

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
  /** Decoded certificates of chains that verified, found by their exact DER. */
  certificates: CacheCounters;
  /**
   * Agent contexts that passed every delegation rule, keyed by the extension's exact bytes (with the OID and the
   * trust domain): a renewed leaf carrying the same context finds it.
   */
  contexts: CacheCounters;
  /** Whole verified chains, answered from memory when presented again (see VerifiedChainMemo). */
  chains: CacheCounters;
  /** Leaves kept so that their renewals are recognised rather than parsed and checked whole (RenewedLeaves). */
  renewals: CacheCounters;
}

/**
 * An agent context that passed every rule reading only its extension bytes, as the cache keeps it: the
 * read-only view, and the leaf key already found to be the one the last link delegates to.
 */
export interface ProvenContext {
  readonly context: AgentContext;
  /**
   * A leaf's SubjectPublicKeyInfo whose SHA-256 equalled the last link's childKeySha256 (the context bytes fix
   * that hash, so equal key bytes give the same answer without hashing them again). Undefined for a context
   * without links.
   */
  leafKey: Uint8Array | undefined;
}

interface ContextEntry extends ProvenContext {
  readonly oid: string;
  readonly trustDomain: string;
  /** A private copy of the extension value the context was decoded from. */
  readonly extension: Uint8Array;
}

export interface VerificationCacheOptions {
  /** Bound for each of the maps. Default 1024. */
  maxEntries?: number;
  /**
   * Remember whole verified chains (VerifiedChainMemo). Default true; false keeps only the per-certificate and
   * per-link facts, so every call pays the leaf's signature check (the bench compares both).
   */
  chains?: boolean;
  /**
   * Keep leaves that verified so that a renewal of one (the same extensions, issuer and subject under the same
   * certificates) is recognised rather than parsed and checked whole (RenewedLeaves). Default true; false makes
   * every new leaf take the full path (the bench compares both).
   */
  renewals?: boolean;
}

/**
 * What a busy verifier remembers between calls so that a chain whose CA certificates it has already seen
 * costs about one signature check (the leaf's).
 *
 * Facts that are pure functions of immutable bytes are stored: a signature either verifies over a given DER
 * under a given key or it does not, forever; a DER always decodes to the same certificate. Failures are never
 * stored; callers insert only facts from a chain that passed as a whole, so a peer cannot fill the cache with
 * its own junk certificates.
 *
 * On top, `chains` remembers whole answers for exact chain bytes. An answer depends on time, the bundle and
 * revocation too, so each hit is re-checked against all three (the validity window of the path, the identity of
 * the bundle object, the caller's revocation checker); a hit can never turn a rejection into an acceptance. A
 * chain not seen before takes the path below, where the leaf's own signature is never cached: in full, or, for
 * the renewal of a leaf that verified (`renewals`: the same extensions, issuer and subject under the same
 * presented certificates and bundle), with only what a renewal changes checked (src/verify/renewals.ts).
 */
export class VerificationCache {
  private readonly signatures: Lru<true>;
  private readonly links: Lru<true>;
  private readonly certificates: Lru<ParsedCertificate, number>;
  /** Hints of leaves verified once and not kept yet (see rememberLeaf). */
  private readonly seenLeaves: Sightings;
  private readonly contexts: Lru<ContextEntry, number>;
  /** Whole answers of verifyX509Svid; bundle, time and revocation are checked again on every hit. */
  readonly chains: VerifiedChainMemo<VerifyX509SvidResult> | undefined;
  /** Leaves whose renewals verifyX509Svid recognises; bundle, time, key and signature checked on every one. */
  readonly renewals: RenewedLeaves | undefined;
  private lastEdge: { child: ParsedCertificate; issuer: ParsedCertificate; key: string } | undefined;
  private lastContextSeed: { oid: string; trustDomain: string; seed: number } | undefined;
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
    this.seenLeaves = new Sightings(max);
    this.contexts = new Lru(max);
    this.chains = options.chains === false ? undefined : new VerifiedChainMemo(max);
    this.renewals = options.renewals === false ? undefined : new RenewedLeaves(max);
  }

  /** True when `child` was earlier proven to be signed by `issuer`'s key. */
  hasSignature(child: ParsedCertificate, issuer: ParsedCertificate): boolean {
    return this.lookup(this.signatures, this.counters.signatures, this.edgeKey(child, issuer)) !== undefined;
  }

  rememberSignature(child: ParsedCertificate, issuer: ParsedCertificate): void {
    const key = this.edgeKey(child, issuer);
    if (this.signatures.peek(key) === undefined) this.signatures.set(key, true);
  }

  /**
   * The signature cache's key for a pair of certificates. Every new leaf under a known intermediate asks for the
   * same pair (the intermediate and its root, the same objects from the certificate cache and the bundle), so
   * the last key is kept with the pair: no string is built and hashed again. Certificates are immutable, so the
   * same objects always give the same key.
   */
  private edgeKey(child: ParsedCertificate, issuer: ParsedCertificate): string {
    const last = this.lastEdge;
    if (last !== undefined && last.child === child && last.issuer === issuer) return last.key;
    const key = `${child.sha256Hex}:${issuer.sha256Hex}`;
    this.lastEdge = { child, issuer, key };
    return key;
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
   * lookup, so a peer that reconnects with the same SVID, or presents the same intermediate with each new leaf,
   * does not pay it again. Looked up by a cheap hint (bytesHint: the length and last bytes) and accepted only
   * when every byte is equal, so no SHA-256 is computed for the lookup.
   */
  certificate(der: Uint8Array): ParsedCertificate | undefined {
    const key = bytesHint(der, CERTIFICATE_SEED);
    const known = this.certificates.peek(key);
    if (known === undefined || !sameBytes(known.der, der)) {
      this.counters.certificates.misses++;
      return undefined;
    }
    this.counters.certificates.hits++;
    return this.certificates.get(key);
  }

  /** Remember certificates of a chain that verified; callers never add certificates from a rejected chain. */
  rememberCertificate(cert: ParsedCertificate): void {
    const key = bytesHint(cert.der, CERTIFICATE_SEED);
    if (this.certificates.peek(key) !== cert) this.certificates.set(key, cert);
  }

  /**
   * Remember the leaf of a chain that verified, the second time it verifies: the first time only its lookup hint
   * is noted. A renewed leaf is verified once and dropped; keeping every such leaf among the certificates (up to
   * maxEntries of them) kept it alive long enough to be copied into V8's old generation, a garbage-collection
   * cost for each new leaf. A leaf presented again (a peer reconnecting with the same SVID) is kept from then
   * on. The hint is only a hint: a different leaf with the same hint is admitted one verification early, never
   * answered for another's bytes (certificate() compares every byte).
   */
  rememberLeaf(cert: ParsedCertificate): void {
    const key = bytesHint(cert.der, CERTIFICATE_SEED);
    const known = this.certificates.peek(key);
    if (known === cert) return;
    if (known !== undefined || this.seenLeaves.has(key)) {
      this.seenLeaves.forget(key);
      this.certificates.set(key, cert);
    } else {
      this.seenLeaves.note(key);
    }
  }

  /**
   * The agent context verifiedAgentContext proved from exactly these extension bytes, read under `oid` for a leaf
   * of `trustDomain`, as it was when every rule that reads only those bytes passed (decoding, attribution, link
   * signatures and references, narrowing along the links). Those rules never read the clock, so the answer
   * cannot change; the rules that read the leaf (its ID, key and expiry against the last link) and the caller's
   * depth bound are applied again on every use. Found by a hint (the length and last bytes) and accepted only
   * when every byte is equal: no string or hash is made of the extension. The context is a read-only view
   * (frozen; byte arrays and dates copied on each read), so it is handed out as it is.
   */
  context(extension: Uint8Array, oid: string, trustDomain: string): ProvenContext | undefined {
    const key = bytesHint(extension, this.contextSeed(oid, trustDomain));
    const known = this.contexts.peek(key);
    if (
      known === undefined ||
      known.oid !== oid ||
      known.trustDomain !== trustDomain ||
      !sameBytes(known.extension, extension)
    ) {
      this.counters.contexts.misses++;
      return undefined;
    }
    this.counters.contexts.hits++;
    return this.contexts.get(key);
  }

  /** Remember a context proven from `extension` (copied), with the leaf key it was proven for. */
  rememberContext(
    extension: Uint8Array,
    oid: string,
    trustDomain: string,
    context: AgentContext,
    leafKey?: Uint8Array,
  ): void {
    const entry: ContextEntry = {
      oid,
      trustDomain,
      extension: new Uint8Array(extension),
      context,
      leafKey: leafKey === undefined ? undefined : new Uint8Array(leafKey),
    };
    this.contexts.set(bytesHint(extension, this.contextSeed(oid, trustDomain)), entry);
  }

  /**
   * The part of a context's hint that names the OID and the trust domain. A verifier reads one OID for the
   * leaves of one trust domain, so the last pair's seed is kept: no string is built or hashed per leaf.
   */
  private contextSeed(oid: string, trustDomain: string): number {
    const last = this.lastContextSeed;
    if (last !== undefined && last.oid === oid && last.trustDomain === trustDomain) return last.seed;
    const seed = stringHint(`${oid} ${trustDomain}`);
    this.lastContextSeed = { oid, trustDomain, seed };
    return seed;
  }

  stats(): VerificationCacheStats {
    return {
      signatures: this.snapshot(this.signatures, this.counters.signatures),
      links: this.snapshot(this.links, this.counters.links),
      certificates: this.snapshot(this.certificates, this.counters.certificates),
      contexts: this.snapshot(this.contexts, this.counters.contexts),
      chains: {
        hits: this.chains?.hits ?? 0,
        misses: this.chains?.misses ?? 0,
        size: this.chains?.size ?? 0,
        evictions: this.chains?.evictions ?? 0,
      },
      renewals: {
        hits: this.renewals?.hits ?? 0,
        misses: this.renewals?.misses ?? 0,
        size: this.renewals?.size ?? 0,
        evictions: this.renewals?.evictions ?? 0,
      },
    };
  }

  clear(): void {
    this.signatures.clear();
    this.links.clear();
    this.certificates.clear();
    this.seenLeaves.clear();
    this.contexts.clear();
    this.chains?.clear();
    this.renewals?.clear();
    this.lastEdge = undefined;
    this.lastContextSeed = undefined;
  }

  private lookup<V>(lru: Lru<V>, counter: { hits: number; misses: number }, key: string): V | undefined {
    const value = lru.get(key);
    if (value === undefined) counter.misses++;
    else counter.hits++;
    return value;
  }

  private snapshot<V, K>(lru: Lru<V, K>, counter: { hits: number; misses: number }): CacheCounters {
    return { hits: counter.hits, misses: counter.misses, size: lru.size, evictions: lru.evictions };
  }
}

/**
 * Where a certificate or a context is looked for: a 32-bit mix of a seed, the length and the last 16 bytes (the
 * end of a certificate's signature, or of a context's last link signature, which differ between any two that
 * were signed). A hint, not an identity: certificate() and context() compare every byte (and the OID and the
 * trust domain), so two with the same hint only replace each other. No array or string is made per lookup.
 */
function bytesHint(bytes: Uint8Array, seed: number): number {
  let h = Math.imul(seed ^ bytes.length, 0x01000193);
  for (let i = Math.max(0, bytes.length - 16); i < bytes.length; i++)
    h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

function stringHint(s: string): number {
  let h = CONTEXT_SEED;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Distinct seeds, so that the two kinds of hint never share a start (they live in separate maps anyway). */
const CERTIFICATE_SEED = 0x811c9dc5;
const CONTEXT_SEED = 0x050c5d1f;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Shared by verifyX509Svid calls that do not bring their own cache: one process, one set of known CAs. */
export const defaultVerificationCache = new VerificationCache();
