import type { KeyObject } from 'node:crypto';
import { InvalidArgumentError } from '../errors';
import type { KeyAlgorithm } from '../x509/keys';

/**
 * Where the CA's private keys live. The CA asks for a key by id and signs with the handle it gets back; it
 * never sees how or where the key is kept, so a disk, memory or (later) HSM/KMS implementation can be swapped
 * in without touching rotation logic.
 *
 * Rules every implementation keeps:
 *  - a key id names one key for its whole life: `generateKey` refuses an id that exists rather than replace
 *    a key that may have signed certificates still in use;
 *  - private key material never appears in an error message, an error cause, or a log line;
 *  - a key is durable once `generateKey` resolves (for persistent implementations).
 */
export interface KeyManager {
  /** 'disk', 'memory', …: for logs and diagnostics. */
  readonly kind: string;
  /**
   * Creates and stores a new key pair under `id`.
   * @throws AlreadyExistsError when `id` exists; LanyardError(ERR_INVALID_ARGUMENT) for a malformed id.
   */
  generateKey(id: string, algorithm: KeyAlgorithm): Promise<ManagedKey>;
  /** @throws NotFoundError when there is no key `id`; KeyManagerError when it exists but cannot be used. */
  getKey(id: string): Promise<ManagedKey>;
  /** Removes the key. A missing key is not an error, so cleanup after a crash can simply repeat. */
  deleteKey(id: string): Promise<void>;
  /** Ids of every stored key, sorted. Used at start-up to remove keys that no CA record refers to. */
  listKeys(): Promise<string[]>;
}

/**
 * A key pair held by a key manager. `privateKey` is an opaque in-process handle: printing or logging a
 * KeyObject shows no key material, and nothing in src/ca exports it.
 */
export interface ManagedKey {
  readonly id: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/**
 * Key ids become file names (DiskKeyManager) and log fields, so they are restricted to a safe, readable
 * alphabet: no path separators, no leading dot (hidden and temp files), bounded length.
 */
export const KEY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function checkKeyId(id: string): void {
  if (typeof id !== 'string' || !KEY_ID_PATTERN.test(id)) {
    throw new InvalidArgumentError(
      `key id ${JSON.stringify(String(id).slice(0, 140))} must match ${KEY_ID_PATTERN.source}`,
    );
  }
}
