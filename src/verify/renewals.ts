import type { X509Bundle, X509BundleSource } from '../bundle';
import type { SpiffeId } from '../spiffe';
import * as certificate from '../x509/certificate';
import * as derExtensions from '../x509/der-extensions';
import type { CertificateTemplate, ParsedCertificate } from '../x509/certificate';
import type { CertificateOutline } from '../x509/certificate-der';
import type { AgentContext } from '../x509/agent-context/types';
import type { ProvenContext } from './cache';
import * as contextRules from './context-rules';
import * as pathRules from './path-rules';
import { Sightings } from './sightings';

// Read once at load: under tsx an imported binding is a getter call on every use (see certificate-der.ts).
const { CertificateTemplate: Template, renewedCertificate } = certificate;
const { checkRenewedLeafHop } = contextRules;
const { checkRenewedLeaf } = pathRules;
const { subjectKeyIdOf } = derExtensions;

/**
 * A leaf that passed verifyX509Svid, kept so that its renewals are recognised rather than parsed and checked
 * whole. A renewal (a new certificate for the same workload from the same CA) differs from its predecessor in
 * serial, validity, signature and sometimes key; its issuer, subject, algorithms and extensions (SPIFFE ID, key
 * usage, EKU, basic constraints, key identifiers, the agent context) are the same bytes. Every rule that reads only
 * those bytes, the chain above the leaf and the options gave its answer for the predecessor and gives the same
 * one again; what reads the rest is checked on every renewal (see verifyRenewal).
 *
 * What the answer depends on, and how each dependency is held:
 *  - the leaf's bytes but serial, validity, key and signature: the template's private copy, compared byte for
 *    byte (CertificateTemplate);
 *  - the presented certificates after the leaf: private copies, byte for byte;
 *  - the options that change a verdict: the fingerprint string of the chain memo, equal;
 *  - the bundle: the object the leaf was verified under, by identity (a source hands out a new object when its
 *    bundle changes), as the chain memo does;
 *  - time: the validity windows of the certificates above the leaf, intersected; the leaf's own is checked.
 * Only a leaf without an agent context or with a context of one trust domain (version 1) is kept: a cross-domain
 * context rests on other domains' bundles. Nothing here answers a refusal: a renewal that fails any check, or any
 * difference, takes the full verification, which gives its precise error.
 */
export interface RenewalEntry {
  readonly hint: number;
  readonly template: CertificateTemplate;
  readonly options: string;
  /** Private copies of the presented certificates after the leaf, in the order presented. */
  readonly intermediates: readonly Uint8Array[];
  readonly bundle: X509Bundle;
  /** The validated path above the leaf: its issuer first, the trust anchor last. */
  readonly above: readonly ParsedCertificate[];
  /** Milliseconds: the latest notBefore and the earliest notAfter of `above`. */
  readonly validFrom: number;
  readonly validUntil: number;
  readonly id: SpiffeId;
  /** The proven context and the leaf key found to match its last link; undefined for a leaf without context. */
  readonly proven: ProvenContext | undefined;
}

/**
 * The kept leaves: a direct-mapped table (one entry per slot, a newer one replaces it), so nothing is moved or
 * walked per verification. A leaf is kept from the second time a leaf with its extensions (by hint) passes: a
 * workload whose leaves never repeat their extensions notes a 32-bit hint per leaf and keeps nothing. As with
 * the chain memo's sightings, a hint is only a hint: a kept entry answers only for bytes equal to its own.
 */
export class RenewedLeaves {
  private readonly slots: (RenewalEntry | undefined)[];
  private readonly mask: number;
  private readonly sightings: Sightings;
  hits = 0;
  misses = 0;
  size = 0;
  evictions = 0;

  constructor(maxEntries: number) {
    let n = 1;
    while (n < maxEntries && n < 1 << 16) n *= 2;
    this.slots = new Array<RenewalEntry | undefined>(n).fill(undefined);
    this.mask = n - 1;
    this.sightings = new Sightings(maxEntries);
  }

  /** The entry for a leaf with this hint, presented with exactly these certificates after it, under `options`. */
  find(hint: number, ders: readonly Uint8Array[], options: string): RenewalEntry | undefined {
    const entry = this.slots[hint & this.mask];
    if (entry === undefined || entry.hint !== hint || !sameRest(entry, ders, options)) {
      this.misses++;
      return undefined;
    }
    return entry;
  }

  /**
   * A chain that passed in full: its leaf is kept when a leaf with the same hint passed before (see the class),
   * otherwise its hint is noted. Callers pass only what verifyX509Svid accepted.
   */
  offer(
    hint: number,
    o: CertificateOutline,
    ders: readonly Uint8Array[],
    options: string,
    bundle: X509Bundle,
    path: readonly ParsedCertificate[],
    id: SpiffeId,
    context: Readonly<AgentContext> | undefined,
  ): void {
    // Admitted by a digest of every byte of the extensions' part, not by the lookup hint, which samples them: two
    // leaves that differ in a few bytes (a DNS name) may share a hint, and each would otherwise admit the other.
    // This runs only after a verification in full, beside which it is small.
    const leaf = path[0]!;
    const seen = tailDigest(hint, ders[0]!, o, keyIdDerived(leaf));
    if (!this.sightings.has(seen)) {
      this.sightings.note(seen);
      return;
    }
    this.sightings.forget(seen);
    let template: CertificateTemplate;
    try {
      template = new Template(leaf.der);
    } catch {
      return;
    }
    let validFrom = -Infinity;
    let validUntil = Infinity;
    for (let i = 1; i < path.length; i++) {
      validFrom = Math.max(validFrom, path[i]!.notBefore.getTime());
      validUntil = Math.min(validUntil, path[i]!.notAfter.getTime());
    }
    const slot = hint & this.mask;
    if (this.slots[slot] === undefined) this.size++;
    else this.evictions++;
    this.slots[slot] = {
      hint,
      template,
      options,
      intermediates: Object.freeze(ders.slice(1).map((d) => new Uint8Array(d))),
      bundle,
      above: Object.freeze(path.slice(1)),
      validFrom,
      validUntil,
      id,
      proven:
        context === undefined
          ? undefined
          : {
              context,
              leafKey: context.delegation.length > 0 ? new Uint8Array(leaf.spkiDer) : undefined,
            },
    };
  }

  clear(): void {
    this.slots.fill(undefined);
    this.sightings.clear();
    this.size = 0;
  }
}

/**
 * Where a leaf's entry is looked for: a 32-bit mix of the options, the presented certificates' count and
 * lengths, and the extensions' part of the leaf (everything of the tbsCertificate after its key): its length and
 * 24 bytes spread over it, the last 8 included, read as zero inside the subject key identifier (which a renewal
 * with another key changes with it: CertificateTemplate). Not a security boundary: an entry answers only for
 * equal bytes.
 */
export function renewalHint(
  der: Uint8Array,
  o: CertificateOutline,
  ders: readonly Uint8Array[],
  options: string,
): number {
  let h = Math.imul(0x2f1c0a5b ^ ders.length, 0x01000193);
  for (let i = 1; i < ders.length; i++) h = Math.imul(h ^ ders[i]!.length, 0x01000193);
  for (let i = 0; i < options.length; i++) h = Math.imul(h ^ options.charCodeAt(i), 0x01000193);
  const from = o.spkiEnd;
  const n = o.tbsEnd - from;
  h = Math.imul(h ^ n, 0x01000193);
  const step = Math.max(1, Math.floor(n / 16));
  const ks = o.keyIdStart;
  const ke = o.keyIdEnd;
  for (let i = from; i < o.tbsEnd && i < from + 16 * step; i += step)
    h = Math.imul(h ^ (i >= ks && i < ke ? 0 : der[i]!), 0x01000193);
  for (let i = Math.max(from, o.tbsEnd - 8); i < o.tbsEnd; i++)
    h = Math.imul(h ^ (i >= ks && i < ke ? 0 : der[i]!), 0x01000193);
  return h >>> 0;
}

/**
 * An FNV-style mix of the leaf's bytes after its key, four at a time (a multiplication per word rather than per
 * byte: this runs for every leaf verified in full), seeded with the lookup hint (which covers the options and the
 * rest of the chain). Every byte counts but, when it is derived from the key (`skipKeyId`), the subject key
 * identifier's, so that leaves renewed with a new key each time are kept too (CertificateTemplate recognises
 * them); leaves differing in another byte differ here but for a 32-bit collision.
 */
function tailDigest(hint: number, der: Uint8Array, o: CertificateOutline, skipKeyId: boolean): number {
  const h = hint ^ 0x811c9dc5;
  if (!skipKeyId || o.keyIdStart < 0) return mixWords(h, der, o.spkiEnd, o.tbsEnd) >>> 0;
  return mixWords(mixWords(h, der, o.spkiEnd, o.keyIdStart), der, o.keyIdEnd, o.tbsEnd) >>> 0;
}

/**
 * Whether the leaf's subject key identifier is subjectKeyIdOf its key (RFC 7093 method 1, Lanyard's issuance):
 * only such leaves are admitted whatever their key. Leaves whose identifiers are anything else (a random one per
 * leaf) would otherwise admit one another, a template each, for renewals that could never match. A hash of the
 * key, after a verification in full.
 */
function keyIdDerived(leaf: ParsedCertificate): boolean {
  const id = leaf.subjectKeyId;
  if (id === undefined) return false;
  const derived = subjectKeyIdOf(leaf.spkiDer);
  return id.length === derived.length && Buffer.compare(id, derived) === 0;
}

function mixWords(h: number, der: Uint8Array, from: number, end: number): number {
  let i = from;
  for (; i + 4 <= end; i += 4) {
    h = Math.imul(h ^ (der[i]! | (der[i + 1]! << 8) | (der[i + 2]! << 16) | (der[i + 3]! << 24)), 0x01000193);
    h ^= h >>> 15;
  }
  for (; i < end; i++) h = Math.imul(h ^ der[i]!, 0x01000193);
  return h;
}

/**
 * The validated path of a renewal of `entry`'s leaf, or undefined when `der` is not one or any check fails (the
 * caller then verifies in full). Checked here: the bundle is the one the leaf was verified under; `at` is within
 * the validity of the certificates above; the leaf equals the template but for serial, validity, key and
 * signature (CertificateTemplate); the path rules that read the leaf's own fields (validity, key, algorithm);
 * the context rule that reads its key and expiry; and, last, the leaf's signature under its issuer's key.
 *
 * When only that signature failed, the leaf itself is returned instead of a path: the certificate fromDer would
 * give, which remembers that its signature failed under that issuer object (ParsedCertificate.isSignedBy). The
 * full verification, handed it, refuses it with its own error and code without a second check of the signature.
 */
export function verifyRenewal(
  entry: RenewalEntry,
  der: Uint8Array,
  o: CertificateOutline,
  source: X509BundleSource,
  at: Date,
): ParsedCertificate[] | ParsedCertificate | undefined {
  try {
    if (source.getX509BundleForTrustDomain(entry.id.trustDomain) !== entry.bundle) return undefined;
    // Whole seconds, as checkPath's validity rule compares (RFC 5280 §4.1.2.5).
    const t = Math.floor(at.getTime() / 1000) * 1000;
    if (!(t >= entry.validFrom && t <= entry.validUntil)) return undefined;
    const leaf = renewedCertificate(entry.template, der, o);
    if (leaf === undefined) return undefined;
    checkRenewedLeaf(leaf, at);
    if (entry.proven !== undefined) checkRenewedLeafHop(entry.proven, entry.id.toString(), leaf);
    const above = entry.above;
    if (!leaf.isSignedBy(above[0]!)) return leaf;
    // A new array (the caller freezes it into the result), packed: the leaf, then the kept path above it.
    const path = [leaf];
    for (let i = 0; i < above.length; i++) path.push(above[i]!);
    return path;
  } catch {
    // Any refusal is the full verification's to give, with its own message and code.
    return undefined;
  }
}

/** The same options and exactly the same certificates after the leaf. */
function sameRest(entry: RenewalEntry, ders: readonly Uint8Array[], options: string): boolean {
  const kept = entry.intermediates;
  if (entry.options !== options || kept.length !== ders.length - 1) return false;
  for (let i = 0; i < kept.length; i++) {
    const d = ders[i + 1]!;
    if (kept[i]!.length !== d.length || Buffer.compare(kept[i]!, d) !== 0) return false;
  }
  return true;
}
