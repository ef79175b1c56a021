import { createPublicKey, KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Name } from '@peculiar/asn1-x509';
import {
  CertExpiredError,
  InvalidArgumentError,
  KeyUsageInvalidError,
  MalformedCertificateError,
  NotACaError,
  PathLenExceededError,
} from '../errors';
import { ParsedCertificate } from './certificate';

/** A CA certificate and its private key: what signs intermediates and SVIDs. */
export interface Issuer {
  cert: ParsedCertificate;
  key: KeyObject;
}

/**
 * Returns the issuer's key identifier, which becomes the authorityKeyIdentifier of what it signs.
 * Refuses to sign with anything that a verifier would not accept as an issuer, so a misconfigured CA fails
 * at issuance with a clear reason rather than producing certificates that fail somewhere else later.
 */
export function checkIssuer(issuer: Issuer, now: Date, issuingCa: boolean): { keyId: Uint8Array } {
  const { cert, key } = issuer;
  if (!cert.isCa) {
    throw new NotACaError('issuer certificate is not a CA (basicConstraints cA is not true)');
  }
  if (cert.keyUsage && !cert.keyUsage.keyCertSign) {
    throw new KeyUsageInvalidError('issuer certificate keyUsage lacks keyCertSign');
  }
  if (issuingCa && cert.basicConstraints?.pathLen === 0) {
    throw new PathLenExceededError('issuer has pathLenConstraint 0: it may not sign a CA');
  }
  if (cert.notAfter.getTime() <= now.getTime()) {
    throw new CertExpiredError(`issuer certificate expired at ${cert.notAfter.toISOString()}`);
  }
  if (cert.subjectKeyId === undefined) {
    // Without it the new certificate could carry no authorityKeyIdentifier, which RFC 5280 requires.
    throw new InvalidArgumentError('issuer certificate has no subjectKeyIdentifier');
  }
  if (key.type !== 'private') {
    throw new InvalidArgumentError('issuer key must be a private key');
  }
  if (!matchedKeys.get(key)?.has(cert)) {
    if (!cert.publicKey.equals(createPublicKey(key))) {
      throw new InvalidArgumentError('issuer key does not match the issuer certificate');
    }
    const certs = matchedKeys.get(key) ?? new WeakSet<ParsedCertificate>();
    certs.add(cert);
    matchedKeys.set(key, certs);
  }
  return { keyId: cert.subjectKeyId };
}

/**
 * Issuer key/certificate pairs already found to match. Deriving and comparing the public key costs about a
 * third of a P-256 signature, on every certificate a CA signs; both objects are immutable, so once per pair is
 * enough. Weak on both sides, so a retired CA's entries go with it.
 */
const matchedKeys = new WeakMap<KeyObject, WeakSet<ParsedCertificate>>();

/**
 * Decoded subject names of issuer certificates: a CA signs many certificates with one ParsedCertificate, so
 * its name is decoded once. Keyed weakly, so a retired CA's entry goes with it.
 */
const issuerNames = new WeakMap<ParsedCertificate, Name>();

/**
 * The issuer field of a certificate signed by `cert`: its subject, byte for byte. Path builders compare
 * names, and a re-encoding that changed a string type would silently break chains to upstream CAs,
 * so a subject that does not survive the schema round trip is refused. Only the subject's own bytes
 * (`subjectDer`, from the fast parser) go through the schema decoder, never the whole certificate.
 */
export function issuerNameOf(cert: ParsedCertificate): Name {
  const cached = issuerNames.get(cert);
  if (cached !== undefined) return cached;
  let name: Name;
  try {
    name = AsnConvert.parse(cert.subjectDer, Name);
  } catch (e) {
    throw new MalformedCertificateError(
      `issuer subject name cannot be decoded: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  const encoded = new Uint8Array(AsnConvert.serialize(name));
  if (!Buffer.from(encoded).equals(Buffer.from(cert.subjectDer))) {
    throw new InvalidArgumentError(
      'issuer subject name cannot be reproduced byte for byte (non-DER encoding in the issuer certificate)',
    );
  }
  issuerNames.set(cert, name);
  return name;
}

/** notAfter of a certificate the issuer signs: never past the issuer's own notAfter. */
export function capNotAfter(requested: Date, issuer: ParsedCertificate): Date {
  return requested.getTime() > issuer.notAfter.getTime() ? issuer.notAfter : requested;
}

/**
 * A certificate is never valid before its issuer: backdating (or a `now` before the issuer's own start) would
 * otherwise yield a window in which the certificate looks valid but its path is not.
 */
export function clampNotBefore(requested: Date, issuer: ParsedCertificate): Date {
  return requested.getTime() < issuer.notBefore.getTime() ? issuer.notBefore : requested;
}
