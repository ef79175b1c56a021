import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DerFramingError, encodeTlv, readOid, readSingleTlv, TAG_OID } from '../../src/x509/der';
import { propertyRuns } from '../support/property';

/**
 * readOid answers OIDs of up to 12 octets from a memo keyed by their exact octets (the same twenty OIDs fill
 * every certificate). The memo must never answer for other octets: not for a longer or shorter encoding with the
 * same prefix, not for a malformed encoding of the same length, and not once it is full.
 */

/** An independent reading of OBJECT IDENTIFIER contents, or undefined where DER forbids them. */
function referenceOid(contents: Uint8Array): string | undefined {
  if (contents.length === 0 || (contents[contents.length - 1]! & 0x80) !== 0) return undefined;
  const subs: bigint[] = [];
  let v = 0n;
  let start = true;
  for (const b of contents) {
    if (start && b === 0x80) return undefined;
    v = (v << 7n) | BigInt(b & 0x7f);
    start = (b & 0x80) === 0;
    if (start) {
      subs.push(v);
      v = 0n;
    }
  }
  const first = subs[0]!;
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n];
  return [...head, ...subs.slice(1)].join('.');
}

function read(contents: Uint8Array): string | Error {
  const der = encodeTlv(TAG_OID, contents);
  try {
    return readOid(der, readSingleTlv(der));
  } catch (e) {
    assert.ok(e instanceof DerFramingError, String(e));
    return e;
  }
}

describe('readOid', () => {
  it('gives the same answer from the memo as decoding, for any octets of up to 14 bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 14 }), (contents) => {
        const want = referenceOid(contents);
        for (let round = 0; round < 2; round++) {
          const got = read(contents);
          if (want === undefined)
            assert.ok(got instanceof Error, `accepted ${Buffer.from(contents).toString('hex')}`);
          else assert.equal(got, want);
        }
      }),
      { numRuns: propertyRuns(5000) },
    );
  });

  it('tells apart encodings that share a prefix or differ in one octet, before and after they are memoised', () => {
    const cases: [number[], string | undefined][] = [
      [[0x55, 0x1d, 0x11], '2.5.29.17'],
      [[0x55, 0x1d, 0x11, 0x00], '2.5.29.17.0'],
      [[0x55, 0x1d], '2.5.29'],
      [[0x55, 0x1d, 0x91], undefined], // ends inside a sub-identifier
      [[0x55, 0x80, 0x1d], undefined], // non-minimal sub-identifier
      [[0x2b, 0x06, 0x01, 0x04, 0x01, 0x90, 0x80, 0x00, 0x01, 0x01], '1.3.6.1.4.1.262144.1.1'],
      [[0x2b, 0x06, 0x01, 0x04, 0x01, 0x90, 0x80, 0x00, 0x01, 0x02], '1.3.6.1.4.1.262144.1.2'],
      [[0x2b, 0x06, 0x01, 0x04, 0x01, 0x90, 0x80, 0x00, 0x01, 0x81], undefined],
      // 12 octets (the longest memoised) and 13 (decoded every time) with the same first twelve.
      [[0x2b, 0x06, 0x01, 0x04, 0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07], '1.3.6.1.4.1.1.2.3.4.5.6.7'],
      [
        [0x2b, 0x06, 0x01, 0x04, 0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08],
        '1.3.6.1.4.1.1.2.3.4.5.6.7.8',
      ],
    ];
    for (let round = 0; round < 2; round++) {
      for (const [octets, want] of cases) {
        const got = read(Uint8Array.from(octets));
        if (want === undefined)
          assert.ok(got instanceof Error, `round ${round}: accepted ${octets.join(',')}`);
        else assert.equal(got, want, `round ${round}`);
      }
    }
  });

  it('still decodes correctly once the memo is full', () => {
    // More distinct OIDs than the memo holds: the ones after it is full are decoded each time.
    for (let i = 0; i < 1200; i++) {
      const contents = Uint8Array.of(0x2a, 0x03, 0x81 + (i >> 7), i & 0x7f);
      assert.equal(read(contents), `1.2.3.${((1 + (i >> 7)) << 7) | (i & 0x7f)}`);
    }
    assert.equal(read(Uint8Array.of(0x2a, 0x03, 0x81, 0x00)), '1.2.3.128');
    assert.equal(read(Uint8Array.of(0x2a, 0x03, 0x90, 0x2f)), '1.2.3.2095');
  });
});
