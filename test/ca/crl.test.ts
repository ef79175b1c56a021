/**
 * signCrl's refusals of arguments it cannot sign. What OpenSSL makes of a CRL it signs is proved in
 * test/integration/interop/crl-openssl.test.ts.
 */
import assert from 'node:assert/strict';
import { signCrl } from '../../src/ca/crl';
import { initDevCa } from '../../src/ca/dev-ca';
import { removeDir, tempDir } from '../support/tmp';

describe('signCrl', () => {
  const dir = tempDir('crl');
  after(() => removeDir(dir));
  const now = new Date();
  const hourLater = new Date(now.getTime() + 3600_000);

  it('refuses nextUpdate not after thisUpdate and malformed serials', () => {
    const ca = initDevCa({ trustDomain: 'crl.test', dir: `${dir}/args` });
    assert.throws(
      () => signCrl(ca, { crlNumber: 1n, thisUpdate: now, nextUpdate: now, revoked: [] }),
      /nextUpdate/,
    );
    assert.throws(
      () =>
        signCrl(ca, {
          crlNumber: 1n,
          thisUpdate: now,
          nextUpdate: hourLater,
          revoked: [{ serialHex: 'zz', revokedAt: now }],
        }),
      /not a serial/,
    );
  });
});
