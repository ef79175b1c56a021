import type { KeyObject } from 'node:crypto';
import { InvalidArgumentError, MalformedEvidenceError } from '../errors';
import { signWithKey } from '../x509/keys';

/**
 * The x509pop challenge as both sides compute it. The runtime's key signs
 *
 *     "lanyard x509pop challenge v1" || 0x00 || nonce (32 bytes)
 *
 * with the key's one fixed scheme (x509/keys.ts: ECDSA P-256/SHA-256, P-384/SHA-384, RSA PKCS#1 v1.5/SHA-256,
 * Ed25519). The context string comes first, as in TLS 1.3's CertificateVerify: whatever else the provisioning
 * key signs (TLS handshakes, CSRs, other protocols) cannot begin with these bytes, so an answer can never be
 * replayed as, or obtained from, a signature made for something else. The NUL ends the context, and the nonce
 * has a fixed length, so the message is unambiguous.
 *
 * This file is shared by the server attestor and the client library, and imports nothing server-side.
 */
export const X509POP_CONTEXT = 'lanyard x509pop challenge v1';
export const X509POP_NONCE_BYTES = 32;

/** The exact bytes signed for `nonce`. */
export function x509PopSignedMessage(nonce: Uint8Array): Uint8Array {
  if (nonce.length !== X509POP_NONCE_BYTES) {
    throw new MalformedEvidenceError(
      `x509pop challenge must be a ${X509POP_NONCE_BYTES}-byte nonce, got ${nonce.length} bytes`,
    );
  }
  return Buffer.concat([Buffer.from(X509POP_CONTEXT, 'ascii'), Buffer.of(0), nonce]);
}

/**
 * Client side: the challenge_response for AttestResponse.challenge, signed with the private key of the
 * provisioning certificate sent as evidence. Refuses a challenge that is not a 32-byte nonce, so a server
 * cannot use the runtime as a signing oracle for other lengths of message.
 */
export function answerX509PopChallenge(challenge: Uint8Array, privateKey: KeyObject): Uint8Array {
  if (privateKey.type !== 'private') {
    throw new InvalidArgumentError('answerX509PopChallenge needs the private key');
  }
  return signWithKey(x509PopSignedMessage(challenge), privateKey);
}
