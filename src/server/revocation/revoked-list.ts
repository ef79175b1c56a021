/**
 * The revokedCertificates of the CRLs, kept between builds: each serial's entry encoded once (crl.ts
 * encodeRevokedEntries) and the entries' concatenation, which new serials extend. It is made again from the kept
 * entries only after an expiry or an earlier revocation of a listed serial. One list serves every CA's CRL.
 *
 * Used where the CRL is built: in the CRL build worker (crl-build-worker.ts), or on the server's thread by the
 * inline builder; both give the same bytes for the same deltas.
 */
import type { KeyObject } from 'node:crypto';
import { encodeRevokedEntries, signEncodedCrl, type CrlHeader } from '../../ca/crl';
import type { ParsedCertificate } from '../../x509/certificate';
import { concatBytes } from '../../x509/der';

/** A delta of the store's listRevokedSerialsAfter in columns (times in milliseconds): a serial may repeat. */
export interface RevokedColumns {
  serials: readonly string[];
  revokedAtMs: ArrayLike<number>;
  expiresAtMs: ArrayLike<number>;
}

/** A delta as the store gives it, in columns. */
export function toColumns(
  serials: readonly { serialHex: string; revokedAt: Date; expiresAt: Date }[],
): RevokedColumns & { revokedAtMs: Float64Array; expiresAtMs: Float64Array; serials: string[] } {
  const n = serials.length;
  const out = {
    serials: new Array<string>(n),
    revokedAtMs: new Float64Array(n),
    expiresAtMs: new Float64Array(n),
  };
  for (let i = 0; i < n; i++) {
    const s = serials[i]!;
    out.serials[i] = s.serialHex;
    out.revokedAtMs[i] = s.revokedAt.getTime();
    out.expiresAtMs[i] = s.expiresAt.getTime();
  }
  return out;
}

interface Entry {
  revokedAt: number;
  expiresAt: number;
  der: Uint8Array;
}

export class RevokedList {
  private readonly entries = new Map<string, Entry>();
  /** The entries' DER concatenated, in the map's order; undefined after a removal or a replacement. */
  private body: Uint8Array | undefined = new Uint8Array(0);
  /** New entries not yet in `body`. */
  private appended: Uint8Array[] = [];
  private nextExpiry = Number.POSITIVE_INFINITY;

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
    this.body = new Uint8Array(0);
    this.appended = [];
    this.nextExpiry = Number.POSITIVE_INFINITY;
  }

  /**
   * Adds a delta's serials. A serial listed twice (its own revocation and its session's) keeps the earliest
   * revocation time and the latest expiry. New serials are encoded together, in one buffer.
   */
  addAll(delta: RevokedColumns): void {
    const fresh: { serialHex: string; revokedAtMs: number; expiresAt: number }[] = [];
    const pending = new Map<string, number>();
    for (let i = 0; i < delta.serials.length; i++) {
      const serialHex = delta.serials[i]!;
      const revokedAt = delta.revokedAtMs[i]!;
      const expiresAt = delta.expiresAtMs[i]!;
      const at = pending.get(serialHex);
      if (at !== undefined) {
        const f = fresh[at]!;
        f.revokedAtMs = Math.min(f.revokedAtMs, revokedAt);
        f.expiresAt = Math.max(f.expiresAt, expiresAt);
        continue;
      }
      const known = this.entries.get(serialHex);
      if (known === undefined) {
        pending.set(serialHex, fresh.length);
        fresh.push({ serialHex, revokedAtMs: revokedAt, expiresAt });
      } else if (known.revokedAt <= revokedAt) {
        known.expiresAt = Math.max(known.expiresAt, expiresAt);
        this.nextExpiry = Math.min(this.nextExpiry, known.expiresAt);
      } else {
        // Revoked earlier than the entry says: its bytes change, so the concatenation is made again.
        known.revokedAt = revokedAt;
        known.expiresAt = Math.max(known.expiresAt, expiresAt);
        known.der = encodeRevokedEntries([{ serialHex, revokedAtMs: revokedAt }])[0]!;
        this.body = undefined;
        this.nextExpiry = Math.min(this.nextExpiry, known.expiresAt);
      }
    }
    const ders = encodeRevokedEntries(fresh);
    for (let i = 0; i < fresh.length; i++) {
      const f = fresh[i]!;
      this.entries.set(f.serialHex, { revokedAt: f.revokedAtMs, expiresAt: f.expiresAt, der: ders[i]! });
      this.nextExpiry = Math.min(this.nextExpiry, f.expiresAt);
    }
    if (this.body !== undefined) for (const d of ders) this.appended.push(d);
  }

  /** The revokedCertificates content: the kept concatenation, extended or made again as needed. */
  entriesDer(): Uint8Array {
    if (this.body === undefined) {
      const all: Uint8Array[] = [];
      for (const e of this.entries.values()) all.push(e.der);
      this.body = concatBytes(all);
    } else if (this.appended.length > 0) {
      this.body = concatBytes([this.body, ...this.appended]);
    }
    this.appended = [];
    return this.body;
  }

  /** Expired certificates leave the list; a pass over it only when the earliest expiry has passed. */
  dropExpired(now: Date): void {
    if (now.getTime() < this.nextExpiry) return;
    let next = Number.POSITIVE_INFINITY;
    const t = now.getTime();
    for (const [serial, e] of this.entries) {
      if (e.expiresAt <= t) {
        this.entries.delete(serial);
        this.body = undefined;
      } else next = Math.min(next, e.expiresAt);
    }
    this.nextExpiry = next;
    if (this.body === undefined) this.appended = [];
  }
}

/** What one build applies to the list before signing. */
export interface CrlBuildStep {
  /** The list is emptied first (the deltas are the whole list). */
  full: boolean;
  header: CrlHeader;
  /**
   * The revocations to add, in order: one delta, or a run of bounded reads that are each applied (and become
   * garbage) before the next is read.
   */
  deltas: Iterable<RevokedColumns>;
}

/**
 * Applies the deltas (drops what expired at thisUpdate) and signs one CRL per signer over the list: the one
 * place that makes a CRL's content, for the worker and the inline builder alike. `added` counts the deltas'
 * serials (a serial may count twice).
 */
export function applyAndSign(
  list: RevokedList,
  step: CrlBuildStep,
  signers: readonly { authorityId: string; cert: ParsedCertificate; key: KeyObject }[],
): { crls: { authorityId: string; der: Uint8Array }[]; added: number } {
  if (step.full) list.clear();
  let added = 0;
  for (const delta of step.deltas) {
    list.addAll(delta);
    added += delta.serials.length;
  }
  list.dropExpired(step.header.thisUpdate);
  const entries = list.entriesDer();
  const crls = signers.map((s) => ({
    authorityId: s.authorityId,
    der: signEncodedCrl({ cert: s.cert, key: s.key }, step.header, entries),
  }));
  return { crls, added };
}
