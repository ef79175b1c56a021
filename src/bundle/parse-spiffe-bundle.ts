import { createPublicKey, JsonWebKey, KeyObject } from 'node:crypto';
import { BundleError, InvalidBundleError, isLanyardError } from '../errors';
import type { TrustDomain } from '../spiffe';
import { ParsedCertificate } from '../x509/certificate';
import { JWT_SVID_USE, SUPPORTED_KEY_TYPES, X509_SVID_USE } from './spiffe-bundle-format';
import { X509Bundle } from './x509-bundle';

/** JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4). */
const SECRET_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
/** JWK members that carry public key material, for EC, RSA and OKP keys. */
const PUBLIC_KEY_MEMBERS = ['crv', 'x', 'y', 'n', 'e'];
const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

type Json = Record<string, unknown>;

/**
 * Read a SPIFFE bundle (SPIFFE Trust Domain and Bundle §4) for `trustDomain`, which the caller knows from
 * configuration: the document does not say whose it is.
 *
 * - `keys` must be present; an empty list is valid and means no SVID of the trust domain verifies.
 * - Entries whose `use` is missing or unknown, or whose `kty` is not EC, RSA or OKP, are ignored (§4.1.3).
 * - An x509-svid entry must hold exactly one CA certificate in `x5c`, whose key matches the entry's `kty`
 *   and key parameters; a jwt-svid entry must have a unique `kid` and a readable public key. Either kind
 *   carrying private key material is refused. A broken entry of a known `use` fails the whole bundle rather
 *   than being skipped: a half-read bundle hides the publisher's mistake until a rotation depends on it.
 *
 * @throws BundleError (ERR_INVALID_BUNDLE) with the entry index and the rule it broke.
 */
export function parseSpiffeBundle(trustDomain: TrustDomain, json: string | Uint8Array | object): X509Bundle {
  const fail = (message: string, cause?: unknown): BundleError =>
    new InvalidBundleError(
      `invalid SPIFFE bundle for "${trustDomain.name}": ${message}`,
      cause === undefined ? undefined : { cause },
    );

  const doc = toDocument(json, fail);
  const sequence = counter(doc, 'spiffe_sequence', fail);
  const refreshHint = counter(doc, 'spiffe_refresh_hint', fail);
  // §4.1.3: "keys" MUST be present. Missing is an error; present but empty is a valid, distrusting bundle.
  if (!Array.isArray(doc.keys)) {
    throw fail(doc.keys === undefined ? '"keys" must be present' : '"keys" must be an array');
  }

  const x509Authorities: ParsedCertificate[] = [];
  const jwtAuthorities = new Map<string, KeyObject>();
  doc.keys.forEach((entry: unknown, i: number) => {
    if (!isObject(entry)) throw fail(`keys[${i}] is not a JSON object`);
    const use = entry.use;
    if (use !== X509_SVID_USE && use !== JWT_SVID_USE) return; // unknown or missing use: ignored (§4.2.2)
    const at = (message: string, cause?: unknown) => fail(`keys[${i}] (${use}): ${message}`, cause);

    if (typeof entry.kty !== 'string' || entry.kty === '') throw at('"kty" must be set');
    if (!SUPPORTED_KEY_TYPES.has(entry.kty)) return; // unknown key type: ignored (§4.2.1)
    const secret = SECRET_MEMBERS.find((m) => m in entry);
    if (secret !== undefined) throw at(`carries private key material ("${secret}")`);

    if (use === X509_SVID_USE) {
      x509Authorities.push(readX509Entry(entry, at));
    } else {
      const [kid, key] = readJwtEntry(entry, at);
      if (jwtAuthorities.has(kid)) throw at(`"kid" ${JSON.stringify(kid)} appears more than once`);
      jwtAuthorities.set(kid, key);
    }
  });

  try {
    return new X509Bundle(trustDomain, { x509Authorities, jwtAuthorities, sequence, refreshHint });
  } catch (e) {
    if (e instanceof BundleError) throw fail(e.message, e);
    throw e;
  }
}

type Fail = (message: string, cause?: unknown) => BundleError;

function toDocument(json: string | Uint8Array | object, fail: Fail): Json {
  let value: unknown = json;
  if (json instanceof Uint8Array) {
    try {
      value = new TextDecoder('utf-8', { fatal: true }).decode(json);
    } catch (e) {
      throw fail('not UTF-8 text', e);
    }
  }
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch (e) {
      throw fail(`not valid JSON: ${e instanceof Error ? e.message : String(e)}`, e);
    }
  }
  if (!isObject(value)) throw fail('the document must be a JSON object (a JWK Set)');
  return value;
}

/** §4.1.1/§4.1.2: optional integers. null is read as absent, as other implementations do. */
function counter(doc: Json, name: string, fail: Fail): number | undefined {
  const value = doc[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    // Above 2^53 JSON.parse has already rounded the value, so it cannot be trusted to order updates.
    throw fail(`"${name}" must be a non-negative integer no larger than 2^53-1`);
  }
  return value;
}

function readX509Entry(entry: Json, at: Fail): ParsedCertificate {
  const x5c = entry.x5c;
  if (!Array.isArray(x5c)) throw at('"x5c" must be set to an array holding the CA certificate');
  // X509-SVID §6.1: exactly one certificate. go-spiffe refuses other counts too; guessing which of several
  // certificates the publisher meant to trust is not a verifier's call.
  if (x5c.length !== 1) throw at(`"x5c" must hold exactly one certificate, found ${x5c.length}`);
  const b64: unknown = x5c[0];
  // RFC 7517 §4.7: standard base64 (not base64url), no line breaks.
  if (typeof b64 !== 'string' || b64 === '' || !STD_BASE64.test(b64)) {
    throw at('"x5c"[0] must be the standard-base64 DER of a certificate');
  }
  let cert: ParsedCertificate;
  try {
    cert = ParsedCertificate.fromDer(new Uint8Array(Buffer.from(b64, 'base64')));
  } catch (e) {
    if (!isLanyardError(e)) throw e;
    throw at(`"x5c"[0] is not a valid X.509 certificate: ${e.message}`, e);
  }

  const certKty = jwkKeyType(cert.publicKey);
  if (certKty !== entry.kty) {
    throw at(`"kty" is "${String(entry.kty)}" but the certificate's key is ${certKty ?? 'of no JWK type'}`);
  }
  // The key parameters are redundant with the certificate, but a publisher that wrote the wrong ones has a
  // bug we want to hear about. Entries that leave them out entirely are accepted: the certificate is what
  // the verifier uses.
  if (PUBLIC_KEY_MEMBERS.some((m) => m in entry)) {
    const key = importPublicJwk(entry, at);
    const same = Buffer.from(key.export({ format: 'der', type: 'spki' })).equals(Buffer.from(cert.spkiDer));
    if (!same) throw at("the key parameters do not match the certificate's public key");
  }
  return cert;
}

function readJwtEntry(entry: Json, at: Fail): [string, KeyObject] {
  // JWT-SVID §6.1: the kid MUST be set, since tokens name their signing key by it.
  if (typeof entry.kid !== 'string' || entry.kid === '') throw at('"kid" must be set to a non-empty string');
  return [entry.kid, importPublicJwk(entry, at)];
}

/** Import only the public members, so no other JWK member can change what node:crypto builds. */
function importPublicJwk(entry: Json, at: Fail): KeyObject {
  const jwk: JsonWebKey = { kty: entry.kty as string };
  for (const m of PUBLIC_KEY_MEMBERS) {
    const v = entry[m];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw at(`"${m}" must be a string`);
    jwk[m] = v;
  }
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch (e) {
    throw at(`the key parameters do not form a valid ${String(entry.kty)} public key`, e);
  }
}

function jwkKeyType(key: KeyObject): string | undefined {
  switch (key.asymmetricKeyType) {
    case 'ec':
      return 'EC';
    case 'rsa':
    case 'rsa-pss':
      return 'RSA';
    case 'ed25519':
    case 'ed448':
    case 'x25519':
    case 'x448':
      return 'OKP';
    default:
      return undefined;
  }
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
