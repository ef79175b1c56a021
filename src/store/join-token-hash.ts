import { createHash } from 'node:crypto';

/**
 * The only form of a join token the store ever sees. Looking a token up by its SHA-256 also keeps the
 * comparison free of timing leaks about the secret: an attacker learns nothing from how much of a hash
 * matched, because they cannot choose hash prefixes.
 */
export function hashJoinToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
