/**
 * Byte equality for public values (hashes, keys, DER), where the time taken reveals nothing secret. Secrets are
 * compared with crypto.timingSafeEqual instead.
 */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}
