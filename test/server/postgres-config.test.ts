import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ErrorCode, isLanyardError } from '../../src/errors';
import { CONFIG_DEFAULTS, resolveConfig } from '../../src/server/config';
import { POSTGRES_PASSWORD_ENV, postgresPassword } from '../../src/server/open-store';

describe('store.postgres config', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-pgcfg-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const resolve = (raw: unknown) =>
    resolveConfig(raw, { baseDir: dir, cwd: dir, source: 'test.yaml', env: {} });
  const configError = (e: unknown): boolean => isLanyardError(e) && e.code === ErrorCode.INVALID_CONFIG;

  it('is SQLite when absent', () => {
    assert.equal(resolve({}).postgres, undefined);
  });

  it('resolves url, pool size (default) and a relative password file', () => {
    fs.writeFileSync(path.join(dir, 'pw'), 'secret\n', { mode: 0o600 });
    const url = 'postgresql://lanyard@db.internal:5432/lanyard';
    assert.deepEqual(resolve({ store: { postgres: { url, password_file: 'pw' } } }).postgres, {
      url,
      poolSize: CONFIG_DEFAULTS.postgres_pool_size,
      passwordFile: path.join(dir, 'pw'),
    });
    assert.equal(resolve({ store: { postgres: { url, pool_size: 3 } } }).postgres?.poolSize, 3);
  });

  it('refuses a password in the URL without echoing it, unknown keys, and a bad pool size', () => {
    for (const url of [
      'postgresql://lanyard:s3cr3t-pw@db/lanyard',
      'postgresql://lanyard@db/lanyard?password=s3cr3t-pw',
    ]) {
      assert.throws(
        () => resolve({ store: { postgres: { url } } }),
        (e: Error) =>
          configError(e) && /store\.postgres\.url/.test(e.message) && !e.message.includes('s3cr3t-pw'),
      );
    }
    assert.throws(
      () => resolve({ store: { postgres: { url: 'postgresql://x@db/l', password: 'p' } } }),
      configError,
    );
    assert.throws(
      () => resolve({ store: { postgres: { url: 'postgresql://x@db/l', pool_size: 0 } } }),
      configError,
    );
    assert.throws(
      () => resolve({ store: { postgres: { url: 'postgresql://x@db/l', password_file: 'missing' } } }),
      configError,
    );
  });

  it('reads the password from a 0600 file (first line), else the environment', () => {
    const file = path.join(dir, 'pw');
    fs.writeFileSync(file, 'from-file\nignored\n', { mode: 0o600 });
    assert.equal(postgresPassword(file, { [POSTGRES_PASSWORD_ENV]: 'from-env' }), 'from-file');
    assert.equal(postgresPassword(undefined, { [POSTGRES_PASSWORD_ENV]: 'from-env' }), 'from-env');
    assert.equal(postgresPassword(undefined, {}), undefined);
  });

  it('refuses a password file that group or others can read, and an empty one, never echoing contents', () => {
    const file = path.join(dir, 'pw');
    fs.writeFileSync(file, 'leaky-secret\n', { mode: 0o640 });
    fs.chmodSync(file, 0o640);
    assert.throws(
      () => postgresPassword(file, {}),
      (e: Error) => configError(e) && /chmod 600/.test(e.message) && !e.message.includes('leaky-secret'),
    );
    fs.writeFileSync(file, '\n', { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    assert.throws(
      () => postgresPassword(file, {}),
      (e: Error) => configError(e) && /empty/.test(e.message),
    );
  });
});
