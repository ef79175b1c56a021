import { createHash, randomBytes } from 'node:crypto';

/**
 * Join tokens carry a fixed prefix, like GitHub's `ghp_`: secret scanners and our own log scrubber can
 * recognise one wherever it leaks, and a person can tell what kind of secret they hold.
 */
export const JOIN_TOKEN_PREFIX = 'lanyard_jt_';
/** Matches a join token inside any text (32 random bytes, base64url: 43 characters). */
export const JOIN_TOKEN_PATTERN = /lanyard_jt_[A-Za-z0-9_-]{20,}/g;

/** A fresh token: 256 bits from the CSPRNG. */
export function generateJoinToken(): string {
  return JOIN_TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

/**
 * The only form of a join token the store ever sees. Looking a token up by its SHA-256 also keeps the
 * comparison free of timing leaks about the secret: an attacker learns nothing from how much of a hash
 * matched, because they cannot choose hash prefixes.
 */
export function hashJoinToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
