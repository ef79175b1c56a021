/**
 * Cross-signed CA certificates: one CA key certified by two roots. A verifier must build a path to whichever
 * root its bundle holds, and refuse when the presented certificates lead only to a root it does not hold.
 */
import assert from 'node:assert/strict';
import { X509Bundle } from '../../src/bundle';
import { ErrorCode } from '../../src/errors';
import { TrustDomain } from '../../src/spiffe';
import { validateCertPath, verifyX509Svid } from '../../src/verify';
import {
  type CertSpec,
  HOUR,
  type Issued,
  makeCert,
  makeIntermediate,
  makeLeaf,
  makeRoot,
  newKey,
  NOW,
} from '../support/pki';
import { expectRefusal } from '../support/refusal';

const TD = 'example.org';
const ID = `spiffe://${TD}/workload`;
const at = NOW;

const bundleOf = (...roots: Issued[]): X509Bundle =>
  new X509Bundle(TrustDomain.parse(TD), { x509Authorities: roots.map((r) => r.cert) });

const pathOf = (chain: Issued[], ...roots: Issued[]): string[] =>
  verifyX509Svid(
    chain.map((c) => c.cert),
    bundleOf(...roots),
    { at, cache: null },
  ).chain.map((c) => c.sha256Hex);

const hexes = (...certs: Issued[]): string[] => certs.map((c) => c.cert.sha256Hex);

/** A CA certificate for `key`, named `cn`, issued by `issuer`. */
function caCert(cn: string, key: Issued['key'], issuer: Issued, spec: Partial<CertSpec> = {}): Issued {
  return makeCert({
    cn,
    key,
    issuer,
    basicConstraints: { ca: true },
    keyUsage: ['keyCertSign', 'cRLSign'],
    uris: [`spiffe://${TD}`],
    ...spec,
  });
}

describe('cross-signed chains', () => {
  describe('one intermediate certified by two roots (same subject, same key)', () => {
    const rootA = makeRoot(TD, { cn: 'A root' });
    const rootB = makeRoot(TD, { cn: 'B root' });
    const rootC = makeRoot(TD, { cn: 'C root' });
    const key = newKey();
    const iA = makeIntermediate(TD, rootA, { key, cn: 'I' });
    const iB = makeIntermediate(TD, rootB, { key, cn: 'I' });
    const leaf = makeLeaf(ID, iA);

    it('verifies against a bundle holding only root A, through the copy A signed', () => {
      assert.deepEqual(pathOf([leaf, iA, iB], rootA), hexes(leaf, iA, rootA));
    });

    it('verifies against a bundle holding only root B, through the copy B signed', () => {
      assert.deepEqual(pathOf([leaf, iA, iB], rootB), hexes(leaf, iB, rootB));
      // The order the copies are presented in does not matter.
      assert.deepEqual(pathOf([leaf, iB, iA], rootB), hexes(leaf, iB, rootB));
    });

    it('refuses when only the copy signed by the root the bundle lacks is presented', () => {
      expectRefusal(() => pathOf([leaf, iA], rootB), ErrorCode.UNKNOWN_AUTHORITY);
      expectRefusal(() => pathOf([leaf, iB], rootA), ErrorCode.UNKNOWN_AUTHORITY);
    });

    it('refuses both copies against a bundle holding neither root', () => {
      expectRefusal(() => pathOf([leaf, iA, iB], rootC), ErrorCode.UNKNOWN_AUTHORITY);
    });

    it('falls back to the other copy when the one for the bundle root has expired', () => {
      const iAold = makeIntermediate(TD, rootA, { key, cn: 'I', notAfter: new Date(at.getTime() - HOUR) });
      assert.deepEqual(pathOf([leaf, iAold, iB], rootA, rootB), hexes(leaf, iB, rootB));
      expectRefusal(() => pathOf([leaf, iAold, iB], rootA), ErrorCode.CERT_EXPIRED);
    });
  });

  describe('root B cross-signed by root A', () => {
    const rootA = makeRoot(TD, { cn: 'A root' });
    const rootB = makeRoot(TD, { cn: 'B root' });
    /** B's key and subject, certified by A. */
    const bByA = caCert('B root', rootB.key, rootA);
    const iB = makeIntermediate(TD, rootB, { cn: 'B intermediate' });
    const leaf = makeLeaf(ID, iB);

    it('verifies against a bundle holding only root A, through the cross certificate', () => {
      assert.deepEqual(pathOf([leaf, iB, bByA], rootA), hexes(leaf, iB, bByA, rootA));
      // The leaf signed directly by B's key too.
      const direct = makeLeaf(ID, rootB);
      assert.deepEqual(pathOf([direct, bByA], rootA), hexes(direct, bByA, rootA));
    });

    it('verifies against a bundle holding only root B, stopping at B', () => {
      assert.deepEqual(pathOf([leaf, iB, bByA], rootB), hexes(leaf, iB, rootB));
      assert.deepEqual(pathOf([leaf, iB], rootB), hexes(leaf, iB, rootB));
    });

    it('refuses against root A when the cross certificate is not presented', () => {
      expectRefusal(() => pathOf([leaf, iB], rootA), ErrorCode.UNKNOWN_AUTHORITY);
    });

    it('refuses a cross certificate that is expired, is not a CA, or is not really signed by A', () => {
      const expired = caCert('B root', rootB.key, rootA, { notAfter: new Date(at.getTime() - HOUR) });
      expectRefusal(() => pathOf([leaf, iB, expired], rootA), ErrorCode.CERT_EXPIRED);

      const notCa = caCert('B root', rootB.key, rootA, { basicConstraints: { ca: false } });
      expectRefusal(() => pathOf([leaf, iB, notCa], rootA), ErrorCode.NOT_A_CA);

      // Names A as issuer (subject and key identifier) but is signed by another key.
      const forged = caCert('B root', rootB.key, { cert: rootA.cert, key: newKey() });
      const e = expectRefusal(() => pathOf([leaf, iB, forged], rootA), ErrorCode.SIGNATURE_INVALID);
      assert.match(e.message, /signature/i);
    });

    it('honours a path length on the cross certificate', () => {
      // pathLen 0 on B-by-A allows no CA below it; iB is one.
      const limited = caCert('B root', rootB.key, rootA, { basicConstraints: { ca: true, pathLen: 0 } });
      expectRefusal(() => pathOf([leaf, iB, limited], rootA), ErrorCode.PATH_LEN_EXCEEDED);
      const direct = makeLeaf(ID, rootB);
      assert.deepEqual(pathOf([direct, limited], rootA), hexes(direct, limited, rootA));
    });

    it('validateCertPath alone builds the same paths', () => {
      const { path } = validateCertPath([leaf.cert, iB.cert, bByA.cert], [rootA.cert], { at });
      assert.deepEqual(
        path.map((c) => c.sha256Hex),
        hexes(leaf, iB, bByA, rootA),
      );
      expectRefusal(
        () => validateCertPath([leaf.cert, iB.cert], [rootA.cert], { at }),
        ErrorCode.UNKNOWN_AUTHORITY,
      );
    });
  });
});
