/**
 * Whether an uncompressed SEC1 point lies on P-256 or P-384, in a few microseconds of BigInt arithmetic.
 *
 * A verifier has to refuse a leaf whose key is no point of its curve, but it never uses that key itself (the TLS
 * handshake or the caller's own proof of possession does), and importing it into OpenSSL only to see whether it
 * parses costs more than a signature check. Both curves have cofactor 1, so a point with coordinates in the field
 * that satisfies the curve equation is in the prime-order group: this is the whole of OpenSSL's public-key check
 * for them (SP 800-56A 5.6.2.3.3, partial validation).
 */
interface Curve {
  readonly p: bigint;
  readonly b: bigint;
  readonly fieldBytes: number;
}

const CURVES: Readonly<Record<'P-256' | 'P-384', Curve>> = {
  'P-256': {
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
    fieldBytes: 32,
  },
  'P-384': {
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
    fieldBytes: 48,
  },
};

/** True when `point` is 0x04 || X || Y with X, Y in the field and y² = x³ − 3x + b (mod p). */
export function isUncompressedPointOnCurve(curveName: 'P-256' | 'P-384', point: Uint8Array): boolean {
  const curve = CURVES[curveName];
  const n = curve.fieldBytes;
  if (point.length !== 1 + 2 * n || point[0] !== 0x04) return false;
  const x = toBigInt(point.subarray(1, 1 + n));
  const y = toBigInt(point.subarray(1 + n));
  const { p, b } = curve;
  if (x >= p || y >= p) return false;
  // One reduction per side: x³ − 3x + b is below p³ and negative only for tiny x.
  const rhs = (x * (x * x - 3n) + b) % p;
  return (y * y) % p === (rhs < 0n ? rhs + p : rhs);
}

/** Big-endian unsigned integer of a whole number of 64-bit words (32 or 48 bytes here). */
function toBigInt(bytes: Uint8Array): bigint {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let v = 0n;
  for (let i = 0; i < bytes.length; i += 8) v = (v << 64n) | view.getBigUint64(i);
  return v;
}
