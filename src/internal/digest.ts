import { createHash } from 'node:crypto';

/** SHA-256 of `bytes`, as a plain Uint8Array (what the agent context and the wire carry). */
export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}
