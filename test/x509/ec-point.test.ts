import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { isUncompressedPointOnCurve } from '../../src/x509/ec-point';

/** The raw point of a fresh key, as node:crypto (OpenSSL) makes it: 0x04 || X || Y. */
function pointOf(namedCurve: 'P-256' | 'P-384'): Buffer {
  const jwk = generateKeyPairSync('ec', { namedCurve }).publicKey.export({ format: 'jwk' });
  return Buffer.concat([Buffer.of(0x04), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

describe('x509/ec-point: isUncompressedPointOnCurve', () => {
  for (const curve of ['P-256', 'P-384'] as const) {
    const size = curve === 'P-256' ? 32 : 48;

    it(`accepts points OpenSSL made on ${curve}`, () => {
      for (let i = 0; i < 20; i++) assert.equal(isUncompressedPointOnCurve(curve, pointOf(curve)), true);
    });

    it(`refuses ${curve} points off the curve, out of the field, compressed or of the other size`, () => {
      const p = pointOf(curve);
      const offCurve = Buffer.from(p);
      offCurve[offCurve.length - 1]! ^= 0x01;
      assert.equal(isUncompressedPointOnCurve(curve, offCurve), false);
      // x = 0xff..ff is larger than p for both curves.
      const outOfField = Buffer.from(p);
      outOfField.fill(0xff, 1, 1 + size);
      assert.equal(isUncompressedPointOnCurve(curve, outOfField), false);
      const compressed = Buffer.concat([Buffer.of(0x02 | (p[p.length - 1]! & 1)), p.subarray(1, 1 + size)]);
      assert.equal(isUncompressedPointOnCurve(curve, compressed), false);
      assert.equal(isUncompressedPointOnCurve(curve, Buffer.from([0x04, ...p.subarray(1), 0])), false);
      assert.equal(isUncompressedPointOnCurve(curve, Buffer.alloc(1 + 2 * size)), false);
      const other = curve === 'P-256' ? 'P-384' : 'P-256';
      assert.equal(isUncompressedPointOnCurve(other, p), false);
    });
  }
});
