import assert from 'node:assert/strict';
import { createPrivateKey, KeyObject } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { FakeClock } from './clock';
import { CaManager, CaManagerOptions, DiskKeyManager, KeyManager, ManagedKey } from '../../src/ca';
import { IoError, isLanyardError } from '../../src/errors';
import { createLogger } from '../../src/internal/logging';
import { SQLITE_FILE_NAME, SqliteStore, Store, StoreOps } from '../../src/store';
import { generateSigningKeyPair, KeyAlgorithm } from '../../src/x509/keys';

export const TD = 'example.org';

/** A real pino logger (the server's, with its redaction) writing into memory. */
export function captureLog(): { raw: string[]; logger: ReturnType<typeof createLogger> } {
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw.push(chunk.toString());
      cb();
    },
  });
  return { raw, logger: createLogger({ level: 'debug', destination }) };
}

/** One server data dir: the real SQLite store and the disk key manager, opened and reopened like restarts. */
export class DataDir {
  readonly clock = new FakeClock();
  readonly log = captureLog();
  private readonly open: { store: SqliteStore; ca?: CaManager }[] = [];

  constructor(readonly dir: string) {}

  get keysDir(): string {
    return join(this.dir, 'keys');
  }

  async openStore(): Promise<SqliteStore> {
    const store = await SqliteStore.open({ file: join(this.dir, SQLITE_FILE_NAME), clock: this.clock.read });
    this.open.push({ store });
    return store;
  }

  /** Opens the store and a CaManager on it (a server start). */
  async start(
    options: Partial<CaManagerOptions> = {},
  ): Promise<{ ca: CaManager; store: SqliteStore; keys: KeyManager }> {
    const store = await this.openStore();
    const keys = options.keyManager ?? DiskKeyManager.inDataDir(this.dir);
    const ca = await CaManager.open({
      trustDomain: TD,
      store,
      keyManager: keys,
      caTtlSeconds: 600,
      clock: this.clock.read,
      logger: this.log.logger,
      ...options,
    });
    this.open[this.open.length - 1]!.ca = ca;
    return { ca, store, keys };
  }

  /** Closes everything opened so far (a server stop). */
  async stop(): Promise<void> {
    for (const { store, ca } of this.open.splice(0)) {
      await ca?.close();
      await store.close();
    }
  }

  /** Every private key file's content, to look for leaks. */
  keyFileContents(): string[] {
    try {
      return readdirSync(this.keysDir).map((f) => readFileSync(join(this.keysDir, f), 'utf8'));
    } catch {
      return [];
    }
  }
}

/**
 * Pieces of private key material that must never appear in a message or a log line: the PEM armour, a run of
 * each key's PEM body, and its private scalar `d` as base64url, base64 and hex.
 */
export function secretFragments(keys: readonly (KeyObject | string)[]): string[] {
  const fragments = ['PRIVATE KEY'];
  for (const k of keys) {
    const key = typeof k === 'string' ? createPrivateKey(k) : k;
    const pem = key.export({ type: 'pkcs8', format: 'pem' }) as string;
    const body = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
    fragments.push(body.slice(40, 72));
    const d = Buffer.from(String(key.export({ format: 'jwk' }).d), 'base64url');
    fragments.push(
      d.toString('base64url').slice(0, 24),
      d.toString('base64').slice(0, 24),
      d.toString('hex').slice(0, 32),
    );
  }
  return fragments;
}

export function assertNoSecrets(text: string, fragments: readonly string[], what: string): void {
  for (const f of fragments)
    assert.ok(!text.includes(f), `${what} contains key material (${f.slice(0, 12)}…)`);
}

/** Every string an error carries: message, code, and its causes', recursively. */
export function errorText(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let i = 0; cur !== undefined && cur !== null && i < 10; i++) {
    if (cur instanceof Error) {
      parts.push(cur.name, cur.message, cur.stack ?? '');
      if (isLanyardError(cur)) parts.push(cur.code);
      cur = cur.cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join('\n');
}

/**
 * A key manager that breaks on demand, the way a faulty disk or HSM would: `getKey` hands back a different
 * key than the one generated, so certificates made with the generated key cannot be signed for with the
 * loaded one. The CA must notice in its self-test and never use such a CA.
 */
export class SwappingKeyManager implements KeyManager {
  readonly kind = 'swapping';
  broken = false;
  /** Fail every generateKey, as a full disk would. */
  refuseNewKeys = false;
  /** The wrong keys it handed out, so the test can look for them in messages too. */
  readonly impostors: KeyObject[] = [];

  constructor(private readonly inner: KeyManager) {}

  generateKey(id: string, algorithm: KeyAlgorithm): Promise<ManagedKey> {
    if (this.refuseNewKeys) {
      return Promise.reject(new IoError(`cannot write key ${id} (ENOSPC)`));
    }
    return this.inner.generateKey(id, algorithm);
  }
  async getKey(id: string): Promise<ManagedKey> {
    const real = await this.inner.getKey(id);
    if (!this.broken) return real;
    const { privateKey, publicKey } = generateSigningKeyPair('ec-p256');
    this.impostors.push(privateKey);
    return { id, privateKey, publicKey };
  }
  deleteKey(id: string): Promise<void> {
    return this.inner.deleteKey(id);
  }
  listKeys(): Promise<string[]> {
    return this.inner.listKeys();
  }
}

export function addSeconds(t: Date, s: number): Date {
  return new Date(t.getTime() + s * 1000);
}

/**
 * The real store, except that while `failBundleWrites` is set, setBundle inside a transaction throws after
 * the CA records were written in it: a crash in the middle of a commit. The transaction must roll back.
 */
export function storeFailingMidCommit(store: Store): Store & { failBundleWrites: boolean } {
  const wrapped = Object.create(store) as Store & { failBundleWrites: boolean };
  wrapped.failBundleWrites = false;
  wrapped.transaction = <T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> =>
    store.transaction((tx) => {
      if (!wrapped.failBundleWrites) return fn(tx);
      const failing: StoreOps = Object.create(tx) as StoreOps;
      failing.setBundle = () => Promise.reject(new IoError('disk I/O error (simulated)'));
      return fn(failing);
    });
  return wrapped;
}
