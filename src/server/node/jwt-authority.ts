/**
 * The key that signs JWT-SVIDs for the trust domain (JWT-SVID standard): one EC P-256 key (ES256, the
 * standard's default), kept by the server's key manager like the X.509 CA keys (0600 PKCS#8 in `keys/`), so
 * tokens issued before a restart still validate after it. Its public half is published to agents with a
 * `kid` (JWT-SVID §3: a bundle's JWT keys carry one), and agents serve it as the trust domain's JWT bundle.
 *
 * Signing uses node:crypto with the IEEE P1363 (r||s) signature encoding that JWS requires for ECDSA.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import { isLanyardError, ErrorCode } from '../../errors';
import type { KeyManager } from '../../ca';
import { JWT_SVID_USE, type SpiffeBundleJwk } from '../../bundle/spiffe-bundle-format';

/** The key manager's id of the JWT-SVID signing key. */
export const JWT_KEY_ID = 'jwt-svid-es256-1';

export interface JwtSvidClaims {
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
}

export class JwtAuthority {
  /** The `kid` in token headers and in the bundle: derived from the public key, so it names exactly one key. */
  readonly keyId: string;
  readonly publicKey: KeyObject;
  /** When published keys stop being useful to verifiers; the key does not rotate yet, so far away. */
  readonly expiresAt: Date;
  private readonly privateKey: KeyObject;

  private constructor(privateKey: KeyObject, publicKey: KeyObject) {
    this.privateKey = privateKey;
    this.publicKey = publicKey;
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    this.keyId = createHash('sha256').update(spki).digest('base64url').slice(0, 32);
    this.expiresAt = new Date(Date.UTC(9999, 11, 31));
  }

  /** Loads the signing key, or creates it on first use. */
  static async open(keys: KeyManager): Promise<JwtAuthority> {
    try {
      const k = await keys.getKey(JWT_KEY_ID);
      return new JwtAuthority(k.privateKey, k.publicKey);
    } catch (e) {
      if (!isLanyardError(e) || e.code !== ErrorCode.NOT_FOUND) throw e;
    }
    const k = await keys.generateKey(JWT_KEY_ID, 'ec-p256');
    return new JwtAuthority(k.privateKey, k.publicKey);
  }

  /** The key's entry in the SPIFFE bundle document: use jwt-svid, with its kid (JWT-SVID §3). */
  jwk(): SpiffeBundleJwk {
    const { kty, ...params } = this.publicKey.export({ format: 'jwk' });
    return { kty: String(kty), ...params, use: JWT_SVID_USE, kid: this.keyId };
  }

  /** A compact JWS (header.payload.signature), ES256, with this key's `kid`. */
  sign(claims: JwtSvidClaims): string {
    const header = { alg: 'ES256', kid: this.keyId, typ: 'JWT' };
    const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), { key: this.privateKey, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  }
}

function b64(s: string): string {
  return Buffer.from(s).toString('base64url');
}
