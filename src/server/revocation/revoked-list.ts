/**
 * The revokedCertificates of the CRLs, kept between builds: each serial's entry encoded once (crl.ts
 * encodeRevokedEntries) into one buffer of entries, which new serials extend. It is compacted from the kept
 * entries only after an expiry or an earlier revocation of a listed serial. One list serves every CA's CRL.
 *
 * Used where the CRL is built: in the CRL build worker (crl-build-worker.ts), or on the server's thread by the
 * inline builder; both give the same bytes for the same deltas.
 */
import type { KeyObject } from 'node:crypto';
import { encodeRevokedEntries, signEncodedCrl, type CrlHeader } from '../../ca/crl';
import type { ParsedCertificate } from '../../x509/certificate';

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

/**
 * The list in columns: a serial's slot (its place in the list) in one map, and per slot its times, and where its
 * encoded entry lies in one buffer of entries (the arena). At a million serials a `Map` of per-entry objects, each
 * with its own view of the encoded bytes, was ~215 MiB of the worker's heap and some three million objects that
 * every full garbage collection marked; here there is one number per serial in the map and a few typed arrays.
 *
 * The map's order is the slots' order (a new serial takes the next slot and goes last in the map; an earlier
 * revocation changes a slot in place), and the arena holds the live entries in that order, back to back, until
 * an entry is dropped (an expiry) or re-encoded (an earlier revocation): then the next `entriesDer` compacts it.
 */
export class RevokedList {
  private readonly slots = new Map<string, number>();
  private revokedAt = new Float64Array(0);
  private expiresAt = new Float64Array(0);
  /** Where each slot's entry starts in the arena, and its length (0: dropped). */
  private offset = new Uint32Array(0);
  private length = new Uint8Array(0);
  /** Slots taken, live or dropped. */
  private used = 0;
  private arena = new Uint8Array(0);
  private arenaUsed = 0;
  /** The arena's first `arenaUsed` bytes are exactly the live entries in slot order. */
  private contiguous = true;
  private nextExpiry = Number.POSITIVE_INFINITY;

  get size(): number {
    return this.slots.size;
  }

  clear(): void {
    this.slots.clear();
    this.revokedAt = new Float64Array(0);
    this.expiresAt = new Float64Array(0);
    this.offset = new Uint32Array(0);
    this.length = new Uint8Array(0);
    this.used = 0;
    this.arena = new Uint8Array(0);
    this.arenaUsed = 0;
    this.contiguous = true;
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
      const slot = this.slots.get(serialHex);
      if (slot === undefined) {
        pending.set(serialHex, fresh.length);
        fresh.push({ serialHex, revokedAtMs: revokedAt, expiresAt });
        continue;
      }
      this.expiresAt[slot] = Math.max(this.expiresAt[slot]!, expiresAt);
      this.nextExpiry = Math.min(this.nextExpiry, this.expiresAt[slot]!);
      if (this.revokedAt[slot]! > revokedAt) {
        // Revoked earlier than the entry says: its bytes change, so the arena is compacted before it is used.
        this.revokedAt[slot] = revokedAt;
        this.place(slot, encodeRevokedEntries([{ serialHex, revokedAtMs: revokedAt }])[0]!);
        this.contiguous = false;
      }
    }
    const ders = encodeRevokedEntries(fresh);
    this.reserve(
      fresh.length,
      ders.reduce((n, d) => n + d.length, 0),
    );
    for (let i = 0; i < fresh.length; i++) {
      const f = fresh[i]!;
      const slot = this.used++;
      this.revokedAt[slot] = f.revokedAtMs;
      this.expiresAt[slot] = f.expiresAt;
      this.place(slot, ders[i]!);
      this.slots.set(f.serialHex, slot);
      this.nextExpiry = Math.min(this.nextExpiry, f.expiresAt);
    }
  }

  /**
   * The revokedCertificates content: the arena as it is (a view; the bytes under it never change, later entries
   * go after it or into a new arena), compacted first after a removal or a re-encoded entry.
   */
  entriesDer(): Uint8Array {
    if (!this.contiguous) this.compact();
    return this.arena.subarray(0, this.arenaUsed);
  }

  /** Expired certificates leave the list; a pass over it only when the earliest expiry has passed. */
  dropExpired(now: Date): void {
    if (now.getTime() < this.nextExpiry) return;
    let next = Number.POSITIVE_INFINITY;
    const t = now.getTime();
    for (const [serial, slot] of this.slots) {
      if (this.expiresAt[slot]! <= t) {
        this.slots.delete(serial);
        this.length[slot] = 0;
        this.contiguous = false;
      } else next = Math.min(next, this.expiresAt[slot]!);
    }
    this.nextExpiry = next;
  }

  /** Appends `der` to the arena as `slot`'s entry. */
  private place(slot: number, der: Uint8Array): void {
    this.reserve(0, der.length);
    this.arena.set(der, this.arenaUsed);
    this.offset[slot] = this.arenaUsed;
    this.length[slot] = der.length;
    this.arenaUsed += der.length;
  }

  /** Room for `slots` more slots and `bytes` more arena bytes, growing by doubling (copies, never in place). */
  private reserve(slots: number, bytes: number): void {
    if (this.used + slots > this.offset.length) {
      const cap = Math.max(1024, this.used + slots, this.offset.length * 2);
      this.revokedAt = grown(this.revokedAt, new Float64Array(cap));
      this.expiresAt = grown(this.expiresAt, new Float64Array(cap));
      this.offset = grown(this.offset, new Uint32Array(cap));
      this.length = grown(this.length, new Uint8Array(cap));
    }
    if (this.arenaUsed + bytes > this.arena.length) {
      const cap = Math.max(64 * 1024, this.arenaUsed + bytes, this.arena.length * 2);
      const next = new Uint8Array(cap);
      next.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = next;
    }
  }

  /** The live entries back to back in slot order, renumbered from 0, in a new arena and new columns. */
  private compact(): void {
    const n = this.slots.size;
    let bytes = 0;
    for (const slot of this.slots.values()) bytes += this.length[slot]!;
    const arena = new Uint8Array(Math.max(64 * 1024, bytes));
    const revokedAt = new Float64Array(Math.max(1024, n));
    const expiresAt = new Float64Array(revokedAt.length);
    const offset = new Uint32Array(revokedAt.length);
    const length = new Uint8Array(revokedAt.length);
    let to = 0;
    let at = 0;
    for (const [serial, slot] of this.slots) {
      const len = this.length[slot]!;
      arena.set(this.arena.subarray(this.offset[slot]!, this.offset[slot]! + len), at);
      revokedAt[to] = this.revokedAt[slot]!;
      expiresAt[to] = this.expiresAt[slot]!;
      offset[to] = at;
      length[to] = len;
      // Setting an existing key keeps its place in the map's order.
      this.slots.set(serial, to);
      at += len;
      to++;
    }
    this.arena = arena;
    this.revokedAt = revokedAt;
    this.expiresAt = expiresAt;
    this.offset = offset;
    this.length = length;
    this.used = n;
    this.arenaUsed = at;
    this.contiguous = true;
  }
}

function grown<T extends Float64Array | Uint32Array | Uint8Array>(from: T, into: T): T {
  into.set(from as never);
  return into;
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
