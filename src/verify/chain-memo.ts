import { createHash } from 'node:crypto';
import type { X509Bundle, X509BundleSource } from '../bundle';
import type { SpiffeId } from '../spiffe';
import { ParsedCertificate } from '../x509/certificate';
import { Lru } from '../internal/lru';

/**
 * The answer verifyX509Svid gave for one exact chain, kept so that the same peer presenting the same
 * certificates again costs a hash and a few comparisons instead of parsing and signature checks.
 *
 * What the answer depends on, and how each dependency is held:
 *  - the chain bytes and every option that changes the rules (depth bounds, agent-context OID, accepted trust
 *    domain): part of the key, so a different option never meets this entry;
 *  - the trust bundle: the entry keeps the X509Bundle object it was verified under. Bundles are immutable and a
 *    source hands out a new object when its bundle changes (rotation, a federated refresh), so an identity
 *    comparison on every hit is exactly "the same bundle generation";
 *  - time: the entry keeps the intersection of the validity windows of the whole path; outside it the entry is
 *    dropped and the full verification runs (and gives its precise error);
 *  - revocation: never remembered. The caller's checker is asked on every call, hit or miss, so a session that
 *    ends is refused on the next call whatever the memo holds.
 * Authorizers run after verifyX509Svid returns, so they always see the call's own question.
 */
export interface MemoizedChain<R> {
  /** The bundle object the chain was verified under; compared by identity. */
  readonly bundle: X509Bundle;
  /** Milliseconds since the epoch: the latest notBefore and the earliest notAfter of the validated path. */
  readonly validFrom: number;
  readonly validUntil: number;
  readonly result: R;
}

export class VerifiedChainMemo<R extends { readonly id: SpiffeId }> {
  private readonly entries: Lru<MemoizedChain<R>>;
  hits = 0;
  misses = 0;

  constructor(maxEntries: number) {
    this.entries = new Lru(maxEntries);
  }

  /**
   * The remembered answer for `key`, when `source` still holds the very bundle object it was reached under and
   * `atMs` is inside the path's validity. An entry under another bundle or past its window is forgotten at once:
   * it can never become valid again for this key.
   */
  get(key: string, source: X509BundleSource, atMs: number): R | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) {
      this.misses++;
      return undefined;
    }
    const bundle = source.getX509BundleForTrustDomain(entry.result.id.trustDomain);
    if (entry.bundle !== bundle || atMs < entry.validFrom || atMs > entry.validUntil) {
      // A chain that is not yet valid may become so; keep that entry, drop the others.
      if (entry.bundle !== bundle || atMs > entry.validUntil) this.entries.delete(key);
      this.misses++;
      return undefined;
    }
    this.hits++;
    return entry.result;
  }

  /** Remember the answer for a chain that passed every check, revocation included. */
  remember(key: string, bundle: X509Bundle, path: readonly ParsedCertificate[], result: R): void {
    let validFrom = -Infinity;
    let validUntil = Infinity;
    for (const c of path) {
      validFrom = Math.max(validFrom, c.notBefore.getTime());
      validUntil = Math.min(validUntil, c.notAfter.getTime());
    }
    this.entries.set(key, { bundle, validFrom, validUntil, result });
  }

  get size(): number {
    return this.entries.size;
  }

  get evictions(): number {
    return this.entries.evictions;
  }

  clear(): void {
    this.entries.clear();
  }
}

/**
 * The memo key: SHA-256 over the options that change the verdict, then every certificate's length and bytes
 * (length-prefixed, so no two different chains concatenate to the same input). Collision resistance is what
 * makes a hit safe: a peer cannot present other bytes under a remembered key.
 */
export function chainMemoKey(
  chain: readonly ParsedCertificate[] | readonly Uint8Array[],
  optionsFingerprint: string,
): string {
  const h = createHash('sha256');
  h.update(optionsFingerprint);
  const len = Buffer.alloc(4);
  for (const c of chain as readonly (ParsedCertificate | Uint8Array)[]) {
    const der = c instanceof ParsedCertificate ? c.der : c;
    len.writeUInt32BE(der.length);
    h.update(len);
    h.update(der);
  }
  return h.digest('base64');
}
