import type { X509Bundle, X509BundleSource } from '../bundle';
import { Lru } from '../internal/lru';
import type { SpiffeId } from '../spiffe';
import type { ParsedCertificate } from '../x509/certificate';
import type { RevocationQuery } from './revocation';
import { Sightings } from './sightings';

/**
 * The answer verifyX509Svid gave for one exact chain, kept so that the same peer presenting the same
 * certificates again costs a lookup and a byte comparison instead of parsing and signature checks.
 *
 * What the answer depends on, and how each dependency is held:
 *  - the chain bytes: the entry keeps a private copy of every presented certificate and a hit requires each to
 *    be byte-for-byte identical (the lookup key is only a hint, see chainMemoHint);
 *  - every option that changes the rules (depth bounds, agent-context OID, accepted trust domain): kept as a
 *    fingerprint string that must be equal;
 *  - the trust bundle: the entry keeps the X509Bundle object it was verified under. Bundles are immutable and a
 *    source hands out a new object when its bundle changes (rotation, a federated refresh), so an identity
 *    comparison on every hit is exactly "the same bundle generation";
 *  - time: the entry keeps the intersection of the validity windows of the whole path; outside it the entry is
 *    dropped and the full verification runs (and gives its precise error);
 *  - revocation: never remembered. The caller's checker is asked on every call, hit or miss, with the query
 *    built once when the chain was verified (`query`), so a session that ends is refused on the next call.
 * Authorizers run after verifyX509Svid returns, so they always see the call's own question.
 */
export interface MemoizedChain<R> {
  /** The bundle object the chain was verified under; compared by identity. */
  readonly bundle: X509Bundle;
  /** Milliseconds since the epoch: the latest notBefore and the earliest notAfter of the validated path. */
  readonly validFrom: number;
  readonly validUntil: number;
  readonly result: R;
  /** What the revocation checker is asked about this chain on every hit. */
  readonly query: RevocationQuery;
  /** The options fingerprint the chain was verified under (see memoKeyOf in verify-x509-svid.ts). */
  readonly options: string;
  /** Private copies of the presented certificates, in the order presented. */
  readonly ders: readonly Uint8Array[];
  /** When the entry was last moved to the recent end (see VerifiedChainMemo.get). */
  touched: number;
}

/**
 * The memo is an Lru keyed by chainMemoHint whose recency is approximate: a hit moves its entry to the recent end
 * only when it has fallen into the older half, so a chain hit on every request costs no Map re-insertion.
 */
export class VerifiedChainMemo<R extends { readonly id: SpiffeId }> extends Lru<MemoizedChain<R>, number> {
  /** Counts insertions and moves: an entry's `touched` says how many happened since it was last moved. */
  private clock = 0;
  /** Hints of chains verified once and not remembered yet (see seenBefore). */
  private readonly sightings: Sightings;
  hits = 0;
  misses = 0;

  constructor(maxEntries: number) {
    super(maxEntries);
    this.sightings = new Sightings(maxEntries);
  }

  /**
   * Whether a chain about to pass should be remembered: from its second verification that passed on. The first
   * time only its hint is noted (noteSighting). A renewed leaf makes a chain that is verified once; remembering
   * each such chain (a copy of its bytes, its frozen result with the parsed certificates, kept until maxEntries
   * newer chains arrive) carried every one of them into V8's old generation before it was dropped. A hint is
   * only a hint: another chain with the same hint is admitted one verification early, never answered for these
   * bytes (find compares them all).
   */
  seenBefore(hint: number): boolean {
    return this.sightings.has(hint);
  }

  /** A chain that passed and was not remembered: the next time it passes, it is (see seenBefore). */
  noteSighting(hint: number): void {
    this.sightings.note(hint);
  }

  override clear(): void {
    super.clear();
    this.sightings.clear();
  }

  /**
   * The remembered entry for exactly these chain bytes under exactly these options, when `source` still holds
   * the very bundle object it was reached under and `atMs` is inside the path's validity. An entry under
   * another bundle or past its window is forgotten at once: it can never become valid again. An invalid
   * `atMs` (NaN) is never a hit, so the full path reports it. `hint` is chainMemoHint(ders, options), computed
   * once per verification by the caller (find, seenBefore, noteSighting and remember all need it).
   */
  find(
    hint: number,
    ders: readonly Uint8Array[],
    options: string,
    source: X509BundleSource,
    atMs: number,
  ): MemoizedChain<R> | undefined {
    const entry = this.peek(hint);
    if (entry === undefined || !sameChain(entry, ders, options)) {
      this.misses++;
      return undefined;
    }
    const bundle = source.getX509BundleForTrustDomain(entry.result.id.trustDomain);
    if (entry.bundle !== bundle || !(atMs >= entry.validFrom && atMs <= entry.validUntil)) {
      // A chain that is not yet valid may become so; keep that entry, drop the others.
      if (entry.bundle !== bundle || atMs > entry.validUntil) this.delete(hint);
      this.misses++;
      return undefined;
    }
    this.hits++;
    if (this.clock - entry.touched > this.maxEntries >> 1) {
      entry.touched = ++this.clock;
      this.set(hint, entry);
    }
    return entry;
  }

  /**
   * Remember the answer for a chain that passed every check, revocation included. The presented bytes are
   * copied: the caller's arrays may change after this returns, the memo's may not. Another chain under the same
   * hint is replaced: a hint collision costs a full verification, never more. `hint`: as for find.
   */
  remember(
    hint: number,
    ders: readonly Uint8Array[],
    options: string,
    bundle: X509Bundle,
    path: readonly ParsedCertificate[],
    result: R,
    query: RevocationQuery,
  ): void {
    let validFrom = -Infinity;
    let validUntil = Infinity;
    for (const c of path) {
      validFrom = Math.max(validFrom, c.notBefore.getTime());
      validUntil = Math.min(validUntil, c.notAfter.getTime());
    }
    const kept = Object.freeze(ders.map((d) => new Uint8Array(d)));
    const touched = ++this.clock;
    this.sightings.forget(hint);
    this.set(hint, {
      bundle,
      validFrom,
      validUntil,
      result,
      query,
      options,
      ders: kept,
      touched,
    });
  }
}

/**
 * Where an entry for these chain bytes is looked for: a 32-bit mix of the chain's shape (count and lengths),
 * the options fingerprint and the last 16 bytes of the leaf (the end of its signature, which differs between
 * any two certificates a CA signs). Not a security boundary: a hit still needs every byte to be equal
 * (sameChain), so two chains with the same hint only replace each other in the memo. Costs a few dozen
 * integer operations instead of a SHA-256 over the whole chain.
 */
export function chainMemoHint(ders: readonly Uint8Array[], options: string): number {
  let h = 0x811c9dc5 ^ ders.length;
  for (let i = 0; i < ders.length; i++) h = Math.imul(h ^ ders[i]!.length, 0x01000193);
  for (let i = 0; i < options.length; i++) h = Math.imul(h ^ options.charCodeAt(i), 0x01000193);
  const leaf = ders[0]!;
  for (let i = Math.max(0, leaf.length - 16); i < leaf.length; i++) h = Math.imul(h ^ leaf[i]!, 0x01000193);
  return h >>> 0;
}

/** Exactly the remembered bytes, certificate by certificate, under exactly the remembered options. */
function sameChain(entry: MemoizedChain<unknown>, ders: readonly Uint8Array[], options: string): boolean {
  if (entry.options !== options || entry.ders.length !== ders.length) return false;
  for (let i = 0; i < ders.length; i++) {
    if (Buffer.compare(entry.ders[i]!, ders[i]!) !== 0) return false;
  }
  return true;
}
