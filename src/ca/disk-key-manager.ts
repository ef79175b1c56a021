import { createPrivateKey, createPublicKey, KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AlreadyExistsError, KeyFileInsecureError, KeyUnreadableError, NotFoundError } from '../errors';
import { describeKey, generateSigningKeyPair, KeyAlgorithm } from '../x509/keys';
import { checkKeyId, KEY_ID_PATTERN, KeyManager, ManagedKey } from './key-manager';
import {
  fileAccess,
  ioStep,
  makeDir,
  removeFile,
  STAGED_FILE_PATTERN,
  writeNewFileAtomic,
} from '../internal/secure-file';

/** The key directory's name inside the server's data dir. */
export const KEYS_DIR_NAME = 'keys';
const KEY_FILE_SUFFIX = '.pem';

/**
 * One unencrypted PKCS#8 PEM file per key, `<dir>/<id>.pem`, mode 0600 in a 0700 directory, written
 * atomically (staged, synced, hard-linked into place) so a crash leaves either no key file or a whole one.
 *
 * The files are protected by the data dir's permissions, as SPIRE's disk key manager does; a key file that
 * group or others can access is refused (ERR_KEY_FILE_INSECURE), like OpenSSH refuses such a private key.
 * One server process owns the directory.
 */
export class DiskKeyManager implements KeyManager {
  readonly kind = 'disk';
  readonly dir: string;
  private prepared = false;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** The key manager for a server data dir: `<dataDir>/keys`. */
  static inDataDir(dataDir: string): DiskKeyManager {
    return new DiskKeyManager(join(dataDir, KEYS_DIR_NAME));
  }

  async generateKey(id: string, algorithm: KeyAlgorithm): Promise<ManagedKey> {
    checkKeyId(id);
    this.prepare();
    const { privateKey, publicKey } = generateSigningKeyPair(algorithm);
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    try {
      writeNewFileAtomic(this.fileOf(id), pem, 0o600);
    } catch (e) {
      if (e instanceof AlreadyExistsError) throw new AlreadyExistsError(`key ${id} already exists`);
      throw e;
    }
    return Object.freeze({ id, privateKey, publicKey });
  }

  async getKey(id: string): Promise<ManagedKey> {
    checkKeyId(id);
    this.prepare();
    const file = this.fileOf(id);
    let access: ReturnType<typeof fileAccess>;
    try {
      access = fileAccess(file);
    } catch (e) {
      if (((e as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
        throw new NotFoundError(`no key ${id} (${file} does not exist)`);
      }
      throw e;
    }
    if (!access.isFile) {
      throw new KeyUnreadableError(`key ${id}: ${file} is not a regular file`);
    }
    if (access.openToOthers) {
      throw new KeyFileInsecureError(
        `key ${id}: ${file} is accessible by group or others (mode ${access.mode.toString(8)}); chmod 600 it`,
      );
    }
    const text = ioStep(`cannot read ${file}`, () => readFileSync(file, 'utf8'));
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: text, format: 'pem' });
    } catch {
      // No cause attached: the parser's error describes the file's bytes, which stay out of errors and logs.
      throw new KeyUnreadableError(`key ${id}: ${file} is not an unencrypted PEM private key`);
    }
    try {
      describeKey(privateKey);
    } catch (e) {
      throw new KeyUnreadableError(`key ${id}: ${(e as Error).message}`);
    }
    return Object.freeze({ id, privateKey, publicKey: createPublicKey(privateKey) });
  }

  async deleteKey(id: string): Promise<void> {
    checkKeyId(id);
    this.prepare();
    removeFile(this.fileOf(id));
  }

  async listKeys(): Promise<string[]> {
    this.prepare();
    return this.entries()
      .filter((name) => name.endsWith(KEY_FILE_SUFFIX))
      .map((name) => name.slice(0, -KEY_FILE_SUFFIX.length))
      .filter((id) => KEY_ID_PATTERN.test(id))
      .sort();
  }

  private fileOf(id: string): string {
    return join(this.dir, `${id}${KEY_FILE_SUFFIX}`);
  }

  private entries(): string[] {
    return ioStep(`cannot list ${this.dir}`, () => readdirSync(this.dir));
  }

  /**
   * Once per instance: creates the directory (0700, narrowed if it was wider) and removes staged temp files
   * that a crash between staging and publishing left behind; they hold private keys that nothing refers to.
   */
  private prepare(): void {
    if (this.prepared) return;
    makeDir(this.dir, 0o700, true);
    for (const name of this.entries()) {
      if (STAGED_FILE_PATTERN.test(name)) rmSync(join(this.dir, name), { force: true });
    }
    this.prepared = true;
  }
}
