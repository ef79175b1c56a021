import { AlreadyExistsError, NotFoundError } from '../errors';
import { generateSigningKeyPair, KeyAlgorithm } from '../x509/keys';
import { checkKeyId, KeyManager, ManagedKey } from './key-manager';

/**
 * Keys in process memory only: gone on restart. For tests and for ephemeral servers whose CA need not
 * survive a restart (every restart then starts a new trust domain root).
 */
export class MemoryKeyManager implements KeyManager {
  readonly kind = 'memory';
  private readonly keys = new Map<string, ManagedKey>();

  async generateKey(id: string, algorithm: KeyAlgorithm): Promise<ManagedKey> {
    checkKeyId(id);
    if (this.keys.has(id)) throw new AlreadyExistsError(`key ${id} already exists`);
    const { privateKey, publicKey } = generateSigningKeyPair(algorithm);
    const key: ManagedKey = Object.freeze({ id, privateKey, publicKey });
    this.keys.set(id, key);
    return key;
  }

  async getKey(id: string): Promise<ManagedKey> {
    checkKeyId(id);
    const key = this.keys.get(id);
    if (key === undefined) throw new NotFoundError(`no key ${id}`);
    return key;
  }

  async deleteKey(id: string): Promise<void> {
    checkKeyId(id);
    this.keys.delete(id);
  }

  async listKeys(): Promise<string[]> {
    return [...this.keys.keys()].sort();
  }
}
