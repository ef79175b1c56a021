/** The audit key file: created 0600, refused when others can read it or when it is not Ed25519; never printed. */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AuditPublicKey, AuditSigningKey, AUDIT_KEY_USE } from '../../src/audit/audit-key';
import { signCheckpoint, checkpointSignatureValid } from '../../src/audit/checkpoint';
import { emptyHead } from '../../src/audit/chain';
import { ErrorCode, isLanyardError } from '../../src/errors';
import { CHAIN } from './helpers';
import { tempDir } from '../support/tmp';

describe('audit signing key', () => {
  const dir = tempDir('audit');
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is created 0600 in a 0700 directory and loads again as the same key', () => {
    const file = path.join(dir, 'audit', 'audit-key.pem');
    const a = AuditSigningKey.loadOrCreate(file);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
    const b = AuditSigningKey.loadOrCreate(file);
    assert.equal(b.publicKey.keyId, a.publicKey.keyId);
    // Serialising the key object (a logger reaching it) shows the key id only.
    assert.deepEqual(JSON.parse(JSON.stringify(a)), { keyId: a.publicKey.keyId });
    assert.ok(!JSON.stringify(a).includes('PRIVATE'));
  });

  it('refuses a key file group or others can read, and a key that is not Ed25519', () => {
    const open = path.join(dir, 'open.pem');
    AuditSigningKey.loadOrCreate(open);
    fs.chmodSync(open, 0o644);
    assert.throws(
      () => AuditSigningKey.loadOrCreate(open),
      (e: unknown) => isLanyardError(e) && e.code === ErrorCode.KEY_FILE_INSECURE,
    );
    const ec = path.join(dir, 'ec.pem');
    fs.writeFileSync(
      ec,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
      {
        mode: 0o600,
      },
    );
    assert.throws(
      () => AuditSigningKey.loadOrCreate(ec),
      (e: unknown) => isLanyardError(e) && e.code === ErrorCode.KEY_UNREADABLE,
    );
    const junk = path.join(dir, 'junk.pem');
    fs.writeFileSync(junk, 'not a key', { mode: 0o600 });
    assert.throws(
      () => AuditSigningKey.loadOrCreate(junk),
      (e: unknown) =>
        isLanyardError(e) && e.code === ErrorCode.KEY_UNREADABLE && !e.message.includes('not a key'),
    );
  });

  it('the public key travels as a JWK (in a SPIFFE bundle) and as PEM, and checks checkpoints; other keys do not', () => {
    const key = AuditSigningKey.generate();
    const jwk = key.publicKey.jwk();
    assert.equal(jwk.use, AUDIT_KEY_USE);
    const fromBundle = AuditPublicKey.fromSpiffeBundle({ keys: [{ kty: 'EC', use: 'x509-svid' }, jwk] });
    assert.equal(fromBundle?.keyId, key.publicKey.keyId);
    assert.equal(AuditPublicKey.fromSpiffeBundle({ keys: [{ kty: 'EC', use: 'x509-svid' }] }), undefined);
    assert.equal(AuditPublicKey.fromPem(key.publicKey.pem()).keyId, key.publicKey.keyId);
    const c = signCheckpoint(emptyHead(CHAIN), key, new Date());
    assert.equal(checkpointSignatureValid(c, fromBundle!), true);
    assert.equal(checkpointSignatureValid(c, AuditSigningKey.generate().publicKey), false);
    assert.equal(checkpointSignatureValid({ ...c, time: new Date(0).toISOString() }, key.publicKey), false);
    assert.throws(
      () => AuditPublicKey.fromJwk({ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }),
      (e: unknown) => isLanyardError(e) && e.code === ErrorCode.UNSUPPORTED_KEY,
    );
  });
});
