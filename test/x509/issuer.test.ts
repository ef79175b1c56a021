/**
 * checkIssuer remembers a certificate/key pair that matched (deriving the public key on every signature is
 * costly), and that memory never lets a different key sign under the certificate, before or after.
 */
import assert from 'node:assert/strict';
import { ErrorCode } from '../../src/errors';
import { checkIssuer } from '../../src/x509/issuer';
import { generateSigningKeyPair } from '../../src/x509/keys';
import { ParsedCertificate } from '../../src/x509/certificate';
import { asIssuer, createCa } from '../support/pki';

describe('checkIssuer key match', () => {
  const now = new Date();
  const refused = (fn: () => unknown): void =>
    assert.throws(fn, (e: { code?: string; message?: string }) => {
      assert.equal(e.code, ErrorCode.INVALID_ARGUMENT);
      assert.match(e.message ?? '', /does not match/);
      return true;
    });

  it('accepts the matching pair every time and refuses another key before and after it matched', () => {
    const ca = createCa();
    const other = generateSigningKeyPair('ec-p256').privateKey;
    refused(() => checkIssuer({ cert: ca.cert, key: other }, now, false));
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(checkIssuer(asIssuer(ca), now, false).keyId, ca.cert.subjectKeyId);
    }
    refused(() => checkIssuer({ cert: ca.cert, key: other }, now, false));
    // The right key with another CA's certificate is refused too: the memory is per pair, not per key.
    const second = createCa();
    refused(() => checkIssuer({ cert: second.cert, key: ca.key.privateKey }, now, false));
    // A fresh object for the same certificate bytes is checked on its own, and matches.
    assert.ok(
      checkIssuer({ cert: ParsedCertificate.fromDer(ca.cert.der), key: ca.key.privateKey }, now, false),
    );
  });
});
