import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskKeyManager, KeyManager, MemoryKeyManager } from '../../src/ca';
import {
  AlreadyExistsError,
  ErrorCode,
  KeyManagerError,
  LanyardError,
  NotFoundError,
} from '../../src/errors';
import { assertNoSecrets, errorText, secretFragments } from '../support/ca';
import { removeDir, tempDir } from '../support/tmp';
import { rejectsWithCodeAs } from '../support/refusal';

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

/** The contract every key manager keeps; each implementation runs it. */
function keyManagerContract(name: string, make: () => { km: KeyManager; cleanup: () => void }): void {
  describe(`${name} key manager contract`, () => {
    let km: KeyManager;
    let cleanup: () => void;
    beforeEach(() => ({ km, cleanup } = make()));
    afterEach(() => cleanup());

    it('generates a key pair of the requested type and gives the same key back by id', async () => {
      const made = await km.generateKey('ca-1', 'ec-p384');
      assert.equal(made.id, 'ca-1');
      assert.equal(made.privateKey.type, 'private');
      assert.equal(made.privateKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
      assert.ok(createPublicKey(made.privateKey).equals(made.publicKey));
      const got = await km.getKey('ca-1');
      assert.ok(got.publicKey.equals(made.publicKey));
      assert.ok(createPublicKey(got.privateKey).equals(made.publicKey));
    });

    it('never replaces an existing key', async () => {
      const first = await km.generateKey('ca-1', 'ec-p256');
      await rejectsWithCodeAs(
        km.generateKey('ca-1', 'ec-p256'),
        AlreadyExistsError,
        ErrorCode.ALREADY_EXISTS,
      );
      assert.ok((await km.getKey('ca-1')).publicKey.equals(first.publicKey));
    });

    it('lists ids sorted, deletes idempotently, and reports a missing key as not found', async () => {
      await km.generateKey('b', 'ed25519');
      await km.generateKey('a', 'ec-p256');
      assert.deepEqual(await km.listKeys(), ['a', 'b']);
      await km.deleteKey('a');
      await km.deleteKey('a');
      assert.deepEqual(await km.listKeys(), ['b']);
      await rejectsWithCodeAs(km.getKey('a'), NotFoundError, ErrorCode.NOT_FOUND, /no key a\b/);
    });

    it('refuses ids that could escape the key directory or hide as dot files', async () => {
      for (const bad of ['', '../x', 'a/b', '.hidden', 'x'.repeat(129), 'a b']) {
        await rejectsWithCodeAs(km.generateKey(bad, 'ec-p256'), LanyardError, ErrorCode.INVALID_ARGUMENT);
        await rejectsWithCodeAs(km.getKey(bad), LanyardError, ErrorCode.INVALID_ARGUMENT);
      }
    });
  });
}

keyManagerContract('memory', () => ({ km: new MemoryKeyManager(), cleanup: () => {} }));
keyManagerContract('disk', () => {
  const dir = tempDir('keys');
  return { km: DiskKeyManager.inDataDir(dir), cleanup: () => removeDir(dir) };
});

describe('DiskKeyManager', () => {
  let dataDir: string;
  let keysDir: string;
  beforeEach(() => {
    dataDir = tempDir('disk-keys');
    keysDir = join(dataDir, 'keys');
  });
  afterEach(() => removeDir(dataDir));

  it('writes one PKCS#8 PEM file per key, 0600, in a 0700 <dataDir>/keys, with no temp file left', async () => {
    const km = DiskKeyManager.inDataDir(dataDir);
    const made = await km.generateKey('x509-ca-1', 'ec-p256');
    assert.deepEqual(readdirSync(keysDir), ['x509-ca-1.pem']);
    assert.equal(mode(keysDir), 0o700);
    const file = join(keysDir, 'x509-ca-1.pem');
    assert.equal(mode(file), 0o600);
    const pem = readFileSync(file, 'utf8');
    assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.ok(createPublicKey(createPrivateKey(pem)).equals(made.publicKey));
  });

  it('keeps keys across instances (a restart) and narrows a key directory that is too open', async () => {
    const made = await DiskKeyManager.inDataDir(dataDir).generateKey('k', 'rsa-2048');
    chmodSync(keysDir, 0o755);
    const again = DiskKeyManager.inDataDir(dataDir);
    assert.ok((await again.getKey('k')).publicKey.equals(made.publicKey));
    assert.equal(mode(keysDir), 0o700);
  });

  it('removes temp files a crash left between staging and publishing, and lists only key files', async () => {
    mkdirSync(keysDir, { recursive: true, mode: 0o700 });
    const stale = join(keysDir, '.x509-ca-9.pem.0123456789ab.tmp');
    writeFileSync(stale, 'half a key', { mode: 0o600 });
    writeFileSync(join(keysDir, 'README'), 'not a key');
    const km = DiskKeyManager.inDataDir(dataDir);
    assert.deepEqual(await km.listKeys(), []);
    assert.deepEqual(readdirSync(keysDir).sort(), ['README']);
  });

  it('refuses a key file that group or others can read, without showing its content', async () => {
    const km = DiskKeyManager.inDataDir(dataDir);
    const made = await km.generateKey('k', 'ec-p256');
    chmodSync(join(keysDir, 'k.pem'), 0o644);
    const e = await rejectsWithCodeAs(
      DiskKeyManager.inDataDir(dataDir).getKey('k'),
      KeyManagerError,
      ErrorCode.KEY_FILE_INSECURE,
      /k\.pem is accessible by group or others \(mode 644\); chmod 600 it/,
    );
    assertNoSecrets(errorText(e), secretFragments([made.privateKey]), 'error');
  });

  it('reports a damaged key file as ERR_KEY_UNREADABLE without repeating any of its bytes', async () => {
    const km = DiskKeyManager.inDataDir(dataDir);
    const made = await km.generateKey('k', 'ec-p256');
    const file = join(keysDir, 'k.pem');
    const pem = readFileSync(file, 'utf8');
    // Truncated, as a torn write on a file system without atomic rename might leave it.
    writeFileSync(file, pem.slice(0, pem.length - 40), { mode: 0o600 });
    const e = await rejectsWithCodeAs(
      km.getKey('k'),
      KeyManagerError,
      ErrorCode.KEY_UNREADABLE,
      /k\.pem is not an unencrypted PEM private key/,
    );
    assert.equal(e.cause, undefined, 'the parser error describes the bytes; it is not attached');
    assertNoSecrets(errorText(e), secretFragments([made.privateKey]), 'error');
  });

  it('refuses a key of a type the CA never signs with', async () => {
    mkdirSync(keysDir, { recursive: true, mode: 0o700 });
    const weak = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey;
    writeFileSync(join(keysDir, 'k.pem'), weak.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await rejectsWithCodeAs(
      DiskKeyManager.inDataDir(dataDir).getKey('k'),
      KeyManagerError,
      ErrorCode.KEY_UNREADABLE,
      /curve/,
    );
  });
});
