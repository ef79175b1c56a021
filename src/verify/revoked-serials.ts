/**
 * The revoked certificate serials a RevocationCache holds, keyed by the serial's bytes: a new verifier receives
 * a million of them at once (issue 15), and a `Map` keyed by a fresh 32-character string per serial spent most
 * of that time hashing the strings, growing the map and collecting (or promoting) the strings. Here a serial is
 * its integer value's big-endian bytes without leading zero bytes (so `0ab`, `00AB` and `ab` are one serial, as
 * normaliseSerial makes them), copied into one arena; an open-addressing table of slot numbers finds them. No
 * object per serial, and the arrays are a few typed arrays whatever the count.
 *
 * Ids that are not hex (a store that wrote something else; never what a CA issues) go into a plain map, so
 * nothing the feed sends is dropped.
 */
import { randomInt } from 'node:crypto';

/** Look-up answers kept by the serial string (see `recent`). */
const RECENT_MAX = 1024;
/** Bytes of a serial at most: a page writes at most 255 hex digits. */
const MAX_BYTES = 128;

const nibble = (c: number): number => {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
};

export class RevokedSerials {
  /**
   * Two numbers per table position: slot + 1 (0 for empty) and the key's hash, side by side so a probe reads
   * one cache line; a power of two positions, at most half of them used.
   */
  private index = new Int32Array(2 * 1024);
  private arena = new Uint8Array(16 * 1024);
  private arenaUsed = 0;
  private offsets = new Uint32Array(512);
  private lengths = new Uint8Array(512);
  private hashes = new Int32Array(512);
  private expiries = new Float64Array(512);
  private count = 0;
  /** Certificate ids that are not hex serials. */
  private readonly other = new Map<string, number>();
  /** Per table, so the positions of one table say nothing about another's. */
  private readonly seed = randomInt(0x7fffffff);
  /**
   * Answers of recent look-ups by the serial string (whose hash V8 keeps in the string): a verifier asks about
   * the same few serials on every call (the chain memo's hits), and a Map look-up of a string hashed once is
   * cheaper than parsing its digits. Emptied whenever a serial is added or dropped, and when full.
   */
  private readonly recent = new Map<string, boolean>();
  /** The current key's bytes, for adds and look-ups from a string. */
  private readonly key = new Uint8Array(MAX_BYTES);

  get size(): number {
    return this.count + this.other.size;
  }

  /** Whether the serial (normalised: lower-case hex without leading zeros, as normaliseSerial gives it) is held. */
  has(serial: string): boolean {
    const known = this.recent.get(serial);
    if (known !== undefined) return known;
    const n = this.keyOf(serial);
    const held = n < 0 ? this.other.has(serial) : this.find(this.key, 0, n, this.hash(this.key, 0, n)) >= 0;
    if (this.recent.size >= RECENT_MAX) this.recent.clear();
    this.recent.set(serial, held);
    return held;
  }

  /** Adds a normalised serial; false when it was held already. */
  add(serial: string, expiresAt: number): boolean {
    const n = this.keyOf(serial);
    if (n < 0) {
      if (this.other.has(serial)) return false;
      this.other.set(serial, expiresAt);
      this.recent.clear();
      return true;
    }
    return this.insert(this.key, 0, n, expiresAt);
  }

  /**
   * Adds a serial given as its big-endian bytes (`length` of them at `offset`; leading zero bytes are the same
   * integer, as leading zero digits are): what a packed page holds, so a new watcher's million serials are
   * never made into strings. False when it was held already.
   */
  addBytes(bytes: Uint8Array, offset: number, length: number, expiresAt: number): boolean {
    while (length > 1 && bytes[offset] === 0) {
      offset++;
      length--;
    }
    if (length === 0) throw new RangeError('a serial of no bytes');
    return this.insert(bytes, offset, length, expiresAt);
  }

  /** Whether the serial given as its big-endian bytes (see addBytes) is held. */
  hasBytes(bytes: Uint8Array, offset: number, length: number): boolean {
    while (length > 1 && bytes[offset] === 0) {
      offset++;
      length--;
    }
    if (length === 0 || length > MAX_BYTES) return false;
    return this.find(bytes, offset, length, this.hash(bytes, offset, length)) >= 0;
  }

  /** Drops the serials whose expiry is before `t`; the table is rebuilt only when one is dropped. */
  sweep(t: number): void {
    this.recent.clear();
    for (const [serial, expiresAt] of this.other) if (expiresAt < t) this.other.delete(serial);
    let expired = 0;
    for (let i = 0; i < this.count; i++) if (this.expiries[i]! < t) expired++;
    if (expired === 0) return;
    const old = {
      arena: this.arena,
      offsets: this.offsets,
      lengths: this.lengths,
      expiries: this.expiries,
      count: this.count,
    };
    const keep = old.count - expired;
    this.count = 0;
    this.arenaUsed = 0;
    this.arena = new Uint8Array(Math.max(16 * 1024, this.arena.length));
    const slots = Math.max(512, keep);
    this.offsets = new Uint32Array(slots);
    this.lengths = new Uint8Array(slots);
    this.hashes = new Int32Array(slots);
    this.expiries = new Float64Array(slots);
    this.index = new Int32Array(2 * tableSize(keep));
    for (let i = 0; i < old.count; i++) {
      const e = old.expiries[i]!;
      if (e >= t) this.insert(old.arena, old.offsets[i]!, old.lengths[i]!, e);
    }
  }

  /** The serial's integer bytes into `key`; their count, or -1 when it is not lower-case hex. */
  private keyOf(serial: string): number {
    const digits = serial.length;
    if (digits === 0 || digits > 2 * MAX_BYTES) return -1;
    let p = 0;
    let i = 0;
    if (digits % 2 === 1) {
      const v = nibble(serial.charCodeAt(0));
      if (v < 0) return -1;
      this.key[p++] = v;
      i = 1;
    }
    for (; i < digits; i += 2) {
      const hi = nibble(serial.charCodeAt(i));
      const lo = nibble(serial.charCodeAt(i + 1));
      if (hi < 0 || lo < 0) return -1;
      this.key[p++] = (hi << 4) | lo;
    }
    // A normalised serial has no leading zero digit; any other spelling is cut to its integer's bytes.
    let start = 0;
    while (start < p - 1 && this.key[start] === 0) start++;
    if (start > 0) this.key.copyWithin(0, start, p);
    return p - start;
  }

  private hash(bytes: Uint8Array, offset: number, length: number): number {
    let h = this.seed ^ length;
    for (let i = offset; i < offset + length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
    // A final mix, so the low bits (the table position) depend on every byte.
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    return h | 0;
  }

  /** The slot holding the key, or -1. */
  private find(bytes: Uint8Array, offset: number, length: number, h: number): number {
    const index = this.index;
    const mask = (index.length >> 1) - 1;
    for (let pos = h & mask; ; pos = (pos + 1) & mask) {
      const s = index[2 * pos]! - 1;
      if (s < 0) return -1;
      if (index[2 * pos + 1] === h && this.lengths[s] === length && this.equal(s, bytes, offset, length))
        return s;
    }
  }

  private equal(slot: number, bytes: Uint8Array, offset: number, length: number): boolean {
    const at = this.offsets[slot]!;
    for (let i = 0; i < length; i++) if (this.arena[at + i] !== bytes[offset + i]) return false;
    return true;
  }

  private insert(bytes: Uint8Array, offset: number, length: number, expiresAt: number): boolean {
    if (length > MAX_BYTES) throw new RangeError(`a serial of ${length} bytes`);
    const h = this.hash(bytes, offset, length);
    if (this.find(bytes, offset, length, h) >= 0) return false;
    if (2 * (this.count + 1) > this.index.length >> 1) this.growIndex();
    if (this.count === this.offsets.length) this.growSlots();
    if (this.arenaUsed + length > this.arena.length) {
      const bigger = new Uint8Array(Math.max(2 * this.arena.length, this.arenaUsed + length));
      bigger.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = bigger;
    }
    const s = this.count++;
    // Byte by byte: a serial is a few bytes, and a subarray per serial would be an object each.
    const arena = this.arena;
    for (let i = 0; i < length; i++) arena[this.arenaUsed + i] = bytes[offset + i]!;
    this.offsets[s] = this.arenaUsed;
    this.lengths[s] = length;
    this.hashes[s] = h;
    this.expiries[s] = expiresAt;
    this.arenaUsed += length;
    this.place(s, h);
    if (this.recent.size > 0) this.recent.clear();
    return true;
  }

  private place(slot: number, h: number): void {
    const index = this.index;
    const mask = (index.length >> 1) - 1;
    let pos = h & mask;
    while (index[2 * pos] !== 0) pos = (pos + 1) & mask;
    index[2 * pos] = slot + 1;
    index[2 * pos + 1] = h;
  }

  private growIndex(): void {
    this.index = new Int32Array(this.index.length * 2);
    for (let s = 0; s < this.count; s++) this.place(s, this.hashes[s]!);
  }

  private growSlots(): void {
    const n = this.offsets.length * 2;
    const grow = <T extends Uint32Array | Uint8Array | Int32Array | Float64Array>(a: T, b: T): T => {
      b.set(a);
      return b;
    };
    this.offsets = grow(this.offsets, new Uint32Array(n));
    this.lengths = grow(this.lengths, new Uint8Array(n));
    this.hashes = grow(this.hashes, new Int32Array(n));
    this.expiries = grow(this.expiries, new Float64Array(n));
  }
}

/** A table length (a power of two) at most half full with `n` keys. */
function tableSize(n: number): number {
  let size = 1024;
  while (size < 2 * n) size *= 2;
  return size;
}
