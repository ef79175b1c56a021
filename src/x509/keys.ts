import { createPublicKey, generateKeyPairSync, KeyObject, sign, verify } from 'node:crypto';
import { UnsupportedKeyError } from '../errors';

/** Key types Lanyard accepts anywhere (CSR, CA, delegation link). Everything else is refused. */
export type KeyAlgorithm = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096' | 'ed25519';

export interface KeyDescription {
  kind: 'ec' | 'rsa' | 'ed25519';
  curve?: 'P-256' | 'P-384';
  bits?: number;
}

/** The signature scheme a key signs with; the AlgorithmIdentifier follows from it (RFC 5758, RFC 4055, RFC 8410). */
export interface SignatureScheme {
  /** Digest passed to node:crypto sign/verify; null for Ed25519 (pure EdDSA). */
  hash: 'sha256' | 'sha384' | null;
  /** signatureAlgorithm OID for certificates signed with this key. */
  oid: string;
  /** RSA PKCS#1 v1.5 AlgorithmIdentifiers carry an explicit NULL parameter; ECDSA and Ed25519 carry none. */
  nullParams: boolean;
}

export const SIG_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
export const SIG_ECDSA_SHA384 = '1.2.840.10045.4.3.3';
export const SIG_RSA_SHA256 = '1.2.840.113549.1.1.11';
export const SIG_ED25519 = '1.3.101.112';

export function generateSigningKeyPair(alg: KeyAlgorithm = 'ec-p256'): {
  privateKey: KeyObject;
  publicKey: KeyObject;
} {
  switch (alg) {
    case 'ec-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ec-p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'rsa-2048':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
    case 'rsa-3072':
      return generateKeyPairSync('rsa', { modulusLength: 3072 });
    case 'rsa-4096':
      return generateKeyPairSync('rsa', { modulusLength: 4096 });
    case 'ed25519':
      return generateKeyPairSync('ed25519');
  }
}

/** Describe a key, refusing anything outside the accepted set with ERR_UNSUPPORTED_KEY. */
export function describeKey(key: KeyObject): KeyDescription {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'ec') {
    if (details.namedCurve === 'prime256v1') return { kind: 'ec', curve: 'P-256' };
    if (details.namedCurve === 'secp384r1') return { kind: 'ec', curve: 'P-384' };
    throw new UnsupportedKeyError(
      `EC curve ${details.namedCurve ?? 'unknown'} is not accepted (P-256 or P-384 only)`,
    );
  }
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048) {
      throw new UnsupportedKeyError(`RSA key of ${bits} bits is too short (>= 2048)`);
    }
    if (bits > 8192) {
      throw new UnsupportedKeyError(`RSA key of ${bits} bits is too long (<= 8192)`);
    }
    return { kind: 'rsa', bits };
  }
  if (type === 'ed25519') return { kind: 'ed25519' };
  throw new UnsupportedKeyError(`key type ${type ?? 'unknown'} is not accepted`);
}

/**
 * Schemes already found, per key: a CA key signs every certificate and CRL, and reading a key's details crosses
 * into OpenSSL each time. KeyObjects are immutable; weak keys let an entry go with its key.
 */
const schemes = new WeakMap<KeyObject, SignatureScheme>();

/** The one scheme each accepted key signs with. Fixing it per key type rules out algorithm confusion. */
export function signatureSchemeFor(key: KeyObject): SignatureScheme {
  let scheme = schemes.get(key);
  if (scheme === undefined) {
    scheme = Object.freeze(schemeOf(describeKey(key)));
    schemes.set(key, scheme);
  }
  return scheme;
}

function schemeOf(d: KeyDescription): SignatureScheme {
  switch (d.kind) {
    case 'ec':
      return d.curve === 'P-384'
        ? { hash: 'sha384', oid: SIG_ECDSA_SHA384, nullParams: false }
        : { hash: 'sha256', oid: SIG_ECDSA_SHA256, nullParams: false };
    case 'rsa':
      return { hash: 'sha256', oid: SIG_RSA_SHA256, nullParams: true };
    case 'ed25519':
      return { hash: null, oid: SIG_ED25519, nullParams: false };
  }
}

/** Sign with the key's fixed scheme. ECDSA signatures are DER (r,s) as X.509 expects. */
export function signWithKey(data: Uint8Array, privateKey: KeyObject): Uint8Array {
  const scheme = signatureSchemeFor(privateKey);
  return new Uint8Array(sign(scheme.hash, data, privateKey));
}

/** Verify with the key's fixed scheme. Never throws for a bad signature: returns false. */
export function verifyWithKey(data: Uint8Array, signature: Uint8Array, publicKey: KeyObject): boolean {
  let scheme: SignatureScheme;
  try {
    scheme = signatureSchemeFor(publicKey);
  } catch {
    return false;
  }
  try {
    return verify(scheme.hash, data, publicKey, signature);
  } catch {
    return false;
  }
}

/** Public key from SubjectPublicKeyInfo DER, refused unless it is an accepted key type. */
export function publicKeyFromSpki(spki: Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new UnsupportedKeyError('not a valid SubjectPublicKeyInfo', {
      cause: e,
    });
  }
  describeKey(key);
  return key;
}

/**
 * SPKI exports already made, per key. node:crypto's export goes through OpenSSL 3's encoder and costs about two
 * P-256 signatures; issuance asks for the same key's SPKI twice (CSR check, certificate). KeyObjects are
 * immutable, and weak keys let a key's entry go with it.
 */
const exportedSpki = new WeakMap<KeyObject, Uint8Array>();

/**
 * Records `spki` as the export of `key`, which the caller has just imported from exactly these bytes and knows to
 * be in node:crypto's own encoding (csr.ts: strict DER of a named-curve EC, Ed25519 or RSA-with-NULL key, which
 * OpenSSL writes back unchanged; test/x509/csr-der.test.ts holds it to that).
 */
export function rememberSpkiExport(key: KeyObject, spki: Uint8Array): void {
  if (key.type === 'public' && !exportedSpki.has(key)) exportedSpki.set(key, spki.slice());
}

/** SubjectPublicKeyInfo DER of a public (or private) key; a fresh copy each time. */
export function spkiDer(key: KeyObject): Uint8Array {
  let der = exportedSpki.get(key);
  if (der === undefined) {
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    der = new Uint8Array(pub.export({ format: 'der', type: 'spki' }));
    exportedSpki.set(key, der);
  }
  return der.slice();
}
