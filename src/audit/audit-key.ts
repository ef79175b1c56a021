/**
 * The audit signing key: Ed25519 (node:crypto), used for nothing but checkpoints, so a compromise of a CA key
 * does not let anyone rewrite the trail's history and vice versa. One PKCS#8 PEM file, mode 0600 in a 0700
 * directory, created atomically on first use; a file others can read is refused like a CA key. The private
 * key never leaves this module: callers get `sign` and the public half.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileAccess, ioStep, makeDir, writeNewFileAtomic } from '../internal/secure-file';
import {
  AlreadyExistsError,
  KeyFileInsecureError,
  KeyUnreadableError,
  MalformedPemError,
  UnsupportedKeyError,
} from '../errors';
import { canonicalJson, sha256Hex } from './canonical';

/** The JWK `use` under which the audit key is published in the SPIFFE bundle; other consumers ignore it. */
export const AUDIT_KEY_USE = 'lanyard-audit';
/** JWK members giving a rotating audit key's window (key-ring.ts). */
export const VALID_FROM_MEMBER = 'lanyard_valid_from';
export const VALID_UNTIL_MEMBER = 'lanyard_valid_until';

// A type alias, not an interface, so it is assignable to the bundle's open-ended JWK type.
export type AuditPublicJwk = {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  use: typeof AUDIT_KEY_USE;
  kid: string;
};

/** The public half of an audit key, as checkpoints are verified with it. */
export class AuditPublicKey {
  private constructor(
    readonly key: KeyObject,
    /** RFC 7638 JWK thumbprint (base64url SHA-256): names the key in every checkpoint it signs. */
    readonly keyId: string,
  ) {}

  static fromKeyObject(key: KeyObject): AuditPublicKey {
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    if (pub.asymmetricKeyType !== 'ed25519') {
      throw new UnsupportedKeyError('an audit key is Ed25519');
    }
    const jwk = pub.export({ format: 'jwk' });
    const thumb = canonicalJson({ crv: 'Ed25519', kty: 'OKP', x: String(jwk.x) });
    return new AuditPublicKey(pub, Buffer.from(sha256Hex(thumb), 'hex').toString('base64url'));
  }

  /** @throws AuditError(ERR_UNSUPPORTED_KEY) for anything but an Ed25519 public JWK. */
  static fromJwk(jwk: unknown): AuditPublicKey {
    const o = jwk as Record<string, unknown> | null;
    if (
      o === null ||
      typeof o !== 'object' ||
      o.kty !== 'OKP' ||
      o.crv !== 'Ed25519' ||
      typeof o.x !== 'string'
    ) {
      throw new UnsupportedKeyError('the audit key must be an Ed25519 JWK (kty OKP)');
    }
    let key: KeyObject;
    try {
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: o.x }, format: 'jwk' });
    } catch (e) {
      throw new UnsupportedKeyError('the audit JWK does not decode', { cause: e });
    }
    return AuditPublicKey.fromKeyObject(key);
  }

  /** From a PEM public key (SPKI) file's text. */
  static fromPem(pem: string): AuditPublicKey {
    let key: KeyObject;
    try {
      key = createPublicKey({ key: pem, format: 'pem' });
    } catch (e) {
      throw new MalformedPemError('not a PEM public key', { cause: e });
    }
    return AuditPublicKey.fromKeyObject(key);
  }

  /**
   * The current audit key of a SPIFFE bundle document (use "lanyard-audit", not retired: no
   * `lanyard_valid_until`), or undefined. To check checkpoints of a rotating key, take every key with its
   * window: AuditKeyRing.fromSpiffeBundle.
   */
  static fromSpiffeBundle(doc: unknown): AuditPublicKey | undefined {
    const keys = (doc as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys)) return undefined;
    const audit = keys.filter((k) => (k as { use?: unknown } | null)?.use === AUDIT_KEY_USE) as Record<
      string,
      unknown
    >[];
    const jwk = audit.find((k) => k[VALID_UNTIL_MEMBER] === undefined) ?? audit[audit.length - 1];
    return jwk === undefined ? undefined : AuditPublicKey.fromJwk(jwk);
  }

  jwk(): AuditPublicJwk {
    const jwk = this.key.export({ format: 'jwk' });
    return { kty: 'OKP', crv: 'Ed25519', x: String(jwk.x), use: AUDIT_KEY_USE, kid: this.keyId };
  }

  pem(): string {
    return this.key.export({ type: 'spki', format: 'pem' }).toString();
  }
}

/** An audit key that can sign. */
export class AuditSigningKey {
  readonly publicKey: AuditPublicKey;
  readonly #privateKey: KeyObject;

  private constructor(privateKey: KeyObject) {
    this.#privateKey = privateKey;
    this.publicKey = AuditPublicKey.fromKeyObject(privateKey);
  }

  /** A key that lives only in memory (tests, benchmarks). */
  static generate(): AuditSigningKey {
    return new AuditSigningKey(generateKeyPairSync('ed25519').privateKey);
  }

  /**
   * Loads the key from `file`, creating it (0600, parent directory 0700) when missing.
   * @throws KeyManagerError ERR_KEY_FILE_INSECURE when group or others can access the file, ERR_KEY_UNREADABLE
   *   when it is not an Ed25519 PKCS#8 PEM key; LanyardError ERR_IO when it cannot be read or written.
   */
  static loadOrCreate(file: string): AuditSigningKey {
    if (!existsSync(file)) {
      makeDir(dirname(file), 0o700);
      const key = generateKeyPairSync('ed25519').privateKey;
      try {
        writeNewFileAtomic(file, key.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
        return new AuditSigningKey(key);
      } catch (e) {
        // Another process created it first: use that one.
        if (!(e instanceof AlreadyExistsError)) throw e;
      }
    }
    const access = fileAccess(file);
    if (!access.isFile) throw new KeyUnreadableError(`audit key: ${file} is not a regular file`);
    if (access.openToOthers) {
      throw new KeyFileInsecureError(
        `audit key: ${file} is accessible by group or others (mode ${access.mode.toString(8)}); chmod 600 it`,
      );
    }
    const text = ioStep(`cannot read ${file}`, () => readFileSync(file, 'utf8'));
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: text, format: 'pem' });
    } catch {
      // No cause: the parser's message is about the file's bytes, which stay out of errors and logs.
      throw new KeyUnreadableError(`audit key: ${file} is not a PEM private key`);
    }
    if (key.asymmetricKeyType !== 'ed25519') {
      throw new KeyUnreadableError(`audit key: ${file} is not an Ed25519 key`);
    }
    return new AuditSigningKey(key);
  }

  sign(data: Uint8Array): Buffer {
    return sign(null, data, this.#privateKey);
  }

  /** Never the key: a logger or JSON.stringify that reaches this object prints the key id only. */
  toJSON(): { keyId: string } {
    return { keyId: this.publicKey.keyId };
  }
}
