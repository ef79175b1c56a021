/**
 * signCrl's refusals of arguments it cannot sign. What OpenSSL makes of a CRL it signs is proved in
 * test/integration/interop/crl-openssl.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encodeRevokedEntries, revokedEntryDer, signCrl } from '../../src/ca/crl';
import { derSequence, derTime, derUnsignedInteger } from '../../src/x509/der-writer';
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

  it('encodes revoked entries in one buffer exactly as the nested DER writers do', () => {
    const reference = (serialHex: string, at: Date): Uint8Array =>
      derSequence(
        derUnsignedInteger(Buffer.from(serialHex.length % 2 === 1 ? `0${serialHex}` : serialHex, 'hex')),
        derTime(at),
      );
    const at = new Date('2026-12-05T04:40:07.999Z');
    const later = new Date('2051-01-01T00:00:00Z'); // GeneralizedTime from 2050 on
    const serials = [
      '0',
      '1',
      'f', // odd length
      '80', // high bit: a sign byte is added
      '7f',
      '00ff', // leading zero byte dropped
      '0000000001',
      'ff'.repeat(32), // 32 bytes with the high bit: 33 with the sign byte
      ...Array.from({ length: 200 }, () => randomBytes(16).toString('hex').replace(/^0+/, '') || '0'),
    ];
    const list = serials.flatMap((serialHex, i) => [
      { serialHex, revokedAtMs: at.getTime() + i * 700 },
      { serialHex, revokedAtMs: later.getTime() },
    ]);
    const encoded = encodeRevokedEntries(list);
    assert.equal(encoded.length, list.length);
    list.forEach((e, i) => {
      const expected = reference(e.serialHex, new Date(Math.floor(e.revokedAtMs / 1000) * 1000));
      assert.deepEqual(Buffer.from(encoded[i]!), Buffer.from(expected), e.serialHex);
    });
    assert.deepEqual(
      Buffer.from(revokedEntryDer({ serialHex: '80', revokedAt: at })),
      Buffer.from(reference('80', new Date('2026-12-05T04:40:07Z'))),
    );
    for (const bad of ['', 'AB', '0x1', 'f'.repeat(65), '12 3']) {
      assert.throws(
        () => encodeRevokedEntries([{ serialHex: bad, revokedAtMs: at.getTime() }]),
        /not a serial/,
      );
    }
  });
});
